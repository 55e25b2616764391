"""Hostile IMAP benchmark: how much a mailbox poller grows while a server misbehaves at it.

A fake IMAP server on loopback (tests/intake/hostile_imap.py) plays one of:

* `literal`: a mail announced small (RFC822.SIZE) whose BODY[] literal is announced at 3 GB, the
  filler sent as fast as it is read;
* `huge`: a mail announced at 3 GB (RFC822.SIZE) and sent as a 3 GB literal when asked for;
* `flood`: three million untagged lines in answer to the NOOP before IDLE.

The poller runs in a process of its own (`python -m tests.intake.imap_child`); the figure is its
peak resident memory (VmHWM) above what it held once logged in, until the server has been left
(a second connection), `--seconds` passed, or it grew past `--kill-at` MiB.

    python -m bench.imap_hostile [--scenario literal|huge|flood|all] [--seconds 60] [--kill-at 2500]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from intake.imap_state import mailbox_statuses
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.raw_message import RawMessage
from tests.intake.hostile_imap import Behaviour, HostileImapServer, rss_kib
from tests.intake.imap_helpers import mail, poller_process

GIB = 1024**3
SCENARIOS = {
    "literal": lambda: Behaviour(mails={1: mail(1)}, literal_sizes={1: 3 * GIB}),
    "huge": lambda: Behaviour(
        mails={1: mail(1), 2: mail(2)}, announced_sizes={1: 3 * GIB}, literal_sizes={1: 3 * GIB}
    ),
    "flood": lambda: Behaviour(mails={1: mail(1)}, flood={"NOOP": 3_000_000}),
}


def run(name: str, seconds: float, kill_at_mib: int) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="hostile-imap-"))
    url = f"sqlite:///{root / 'helpdesk.db'}"
    engine = create_db_engine(DatabaseConfig(url=url, sqlite_synchronous="NORMAL"))
    migrate(engine)
    sessions = session_factory(engine)
    with HostileImapServer(SCENARIOS[name]()) as server:
        config = {
            "name": "hostile",
            "host": server.host,
            "port": server.port,
            "tls": "none",
            "user": "u",
            "password": "p",
            "since": "2000-01-01",
            "backoff_initial": 0.5,
            "backoff_max": 1.0,
        }
        with poller_process(url, config, root / "poller.log") as child:
            if server.wait_for("SELECT", timeout=60) is None:
                raise RuntimeError(f"the poller never selected a folder: {(root / 'poller.log').read_text()}")
            baseline = rss_kib(child.pid)[0]
            began = time.monotonic()
            outcome = "still reading"
            while time.monotonic() - began < seconds:
                peak = rss_kib(child.pid)[1] - baseline
                if server.connections >= 2 or (name == "huge" and stored(sessions) >= 2):
                    outcome = "left the server" if server.connections >= 2 else "stored the next mail"
                    break
                if peak > kill_at_mib * 1024:
                    outcome = f"killed at {kill_at_mib} MiB"
                    break
                time.sleep(0.05)
            elapsed = time.monotonic() - began
            peak = rss_kib(child.pid)[1] - baseline
            child.kill()  # measured: no graceful stop for a process that may be ballooning
        status = next(iter(mailbox_statuses(sessions)), None)
        result = {
            "scenario": name,
            "outcome": outcome,
            "seconds": round(elapsed, 1),
            "rss_growth_mib": round(peak / 1024, 1),
            "server_sent_mib": round(server.bytes_sent / 1024**2, 1),
            "connections": server.connections,
            "last_error": status.last_error if status is not None else None,
            "raw_rows": stored(sessions),
        }
    engine.dispose()
    return result


def stored(sessions: Any) -> int:
    with sessions() as session:
        return len(session.scalars(select(RawMessage.id)).all())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--kill-at", type=int, default=2500, help="MiB of growth at which to stop")
    args = parser.parse_args(argv)
    names = list(SCENARIOS) if args.scenario == "all" else [args.scenario]
    for name in names:
        print(json.dumps(run(name, args.seconds, args.kill_at)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
