"""Slow-relay benchmark: how long a relay that drips `250-` lines holds the rest of the outgoing mail.

A fake relay on loopback (tests/notify/fake_relay.py) answers the RCPT of one recipient with a
`250-` line every 0.2 s, forever; every other recipient is taken at once. `--mails` mails are
queued, the dripping one first, and the sender's run loop (as `helpdesk serve` runs it) delivers
them. The figures: when the last of the others was delivered, and when the dripping transaction was
given up (the sender's `transaction_timeout`), or that neither happened within `--seconds`.

    python -m bench.slow_relay [--mails 20] [--seconds 30] [--transaction-timeout 5s] [--connections 4]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

from sqlalchemy import select

from helpdesk.app import build_app
from models.db import create_db_engine, migrate
from models.outbox import OutboxMessage, OutboxStatus
from tests.conftest import desk_settings
from tests.mail import make_mail
from tests.notify.fake_relay import FakeRelay, Misbehaviour

SLOW = "slow@example.com"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--transaction-timeout", default="5s")
    parser.add_argument("--connections", type=int, default=4)
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="slow-relay-"))
    with FakeRelay(Misbehaviour(drip_for=SLOW)) as relay:
        settings = desk_settings(
            root,
            f"sqlite:///{root / 'helpdesk.db'}",
            outgoing={
                "url": relay.url,
                "retry_for": "1h",
                "transaction_timeout": args.transaction_timeout,
                "connections": args.connections,
            },
        )
        engine = create_db_engine(settings.database)
        migrate(engine)
        engine.dispose()
        app = build_app(settings)
        senders = [SLOW] + [f"r{n}@example.com" for n in range(args.mails - 1)]
        for n, sender in enumerate(senders):
            app.store.store(make_mail(sender=sender, subject=f"mail {n}"), source="bench", envelope_to=[])
        app.worker.process_available()
        stop = threading.Event()
        thread = threading.Thread(target=app.sender.run, args=(stop,), daemon=True)
        started = time.monotonic()
        thread.start()
        others_done = given_up = None
        while time.monotonic() - started < args.seconds and (others_done is None or given_up is None):
            if others_done is None and len(relay.received) >= args.mails - 1:
                others_done = max(t.at for t in relay.received) - started
            with app.sessions() as session:
                slow = session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == SLOW)).one()
            if given_up is None and slow.status is OutboxStatus.PENDING and slow.attempts:
                given_up = time.monotonic() - started
            time.sleep(0.02)
        stop.set()
        app.sender.wake.set()
        delivered = len(relay.received)
    thread.join(10)
    app.close()
    print(
        json.dumps(
            {
                "mails": args.mails,
                "connections": args.connections,
                "transaction_timeout": args.transaction_timeout,
                "others_delivered": delivered,
                "others_all_delivered_after_s": round(others_done, 2) if others_done is not None else None,
                "dripping_transaction_given_up_after_s": round(given_up, 2) if given_up is not None else None,
                "drips": relay.drips,
                "watched_s": args.seconds,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
