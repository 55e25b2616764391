"""Mail from someone not on the ticket it reached: kept as an internal note, and staff are told.

They do not become a participant, the ticket's state does not change and they are sent nothing:
a Message-ID or reply address of ours is all it takes to write this. Staff let them in with
`#add EMAIL`. Staff hear of strangers on a ticket at most once per STRANGER_NOTICE_INTERVAL, so a
flood of them costs a note each and one mail.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.mail import ParsedEmail
from models.message import MessageKind
from models.raw_message import RawMessage
from models.ticket import EventKind, Ticket, TicketEvent
from tickets.assignment import Assignment
from tickets.events import record_event
from tickets.messages import StoredMessage, record_inbound

log = logging.getLogger("helpdesk.pipeline")

STRANGER_NOTICE_INTERVAL = timedelta(hours=1)
STAFF_TOLD = "staff told"  # the `new` of a stranger_mail event whose notice went out


def keep_strangers_note(
    session: Session,
    ticket: Ticket,
    mail: ParsedEmail,
    raw: RawMessage,
    *,
    now: datetime,
    by: str,
    automatic: str | None,
    assignment: Assignment | None,
) -> StoredMessage:
    """Keep the stranger's mail on `ticket` (`by`: how it threaded; `automatic`: why it is automatic
    mail, None when a person wrote it) and tell staff unless they were told within the interval."""
    sender = mail.sender or "?"
    message = record_inbound(session, ticket, mail, raw, kind=MessageKind.STRANGER, now=now, internal=True)
    told_lately = session.scalar(
        select(TicketEvent.id)
        .where(
            TicketEvent.ticket_id == ticket.id,
            TicketEvent.kind == EventKind.STRANGER_MAIL.value,
            TicketEvent.at > now - STRANGER_NOTICE_INTERVAL,
        )
        .where(TicketEvent.new == STAFF_TOLD)
        .limit(1)
    )
    # Nobody to add without an address; automatic mail (an out-of-office) is kept, not announced.
    tell = bool(mail.sender) and automatic is None and told_lately is None and assignment is not None
    record_event(
        session,
        ticket,
        EventKind.STRANGER_MAIL,
        sender,
        now=now,
        new=STAFF_TOLD if tell else "kept",
        reason=f"from someone not on the ticket (threaded by {by}); kept as a note, nothing changed"
        + (f"; automatic mail: {automatic}" if automatic is not None else ""),
        message_id=message.id,
    )
    if tell and assignment is not None:
        name = mail.from_.name if mail.from_ else ""
        assignment.notices.tell_stranger(session, ticket, sender, name, mail.new_text or mail.text, now=now)
    log.info(
        "STRANGER #%d from=%s by=%s kept as a note%s",
        ticket.id,
        sender,
        by,
        "" if tell else " (staff not told again)",
    )
    return message
