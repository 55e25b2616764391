"""When our mail to someone finally fails: an event on its ticket, and word to the people working it.

The sender (notify) decides that a mail failed for good: a 5yz reply, or 4yz replies and lost
connections until the row's retry deadline passed. It calls `DeliveryFailures.failed` inside the
transaction that marks the row failed, so the event and the notices are written exactly once,
together with the failure. A delivery report (RFC 3464) that comes back to the mail's signed
return address is the same news, later: the pipeline's bounce stage records it and calls `tell`.

Who is told: the ticket's assignee, or every active coordinator when nobody is assigned (or the
assignee is inactive). Never the address that failed (a technician whose own mail bounced is not
mailed about it; the coordinators are), and nobody about a failed notice of this kind, so two
failing addresses cannot keep each other busy.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from intake.assignment import Assignment
from intake.roster import coordinators, technician_by_email
from models.outbox import OutboxMessage
from models.ticket import Ticket
from notify.tokens import coordinator_token

log = logging.getLogger("helpdesk.delivery")

# The outbox kind of the notices themselves: a failed one is recorded, never told about.
NOTICE_KIND = "delivery_failed"
EVENT_KIND = "delivery_failed"


class DeliveryFailures:
    def __init__(self, assignment: Assignment) -> None:
        self.assignment = assignment

    def failed(self, session: Session, row: OutboxMessage, now: datetime) -> None:
        """The sender's `on_failed`: an event on the row's ticket, and word to its people."""
        error = row.last_error or "no reason given"
        ticket = session.get(Ticket, row.ticket_id) if row.ticket_id is not None else None
        if ticket is None:
            log.warning("DELIVERY FAILED outbox=%d to=%s on no ticket: %s", row.id, row.recipient, error)
            return
        self.assignment.desk.event(
            session,
            ticket,
            EVENT_KIND,
            "sender",
            now=now,
            new=row.status.value,
            reason=f"{row.kind} mail to {row.recipient}: {error}",
            data={"outbox_id": row.id, "recipient": row.recipient, "kind": row.kind, "error": error},
        )
        self.tell(session, ticket, row, error, now=now)

    def tell(self, session: Session, ticket: Ticket, row: OutboxMessage, error: str, *, now: datetime) -> int:
        """Mail the assignee (or the coordinators) that `row` could not be delivered; how many were told."""
        if row.kind == NOTICE_KIND:
            log.info("DELIVERY FAILED #%d outbox=%d: a failure notice itself; nobody told", ticket.id, row.id)
            return 0
        failed_to = {row.recipient, *row.envelope_to}
        context = {
            "recipient": row.recipient,
            "error": error,
            "kind": row.kind,
            "queued_at": row.created_at.strftime("%Y-%m-%d %H:%M UTC"),
        }
        member = technician_by_email(session, ticket.assignee) if ticket.assignee else None
        if member is not None and member.technician.active and member.email not in failed_to:
            self.assignment.mail_technician(
                session,
                ticket,
                member,
                "technician_delivery_failed",
                now=now,
                kind=NOTICE_KIND,
                context=context,
            )
            log.info(
                "DELIVERY FAILED #%d outbox=%d to=%s: told %s", ticket.id, row.id, row.recipient, member.email
            )
            return 1
        desk = self.assignment.desk
        told = 0
        for coord_id, coord in coordinators(session):
            if coord.email in failed_to:
                continue
            queued = desk.mail(
                session,
                ticket,
                "coordinator_delivery_failed",
                to=(coord.name, coord.email),
                language=coord.language,
                reply_to=desk.identity.plus_address(
                    coordinator_token(desk.identity.secret, ticket.id, coord_id, now=now)
                ),
                now=now,
                kind=NOTICE_KIND,
                automatic=False,
                context={"coordinator": coord, **context},
            )
            told += queued is not None
        log.info(
            "DELIVERY FAILED #%d outbox=%d to=%s: told %d coordinator(s)",
            ticket.id,
            row.id,
            row.recipient,
            told,
        )
        return told
