"""The status machine of a ticket, and the rules by which a reply reopens it.

    new -> open (assigned) -> in_progress | waiting -> resolved -> closed
                 ^                                        |
                 +---- the requester replies, or staff ---+

A requester's reply reopens a resolved ticket and takes a waiting one back to open. A closed
ticket stays closed for requesters: their next mail opens a follow-up that points back at it;
staff replying through their own reply address still reach it (and may reopen it with #status).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from models.ticket import DONE_STATUSES, EventKind, Ticket, TicketStatus
from tickets.events import record_event

log = logging.getLogger("helpdesk.desk")

# What `#status` may set; resolving and closing have commands of their own.
SETTABLE_STATUSES = (TicketStatus.OPEN, TicketStatus.IN_PROGRESS, TicketStatus.WAITING)


def set_status(
    session: Session,
    ticket: Ticket,
    new: TicketStatus,
    actor: str,
    *,
    now: datetime,
    reason: str = "",
) -> bool:
    """Move `ticket` to `new` with an event; False when it was there already."""
    old = ticket.status
    if old is new:
        return False
    ticket.status = new
    ticket.updated_at = now
    if new is TicketStatus.RESOLVED:
        ticket.resolved_at = now
    elif new is TicketStatus.CLOSED:
        ticket.closed_at = now
    elif old in DONE_STATUSES:
        ticket.resolved_at = None
        ticket.closed_at = None
    record_event(
        session, ticket, EventKind.STATUS, actor, now=now, old=old.value, new=new.value, reason=reason
    )
    log.info("STATUS #%d %s -> %s by=%s %s", ticket.id, old.value, new.value, actor, reason)
    return True


def opens_follow_up(ticket: Ticket | None, *, staff: bool) -> bool:
    """Whether a mail threaded onto `ticket` opens a follow-up instead: the ticket is closed and the
    mail does not come through a staff reply address."""
    return ticket is not None and ticket.status is TicketStatus.CLOSED and not staff


def reopen_on_reply(session: Session, ticket: Ticket, sender: str, *, now: datetime) -> bool:
    """The requester replied: a resolved ticket reopens (True: tell them), a waiting one is open again."""
    if ticket.status is TicketStatus.RESOLVED:
        set_status(session, ticket, TicketStatus.OPEN, sender, now=now, reason="reply after resolution")
        record_event(session, ticket, EventKind.REOPENED, sender, now=now, reason="requester replied")
        return True
    if ticket.status is TicketStatus.WAITING:
        set_status(session, ticket, TicketStatus.OPEN, sender, now=now, reason="requester replied")
    return False
