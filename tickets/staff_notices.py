"""Mail to the staff about a ticket: technicians and coordinators, each with a reply address of their own.

Each notice carries a reply address signed for its recipient alone (a "w" token for a technician,
a "c" token for a coordinator), so they can work the ticket by replying; each draws on their
hourly budget of notices, and past it waits for their digest (`tickets.digests`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.outbox import OutboxKind
from models.ticket import Ticket
from notify.tokens import coordinator_token, work_token
from tickets.digests import NoticeDigests
from tickets.mailer import Mailer
from tickets.roster import StaffMember, coordinators, staff, technician_by_email

STRANGER_TEXT_MAX = 4000  # characters of a stranger's mail quoted to staff; the whole is on the ticket


def routing_summary(ticket: Ticket) -> str:
    routing = ticket.routing or {}
    parts = []
    for field in ("category", "priority"):
        decision = routing.get(field) or {}
        if decision:
            line = f"{field} {decision.get('value')} by {decision.get('reason')}"
            if decision.get("top_terms"):
                line += f" (terms: {', '.join(decision['top_terms'][:6])})"
            parts.append(line)
    return "; ".join(parts) or "set by hand"


class StaffNotices:
    """Mails technicians and coordinators about tickets, within their hourly budget of notices."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self.digests = NoticeDigests(mailer)

    def tell_assignee(self, session: Session, ticket: Ticket, text: str, *, now: datetime) -> None:
        """The assignee hears about the requester's reply, with a reply address that works for commands."""
        member = next((m for m in staff(session) if m.email == ticket.assignee), None)
        if member is None:
            return
        self.mail_technician(
            session,
            ticket,
            member,
            "technician_requester_replied",
            now=now,
            kind=OutboxKind.REQUESTER_REPLIED,
            context={"text": text.strip()},
        )

    def tell_stranger(
        self, session: Session, ticket: Ticket, sender: str, name: str, text: str, *, now: datetime
    ) -> None:
        """Someone not on the ticket wrote to it: the assignee hears of it, or the coordinators
        when nobody active has the ticket, with the `#add` line that would let them in."""
        context = {"stranger": sender, "stranger_name": name, "text": text.strip()[:STRANGER_TEXT_MAX]}
        member = technician_by_email(session, ticket.assignee) if ticket.assignee else None
        if member is not None and member.technician.active:
            self.mail_technician(
                session,
                ticket,
                member,
                "technician_stranger_wrote",
                now=now,
                kind=OutboxKind.STRANGER_NOTICE,
                context=context,
            )
            return
        self.tell_coordinators(
            session,
            ticket,
            "coordinator_stranger_wrote",
            now=now,
            context=context,
            kind=OutboxKind.STRANGER_NOTICE,
        )

    def mail_technician(
        self,
        session: Session,
        ticket: Ticket,
        member: StaffMember,
        template: str,
        *,
        now: datetime,
        kind: OutboxKind,
        context: dict[str, Any],
    ) -> None:
        """Mail a technician about a ticket in their language, with the reply address signed for them
        (or hold the notice for their digest when their hourly budget is used up)."""
        tech = member.technician
        language = tech.languages[0] if tech.languages else "en"
        reply_to = self.mailer.identity.plus_address(
            work_token(self.mailer.identity.secret, ticket.id, member.id, now=now)
        )
        if self.digests.hold(session, ticket, (tech.name, tech.email), language, template, reply_to, now=now):
            return
        self.mailer.mail(
            session,
            ticket,
            template,
            to=(tech.name, tech.email),
            language=language,
            reply_to=reply_to,
            now=now,
            kind=kind,
            automatic=False,
            context={"technician": tech, **context},
        )

    def tell_coordinators(
        self,
        session: Session,
        ticket: Ticket,
        template: str,
        *,
        now: datetime,
        context: dict[str, Any],
        kind: OutboxKind = OutboxKind.COORDINATOR,
    ) -> int:
        sent = 0
        for coord_id, coord in coordinators(session):
            reply_to = self.mailer.identity.plus_address(
                coordinator_token(self.mailer.identity.secret, ticket.id, coord_id, now=now)
            )
            to = (coord.name, coord.email)
            if self.digests.hold(session, ticket, to, coord.language, template, reply_to, now=now):
                continue
            queued = self.mailer.mail(
                session,
                ticket,
                template,
                to=to,
                language=coord.language,
                reply_to=reply_to,
                now=now,
                kind=kind,
                automatic=False,
                context={"coordinator": coord, "routing": routing_summary(ticket), **context},
            )
            sent += queued is not None
        return sent
