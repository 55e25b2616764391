"""A mailbox poller in a process of its own, for tests that kill it: `python -m tests.intake.imap_child`.

Arguments: the database URL, the mailbox config as JSON (the keys of an [[imap]] section) and
optionally seconds to pause after each commit of the raw queue (before the poller flags what it
committed), so that a test's SIGKILL lands in that window. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from types import FrameType

from helpdesk.settings import read_mailbox
from intake.imap_poller import MailboxPoller
from intake.raw_queue import RawStore
from models.db import DatabaseConfig, create_db_engine, session_factory


def main(argv: list[str]) -> int:
    db_url, config_json, *rest = argv
    pause = float(rest[0]) if rest else 0.0
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    engine = create_db_engine(DatabaseConfig(url=db_url))  # synchronous=FULL, as in production
    sessions = session_factory(engine)
    store = RawStore(sessions, on_stored=(lambda: time.sleep(pause)) if pause else None)
    poller = MailboxPoller(read_mailbox(json.loads(config_json)), store, sessions)
    stop = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_term)
    poller.run(stop)
    engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
