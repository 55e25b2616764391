"""The event log of a ticket: every change, with who made it, what it was before and after, and why.

`helpdesk tickets show N` prints it; the SLA timer reads the status changes back from it. Events
are written in the transaction of the change they record.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from models import tables
from models.ticket import EventKind, Ticket

ACTOR_MAX = 320  # an address (RFC 5321 section 4.5.3.1.3), "system", "rule:<name>", "model:<version>"

# Built once: each mail runs it, and building a statement costs more than running it on SQLite.
_INSERT_EVENT = insert(tables.ticket_events)


def record_event(
    session: Session,
    ticket: Ticket,
    kind: EventKind,
    actor: str,
    *,
    now: datetime,
    old: str | None = None,
    new: str | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
    message_id: int | None = None,
) -> None:
    """Append one event to `ticket`'s log (`message_id`: the stored message that caused it)."""
    session.execute(
        _INSERT_EVENT,
        {
            "ticket_id": ticket.id,
            "at": now,
            "actor": actor[:ACTOR_MAX],
            "kind": kind.value,
            "old": old,
            "new": new,
            "reason": reason,
            "data": data or {},
            "message_id": message_id,
        },
    )
