"""Opening a ticket: a mail that belongs to no ticket becomes one, routed, with its people on it.

The requester is the From; the other addresses in To and Cc (not ours) join as silent Cc: on the
ticket, so their replies thread, but sent status mail only once they write to us. A reply to a
closed ticket opens a follow-up that points back at it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from models.mail import Address, ParsedEmail
from models.message import MessageKind
from models.raw_message import RawMessage
from models.ticket import EventKind, Priority, Ticket, TicketStatus
from notify.config import MailIdentity
from routing.facts import RoutingResult
from tickets.events import record_event
from tickets.messages import StoredMessage, record_inbound
from tickets.participants import NAME_MAX, add_participants

log = logging.getLogger("helpdesk.pipeline")

SUBJECT_MAX = 500


def open_ticket(
    session: Session,
    identity: MailIdentity,
    mail: ParsedEmail,
    raw: RawMessage,
    *,
    now: datetime,
    tags: list[str],
    routing: RoutingResult | None = None,
    follow_up_of: int | None = None,
) -> tuple[Ticket, StoredMessage]:
    """A new ticket for `mail`, routed, with its requester and Cc, the mail on it, and why."""
    ticket = _new_ticket(
        session, identity, mail, now=now, tags=tags, routing=routing, follow_up_of=follow_up_of
    )
    message = record_inbound(session, ticket, mail, raw, kind=MessageKind.REQUESTER, now=now)
    follow_up = f", follow-up of #{follow_up_of}" if follow_up_of else ""
    record_event(
        session,
        ticket,
        EventKind.CREATED,
        mail.sender,
        now=now,
        reason=f"mail via {raw.source}{follow_up}",
        message_id=message.id,
    )
    if routing is not None:
        record_event(
            session,
            ticket,
            EventKind.ROUTED,
            "routing",
            now=now,
            new=f"category={ticket.category} priority={ticket.priority.value}",
            reason=f"category by {routing.category.reason}; priority by {routing.priority.reason}",
            data=routing.as_dict(),
        )
        log.info(
            "ROUTED #%d category=%s by=%s priority=%s by=%s",
            ticket.id,
            ticket.category,
            routing.category.reason,
            ticket.priority.value,
            routing.priority.reason,
        )
    return ticket, message


def _new_ticket(
    session: Session,
    identity: MailIdentity,
    mail: ParsedEmail,
    *,
    now: datetime,
    tags: list[str],
    routing: RoutingResult | None,
    follow_up_of: int | None,
) -> Ticket:
    sender = mail.from_ or Address("", "")
    ticket = Ticket(
        subject=mail.subject[:SUBJECT_MAX],
        status=TicketStatus.NEW,
        requester=sender.addr,
        requester_name=sender.name[:NAME_MAX],
        language=mail.language,
        tags=sorted({*tags, *(routing.tags if routing else ())}),
        created_at=now,
        updated_at=now,
        follow_up_of=follow_up_of,
    )
    if routing is not None:
        ticket.category = routing.category.value
        ticket.priority = Priority(routing.priority.value)
        ticket.routing = routing.as_dict()
        ticket.assignee = routing.assignee
    session.add(ticket)
    session.flush()  # the ticket number: every other row points at it
    people: dict[str, dict[str, object]] = (
        {
            sender.addr: {
                "ticket_id": ticket.id,
                "address": sender.addr,
                "name": sender.name[:NAME_MAX],
                "role": "requester",
                "notify": True,
            }
        }
        if sender.addr
        else {}
    )
    for cc in (*mail.to, *mail.cc):
        if cc.addr not in people and not identity.is_ours(cc.addr):
            people[cc.addr] = {
                "ticket_id": ticket.id,
                "address": cc.addr,
                "name": cc.name[:NAME_MAX],
                "role": "cc",
                "notify": False,
            }
    add_participants(session, list(people.values()))
    return ticket
