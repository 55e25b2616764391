"""When our mail to someone finally fails: an event on its ticket, and word to the people working it.

The sender (notify) decides that a mail failed for good: a 5yz reply, or 4yz replies and lost
connections until the row's retry deadline passed. It calls `DeliveryFailures.failed` inside the
transaction that marks the row failed, so the event and the notices are written exactly once,
together with the failure. A delivery report (RFC 3464) that comes back to the mail's signed
return address is the same news, later: the pipeline's bounce stage hands it to
`record_delivery_report`, which marks that mail bounced and calls `tell`. A report that names
one of our mails otherwise (anyone can write one naming our Message-IDs), a delay, or news about
a failure already recorded is kept on the ticket as information and changes no mail's status.

Who is told: the ticket's assignee, or every active coordinator when nobody is assigned (or the
assignee is inactive). Never the address that failed (a technician whose own mail bounced is not
mailed about it; the coordinators are), and nobody about a failed notice of this kind, so two
failing addresses cannot keep each other busy.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from models.mail import ParsedEmail
from models.message import MessageKind
from models.outbox import OutboxKind, OutboxMessage, OutboxStatus
from models.raw_message import RawMessage
from models.ticket import EventKind, Ticket
from notify.tokens import coordinator_token
from tickets.assignment import Assignment
from tickets.events import record_event
from tickets.messages import record_inbound
from tickets.roster import coordinators, technician_by_email

log = logging.getLogger("helpdesk.delivery")

# The outbox kind of the notices themselves: a failed one is recorded, never told about.
NOTICE_KIND = OutboxKind.DELIVERY_FAILED


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
        record_event(
            session,
            ticket,
            EventKind.DELIVERY_FAILED,
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
            self.assignment.notices.mail_technician(
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
        mailer = self.assignment.mailer
        told = 0
        for coord_id, coord in coordinators(session):
            if coord.email in failed_to:
                continue
            queued = mailer.mail(
                session,
                ticket,
                "coordinator_delivery_failed",
                to=(coord.name, coord.email),
                language=coord.language,
                reply_to=mailer.identity.plus_address(
                    coordinator_token(mailer.identity.secret, ticket.id, coord_id, now=now)
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


def record_delivery_report(
    session: Session,
    ticket: Ticket,
    mail: ParsedEmail,
    raw: RawMessage,
    *,
    now: datetime,
    outbox_id: int | None,
    named: int | None,
    reason: str,
    failures: DeliveryFailures | None,
) -> str:
    """Keep a delivery report (RFC 3464) on its ticket; what it says, in one line.

    Only a report to the signed return address of one of our mails (`outbox_id`, found by its VERP
    token) marks that mail bounced and tells the people working the ticket; `named` is a mail the
    report names by Message-ID, `reason` why the mail was taken for a bounce.
    """
    message = record_inbound(session, ticket, mail, raw, kind=MessageKind.BOUNCE, now=now, internal=True)
    report = mail.report
    detail = (
        f"{', '.join(report.recipients) or '?'}: {report.status} {report.diagnostic}".strip()
        if report
        else reason
    )
    row = session.get(OutboxMessage, outbox_id) if outbox_id is not None else None
    final = report is None or report.action != "delayed"
    # A mail already failed (or bounced) was told about once; a report on it now is news only.
    bounced = row is not None and final and row.status not in (OutboxStatus.FAILED, OutboxStatus.BOUNCED)
    actor = mail.sender or "mailer-daemon"
    if row is not None and bounced:
        row.status = OutboxStatus.BOUNCED
        row.last_error = detail[:2000]
        record_event(
            session,
            ticket,
            EventKind.DELIVERY_FAILED,
            actor,
            now=now,
            new=OutboxStatus.BOUNCED.value,
            reason=f"{row.kind} mail to {row.recipient}: {detail}",
            data={"outbox_id": row.id, "recipient": row.recipient, "kind": row.kind, "error": detail},
            message_id=message.id,
        )
        if failures is not None:
            failures.tell(session, ticket, row, detail, now=now)
    else:
        # Information only: a report to the plain address (anyone can write one naming our
        # Message-IDs), a delay, or news about a mail whose failure is already recorded.
        why = (
            "a delay"
            if not final
            else "not sent to a signed return address"
            if row is None
            else "known already"
        )
        record_event(
            session,
            ticket,
            EventKind.DELIVERY_REPORT,
            actor,
            now=now,
            reason=f"{detail} ({why}; no mail's status changed)",
            data={"outbox_id": outbox_id, "names_outbox": named},
            message_id=message.id,
        )
    log.info(
        "BOUNCE #%d outbox=%s %s %s",
        ticket.id,
        outbox_id or named,
        "bounced" if bounced else "noted",
        detail[:200],
    )
    return detail
