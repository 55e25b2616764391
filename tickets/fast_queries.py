"""What `helpdesk tickets list`, `tickets show` and `quarantine list` read, over the DBAPI alone.

The same reads as tickets/queries.py (and intake/quarantine.py `quarantined`) on a models.dbapi
`Database`: the same rows in the same order, as records with the fields and values the mapped
classes have, so helpdesk/views.py renders them alike. Loading SQLAlchemy and mapping every
table took most of a listing's time; a listing runs a few statements.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from models.dbapi import DELIVERY_KINDS, Database
from models.kinds import RawStatus, TicketStatus


@dataclass(frozen=True)
class TicketFilter:
    """Which tickets `helpdesk tickets list` shows: by default all but the closed ones."""

    statuses: Collection[TicketStatus] = ()  # only these (closed ones too, when named)
    include_closed: bool = False
    requester: str | None = None
    assignee: str | None = None
    limit: int | None = None
    newest_first: bool = False
    since: datetime | None = None  # only tickets opened at or after this moment


@dataclass(frozen=True)
class FastRecord:
    """A ticket as `helpdesk tickets show` presents it (tickets/queries.py `TicketRecord`)."""

    ticket: Any  # a tickets row with its messages, events and participants
    deliveries: dict[int, Any] = field(default_factory=dict)  # by outbox row
    sender_auth: dict[int, dict[str, Any]] = field(default_factory=dict)  # by stored mail
    satisfaction: Any = None


def _where(db: Database, which: TicketFilter) -> tuple[str, list[object]]:
    """tickets/queries.py `_filtered`, as SQL."""
    clauses: list[str] = []
    params: list[object] = []
    if which.statuses:
        statuses = [s.value for s in which.statuses]
        clauses.append(f"status IN ({db.marks(len(statuses))})")
        params.extend(statuses)
    elif not which.include_closed:
        clauses.append(f"status != {db.mark}")
        params.append(TicketStatus.CLOSED.value)
    if which.requester:
        clauses.append(f"requester = {db.mark}")
        params.append(which.requester.lower())
    if which.assignee:
        clauses.append(f"assignee = {db.mark}")
        params.append(which.assignee.lower())
    if which.since is not None:
        clauses.append(f"created_at >= {db.mark}")
        params.append(db.datetime(which.since))
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def list_tickets(db: Database, which: TicketFilter) -> list[Any]:
    where, params = _where(db, which)
    statement = f"SELECT * FROM tickets{where} ORDER BY id{' DESC' if which.newest_first else ''}"
    if which.limit:
        statement += f" LIMIT {int(which.limit)}"
    return db.records("tickets", statement, params)


def count_tickets(db: Database, which: TicketFilter) -> int:
    """How many tickets `which` selects, whatever its limit."""
    where, params = _where(db, which)
    return int(db.query(f"SELECT count(*) FROM tickets{where}", params)[0][0])


def message_ids_by_ticket(db: Database, ticket_ids: Sequence[int]) -> dict[int, list[str]]:
    """The Message-IDs of each ticket's mail, in the order they were stored."""
    result: dict[int, list[str]] = defaultdict(list)
    if not ticket_ids:
        return result
    statement = f"SELECT ticket_id, message_id FROM messages WHERE ticket_id IN ({db.marks(len(ticket_ids))})"
    for ticket_id, message_id in db.query(statement + " ORDER BY id", ticket_ids):
        result[ticket_id].append(message_id)
    return result


def ticket_record(db: Database, number: int) -> FastRecord | None:
    """The ticket with its mail (and their attachments), events, participants, the deliveries of
    its outgoing mail, the verdicts on its inbound mail and its rating."""
    found = db.records("tickets", f"SELECT * FROM tickets WHERE id = {db.mark}", (number,))
    if not found:
        return None
    ticket: SimpleNamespace = found[0]
    of_ticket = f"WHERE ticket_id = {db.mark} ORDER BY id"
    messages = db.records("messages", f"SELECT * FROM messages {of_ticket}", (number,))
    attachments: dict[int, list[Any]] = defaultdict(list)
    if messages:
        ids = [m.id for m in messages]
        statement = f"SELECT * FROM attachments WHERE message_id IN ({db.marks(len(ids))}) ORDER BY id"
        for attachment in db.records("attachments", statement, ids):
            attachments[attachment.message_id].append(attachment)
    for message in messages:
        message.attachments = attachments.get(message.id, [])
    ticket.messages = messages
    ticket.events = db.records("ticket_events", f"SELECT * FROM ticket_events {of_ticket}", (number,))
    ticket.participants = db.records("participants", f"SELECT * FROM participants {of_ticket}", (number,))
    rated = db.records("satisfaction", f"SELECT * FROM satisfaction WHERE ticket_id = {db.mark}", (number,))
    return FastRecord(
        ticket,
        _deliveries(db, [m.outbox_id for m in messages if m.outbox_id is not None]),
        _sender_auth(db, [m.raw_id for m in messages if m.raw_id is not None]),
        rated[0] if rated else None,
    )


def _deliveries(db: Database, outbox_ids: Sequence[int]) -> dict[int, Any]:
    """tickets/queries.py `deliveries`: what became of each outgoing mail, by outbox row."""
    if not outbox_ids:
        return {}
    statement = (
        "SELECT id, status, attempts, last_error AS error, sent_at FROM outbox "
        f"WHERE id IN ({db.marks(len(outbox_ids))})"
    )
    return {row.id: row for row in db.records("outbox", statement, outbox_ids, DELIVERY_KINDS)}


def _sender_auth(db: Database, raw_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """tickets/queries.py `sender_auth_by_raw`: the verdicts of stored mails that have one."""
    if not raw_ids:
        return {}
    statement = (
        f"SELECT id, sender_auth FROM raw_messages WHERE id IN ({db.marks(len(raw_ids))}) "
        "AND sender_auth IS NOT NULL"
    )
    rows = db.records("raw_messages", statement, raw_ids)
    return {row.id: dict(row.sender_auth) for row in rows if row.sender_auth}


def quarantined(db: Database) -> list[Any]:
    """intake/quarantine.py `quarantined`: the quarantined mails, oldest first."""
    statement = f"SELECT * FROM raw_messages WHERE status = {db.mark} ORDER BY id"
    return db.records("raw_messages", statement, (RawStatus.FAILED.value,))
