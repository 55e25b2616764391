"""A mailbox poller in a process of its own, for tests that kill it: `python -m tests.intake.imap_child`.

Arguments: the database URL and the mailbox config as JSON (the keys of an [[imap]] section).
SIGTERM stops it cleanly; the tests use SIGKILL.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from types import FrameType

from intake.imap_config import ImapMailboxConfig
from intake.imap_poller import MailboxPoller
from intake.store import RawStore
from models.db import DatabaseConfig, create_db_engine, session_factory


def main(argv: list[str]) -> int:
    db_url, config_json = argv
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    engine = create_db_engine(DatabaseConfig(url=db_url))  # synchronous=FULL, as in production
    sessions = session_factory(engine)
    poller = MailboxPoller(
        ImapMailboxConfig.from_mapping(json.loads(config_json)), RawStore(sessions), sessions
    )
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    poller.run(stop)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
