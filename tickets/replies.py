"""A requester's (or another participant's) mail on their ticket: stored, and what it changes.

A reply reopens a resolved ticket (the requester is told, and the ticket goes back to its
technician while they can take it) and takes a waiting one back to open; the assignee hears of
it. A rating of a resolved ticket, or "solved", changes what `tickets.feedback` says instead.
Automatic mail that threads onto a ticket (an out-of-office answering our mail) is kept on it
and changes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from models.mail import ParsedEmail
from models.message import MessageKind
from models.outbox import OutboxKind
from models.raw_message import RawMessage
from models.ticket import EventKind, Ticket
from tickets.assignment import Assignment
from tickets.events import record_event
from tickets.feedback import Feedback
from tickets.mailer import Mailer
from tickets.messages import StoredMessage, record_inbound
from tickets.participants import add_participant
from tickets.status import reopen_on_reply

log = logging.getLogger("helpdesk.pipeline")


def record_automatic(
    session: Session, ticket: Ticket, mail: ParsedEmail, raw: RawMessage, *, now: datetime, reason: str
) -> StoredMessage:
    """Automatic mail on a ticket: kept, never answered, nothing changes."""
    message = record_inbound(session, ticket, mail, raw, kind=MessageKind.AUTOMATIC, now=now)
    record_event(
        session, ticket, EventKind.AUTOMATIC_MAIL, mail.sender, now=now, reason=reason, message_id=message.id
    )
    log.info("AUTOMATIC #%d from=%s %s (not answered)", ticket.id, mail.sender, reason)
    return message


def record_reply(
    session: Session,
    ticket: Ticket,
    mail: ParsedEmail,
    raw: RawMessage,
    *,
    now: datetime,
    by: str,
    mailer: Mailer,
    assignment: Assignment | None,
) -> StoredMessage:
    """A participant's reply (`by`: how it threaded): stored; it may reopen the ticket; the assignee told."""
    message = record_inbound(session, ticket, mail, raw, kind=MessageKind.REQUESTER, now=now)
    add_participant(session, ticket, mail.sender, mail.from_.name if mail.from_ else "", "cc")
    record_event(
        session,
        ticket,
        EventKind.REPLY,
        mail.sender,
        now=now,
        reason=f"threaded by {by}",
        message_id=message.id,
    )
    feedback = Feedback(mailer, assignment.notices if assignment is not None else None)
    if feedback.handle(
        session, ticket, mail.new_text or mail.text, mail.sender, now=now, message_id=message.id
    ):
        log.info("REPLY #%d from=%s by=%s (feedback)", ticket.id, mail.sender, by)
        return message
    if reopen_on_reply(session, ticket, mail.sender, now=now):
        mailer.mail_requester(
            session, ticket, "requester_reopened", now=now, kind=OutboxKind.REOPENED, automatic=True
        )
        if assignment is not None:
            assignment.reopened(session, ticket, now=now)
    if assignment is not None and ticket.assignee:
        assignment.notices.tell_assignee(session, ticket, mail.new_text or mail.text, now=now)
    log.info("REPLY #%d from=%s by=%s", ticket.id, mail.sender, by)
    return message
