"""What the command line reads of tickets and their outgoing mail, so that it writes no SQL itself.

`helpdesk tickets list` (`list_tickets`, `count_tickets`, `message_ids_by_ticket`), `helpdesk tickets show`
(`ticket_record`: the ticket with what became of its outgoing mail and who its inbound mail was
proven to come from), and the ticket and outbox counts of `helpdesk status` (`status_counts`).
The rows are returned as they are; how they look is the command line's business.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from models.budget import HeldNotice
from models.loop import Satisfaction
from models.message import Message
from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage
from models.ticket import Ticket, TicketStatus
from tickets.fast_queries import TicketFilter as TicketFilter


def _filtered(query: Select[Any], which: TicketFilter) -> Select[Any]:
    if which.statuses:
        query = query.where(Ticket.status.in_(list(which.statuses)))
    elif not which.include_closed:
        query = query.where(Ticket.status != TicketStatus.CLOSED)
    if which.requester:
        query = query.where(Ticket.requester == which.requester.lower())
    if which.assignee:
        query = query.where(Ticket.assignee == which.assignee.lower())
    if which.since is not None:
        query = query.where(Ticket.created_at >= which.since)
    return query


def list_tickets(session: Session, which: TicketFilter) -> list[Ticket]:
    query = _filtered(select(Ticket), which).order_by(Ticket.id.desc() if which.newest_first else Ticket.id)
    if which.limit:
        query = query.limit(which.limit)
    return list(session.scalars(query.execution_options(populate_existing=False)))


def count_tickets(session: Session, which: TicketFilter) -> int:
    """How many tickets `which` selects, whatever its limit."""
    return int(session.scalar(_filtered(select(func.count()).select_from(Ticket), which)) or 0)


def message_ids_by_ticket(session: Session, ticket_ids: Sequence[int]) -> dict[int, list[str]]:
    """The Message-IDs of each ticket's mail, in the order they were stored."""
    result: dict[int, list[str]] = defaultdict(list)
    if not ticket_ids:
        return result
    rows = session.execute(
        select(Message.ticket_id, Message.message_id)
        .where(Message.ticket_id.in_(ticket_ids))
        .order_by(Message.id)
    )
    for ticket_id, message_id in rows:
        result[ticket_id].append(message_id)
    return result


@dataclass(frozen=True)
class Delivery:
    """What became of one outgoing mail so far."""

    status: OutboxStatus
    attempts: int
    error: str | None
    sent_at: datetime | None


@dataclass(frozen=True)
class TicketRecord:
    """A ticket as `helpdesk tickets show` presents it (its messages, events and participants load
    with it, in the same session)."""

    ticket: Ticket
    deliveries: Mapping[int, Delivery] = field(default_factory=dict)  # by outbox row
    sender_auth: Mapping[int, dict[str, Any]] = field(default_factory=dict)  # by stored mail
    satisfaction: Satisfaction | None = None  # the requester's rating, once they gave one


def deliveries(session: Session, outbox_ids: Sequence[int]) -> dict[int, Delivery]:
    """The delivery of each outgoing mail, by outbox row."""
    if not outbox_ids:
        return {}
    rows = session.execute(
        select(
            OutboxMessage.id,
            OutboxMessage.status,
            OutboxMessage.attempts,
            OutboxMessage.last_error,
            OutboxMessage.sent_at,
        ).where(OutboxMessage.id.in_(outbox_ids))
    )
    return {row.id: Delivery(row.status, row.attempts, row.last_error, row.sent_at) for row in rows}


def sender_auth_by_raw(session: Session, raw_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The sender authentication verdicts of stored mails that have one, by stored mail id."""
    if not raw_ids:
        return {}
    rows = session.execute(
        select(RawMessage.id, RawMessage.sender_auth).where(
            RawMessage.id.in_(raw_ids), RawMessage.sender_auth.is_not(None)
        )
    )
    return {raw_id: dict(auth) for raw_id, auth in rows if auth}


def record_of(session: Session, ticket: Ticket) -> TicketRecord:
    """`ticket` with the deliveries of its outgoing mail and the verdicts of its inbound mail."""
    sent = [m.outbox_id for m in ticket.messages if m.outbox_id is not None]
    received = [m.raw_id for m in ticket.messages if m.raw_id is not None]
    rating = session.scalar(select(Satisfaction).where(Satisfaction.ticket_id == ticket.id))
    return TicketRecord(ticket, deliveries(session, sent), sender_auth_by_raw(session, received), rating)


def ticket_record(session: Session, number: int) -> TicketRecord | None:
    ticket = session.get(Ticket, number)
    return record_of(session, ticket) if ticket is not None else None


@dataclass(frozen=True)
class StatusCounts:
    """The ticket and outbox side of `helpdesk status`."""

    tickets: Mapping[TicketStatus, int]
    outbox: Mapping[OutboxStatus, int]
    held_notices_pending: int  # staff notices held for a digest that has not gone out yet


def status_counts(session: Session) -> StatusCounts:
    tickets = dict(session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all())
    outbox = dict(
        session.execute(select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)).all()
    )
    held = session.scalar(
        select(func.count()).select_from(HeldNotice).where(HeldNotice.digested_at.is_(None))
    )
    return StatusCounts(
        tickets={status: int(tickets.get(status, 0)) for status in TicketStatus},
        outbox={status: int(outbox.get(status, 0)) for status in OutboxStatus},
        held_notices_pending=int(held or 0),
    )
