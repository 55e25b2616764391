"""A desk for the benchmarks: a config in a directory, `helpdesk init`, and many tickets seeded fast.

`seed_tickets` writes tickets as the pipeline leaves them (a requester participant, one inbound
mail with its references, an acknowledgment in the outbox, an event), with a mix of statuses,
resolved ones with a resolution note, in bulk with Core inserts: 100,000 tickets take seconds
rather than the hours it would take to send them as mail. The same seed gives the same desk.
"""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, func, insert, select

from models import tables
from models.outbox import OutboxKind, OutboxStatus
from models.ticket import Priority, TicketStatus

HELPDESK = [sys.executable, "-m", "helpdesk.cli"]
SUPPORT = "support@example.test"
_WORDS = (
    "printer vpn password outlook monitor phishing drukarka haslo drucker passwort laptop network "
    "wifi mail calendar license access folder share backup keyboard mouse screen update crash slow"
).split()
_STATUSES = (
    [TicketStatus.CLOSED] * 5
    + [TicketStatus.RESOLVED] * 3
    + [TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING]
)
_CATEGORIES = ("hardware", "network", "access", "software", "security", "triage")


def write_config(directory: Path, *, port: int | None = None, database_url: str | None = None) -> Path:
    """helpdesk.toml for a desk in `directory` (SQLite under var/ unless a database URL is given)."""
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "helpdesk.toml"
    smtp = f'[smtp]\nlisten = "127.0.0.1:{port}"\n' if port is not None else ""
    config.write_text(
        f'[mail]\naddress = "{SUPPORT}"\nsecret = "bench"\n'
        f'[database]\nurl = "{database_url or "sqlite:///var/helpdesk.db"}"\n'
        f'{smtp}[outgoing]\nurl = "maildir:var/sent"\n[logging]\nlevel = "WARNING"\n'
        '[security]\ntrusted_authserv_ids = ["mx.example.test"]\n'
    )
    return config


def init_desk(directory: Path) -> None:
    subprocess.run([*HELPDESK, "init"], cwd=directory, check=True, capture_output=True)


def database_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'var' / 'helpdesk.db'}"


def seed_tickets(url: str, count: int, *, seed: int = 11, batch: int = 5000) -> int:
    """Add `count` tickets (with their mail, requester, acknowledgment and event); returns the newest id."""
    rng = random.Random(seed)
    engine = create_engine(url)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            first = int(conn.scalar(select(func.coalesce(func.max(tables.tickets.c.id), 0))) or 0) + 1
        for low in range(first, first + count, batch):
            numbers = range(low, min(first + count, low + batch))
            tickets, participants, messages, refs, outbox, events = [], [], [], [], [], []
            for n in numbers:
                status = rng.choice(_STATUSES)
                created = start + timedelta(minutes=7 * n)
                requester = f"user{rng.randrange(count // 3 + 1)}@d{rng.randrange(200)}.example"
                words = " ".join(rng.choice(_WORDS) for _ in range(6))
                resolved = status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
                tickets.append(
                    {
                        "id": n,
                        "subject": f"{words} {n}",
                        "status": status,
                        "category": rng.choice(_CATEGORIES),
                        "priority": rng.choice(list(Priority)),
                        "requester": requester,
                        "requester_name": "Seeded Requester",
                        "assignee": f"tech{rng.randrange(20)}@example.test" if status != "new" else None,
                        "language": "en",
                        "tags": [],
                        "routing": {},
                        "created_at": created,
                        "updated_at": created,
                        "resolved_at": created + timedelta(hours=3) if resolved else None,
                        "resolution": f"fixed the {rng.choice(_WORDS)}" if resolved else None,
                        "sla_done": [],
                    }
                )
                participants.append({"ticket_id": n, "address": requester, "name": "", "role": "requester"})
                message_id = f"seed-{n}@d.example"
                messages.append(
                    {
                        "id": n,
                        "ticket_id": n,
                        "direction": "in",
                        "kind": "new",
                        "message_id": message_id,
                        "references": [],
                        "from_addr": requester,
                        "to_addrs": [SUPPORT],
                        "cc_addrs": [],
                        "subject": f"{words} {n}",
                        "text": f"Hello, the {words} does not work. {n}",
                        "new_text": f"Hello, the {words} does not work. {n}",
                        "created_at": created,
                    }
                )
                refs.append({"ticket_id": n, "ref": f"earlier-{n}@d.example"})
                outbox.append(
                    {
                        "ticket_id": n,
                        "kind": OutboxKind.ACK.value,
                        "automatic": True,
                        "status": OutboxStatus.SENT,
                        "recipient": requester,
                        "envelope_from": SUPPORT,
                        "envelope_to": [requester],
                        "message_id": f"ack-{n}@example.test",
                        "data": b"seeded",
                        "created_at": created,
                        "next_attempt_at": created,
                        "deadline": created + timedelta(days=1),
                        "sent_at": created,
                    }
                )
                events.append({"ticket_id": n, "at": created, "actor": "system", "kind": "opened"})
            with engine.begin() as conn:
                conn.execute(insert(tables.tickets), tickets)
                conn.execute(insert(tables.participants), participants)
                conn.execute(insert(tables.messages), messages)
                conn.execute(insert(tables.message_refs), refs)
                conn.execute(insert(tables.outbox), outbox)
                conn.execute(insert(tables.ticket_events), events)
        return first + count - 1
    finally:
        engine.dispose()
