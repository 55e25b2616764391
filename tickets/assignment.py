"""Giving tickets to technicians: the best-skilled one on shift, escalation, and the mail it causes.

`routing.assign` scores the candidates (skill, language, tier, load, shift); this module feeds it
from the database, records the decision as an event with the score and its parts, and writes the
mail in the same transaction: the assignment notice to the technician (with the requester's text,
why it was routed so, the most similar resolved tickets and the command help), a short notice to
the requester, or, when nobody fits, one mail to each coordinator saying why.

Every notice to a technician or coordinator on its own draws on their hourly budget
(`tickets.digests`): past it the ticket is still assigned, and the notice waits for their digest.
Tickets are not held back from assignment instead: a real surge (an outage, hundreds of colleagues
writing at once) must reach the technicians without waiting for a coordinator to release it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.message import Message
from models.outbox import OutboxKind
from models.ticket import ACTIVE_STATUSES, DONE_STATUSES, EventKind, Priority, Ticket, TicketStatus
from routing.assign import AssignmentDecision, TicketNeeds, choose_technician, escalate
from tickets.events import record_event
from tickets.mailer import Mailer
from tickets.participants import add_participant
from tickets.roster import StaffMember, note_assigned, staff
from tickets.similar import similar_resolved
from tickets.staff_notices import StaffNotices, routing_summary
from tickets.status import set_status

log = logging.getLogger("helpdesk.assign")


def open_loads(session: Session) -> dict[str, list[Priority]]:
    loads: dict[str, list[Priority]] = {}
    rows = session.execute(
        select(Ticket.assignee, Ticket.priority).where(
            Ticket.assignee.is_not(None), Ticket.status.in_(ACTIVE_STATUSES)
        )
    )
    for assignee, priority in rows:
        loads.setdefault(str(assignee), []).append(priority)
    return loads


def needs_of(ticket: Ticket) -> TicketNeeds:
    return TicketNeeds(ticket.category, ticket.priority, ticket.language or "und")


class Assignment:
    """The assigner the pipeline, technician commands and the SLA timer share."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self.notices = StaffNotices(mailer)

    # -- choosing ----------------------------------------------------------------------------

    def _candidates(self, session: Session) -> tuple[list[StaffMember], dict[str, list[Priority]]]:
        return staff(session), open_loads(session)

    def decide(
        self,
        session: Session,
        ticket: Ticket,
        *,
        now: datetime,
        exclude: Collection[str] | dict[str, str] = (),
        min_tier: int = 1,
    ) -> tuple[AssignmentDecision, list[StaffMember]]:
        members, loads = self._candidates(session)
        decision = choose_technician(
            needs_of(ticket),
            [m.technician for m in members],
            now=now,
            loads=loads,
            last_assigned={m.email: m.last_assigned_at for m in members if m.last_assigned_at is not None},
            exclude=exclude,
            min_tier=min_tier,
        )
        return decision, members

    def assign_new(self, session: Session, ticket: Ticket, *, now: datetime) -> None:
        """A routed ticket (new, or reopened without an assignee who can still take it)."""
        members = {m.email: m for m in staff(session)}
        if not members:
            return  # a desk without technicians: tickets wait in triage for whoever reads them
        fixed = ticket.assignee
        if fixed is not None:
            member = members.get(fixed)
            if member is not None and member.technician.active:
                self.give_to(
                    session, ticket, member, now=now, actor="rule", reason="assigned by a routing rule"
                )
                return
            ticket.assignee = None
            record_event(
                session,
                ticket,
                EventKind.ASSIGNMENT_NOTE,
                "system",
                now=now,
                reason=f"the rule's assignee {fixed} is not an active technician; choosing by skill instead",
            )
        self.assign(session, ticket, now=now, actor="system", reason="new ticket")

    def reopened(self, session: Session, ticket: Ticket, *, now: datetime) -> None:
        """A reopened ticket stays with its technician while they are active; otherwise it is given anew."""
        member = next((m for m in staff(session) if m.email == ticket.assignee), None)
        if member is not None and member.technician.active:
            return
        previous = ticket.assignee
        ticket.assignee = None
        if staff(session):
            self.assign(
                session,
                ticket,
                now=now,
                actor="system",
                reason=f"reopened; {previous or 'nobody'} can no longer take it",
            )

    def assign(
        self,
        session: Session,
        ticket: Ticket,
        *,
        now: datetime,
        actor: str,
        reason: str,
        exclude: Collection[str] | dict[str, str] = (),
        min_tier: int = 1,
        tell_coordinators: bool = True,
    ) -> AssignmentDecision:
        decision, members = self.decide(session, ticket, now=now, exclude=exclude, min_tier=min_tier)
        chosen = next((m for m in members if m.email == decision.email), None)
        if chosen is not None:
            self.give_to(session, ticket, chosen, now=now, actor=actor, reason=reason, decision=decision)
        else:
            self.nobody_fits(session, ticket, decision, now=now, reason=reason, tell=tell_coordinators)
        return decision

    def escalate(self, session: Session, ticket: Ticket, *, now: datetime, actor: str, reason: str) -> bool:
        """To the best technician of the next tier up; False (coordinators told) when there is none."""
        members, loads = self._candidates(session)
        decision = escalate(
            needs_of(ticket),
            [m.technician for m in members],
            now=now,
            current_assignee=ticket.assignee,
            loads=loads,
            last_assigned={m.email: m.last_assigned_at for m in members if m.last_assigned_at is not None},
        )
        record_event(
            session,
            ticket,
            EventKind.ESCALATED,
            actor,
            now=now,
            old=ticket.assignee,
            new=decision.email,
            reason=reason,
            data=decision.reason(),
        )
        chosen = next((m for m in members if m.email == decision.email), None)
        previous = ticket.assignee
        if chosen is None:
            self.nobody_fits(session, ticket, decision, now=now, reason=f"escalation: {reason}", tell=True)
            return False
        self.give_to(
            session,
            ticket,
            chosen,
            now=now,
            actor=actor,
            reason=f"escalated: {reason}",
            decision=decision,
            escalated_from=previous,
        )
        self.notices.tell_coordinators(
            session,
            ticket,
            "coordinator_escalated",
            now=now,
            context={
                "reason": reason,
                "previous": previous,
                "new": chosen.technician.name,
                "new_email": chosen.email,
                "tier": chosen.technician.tier,
            },
        )
        return True

    # -- doing -------------------------------------------------------------------------------

    def give_to(
        self,
        session: Session,
        ticket: Ticket,
        member: StaffMember,
        *,
        now: datetime,
        actor: str,
        reason: str,
        decision: AssignmentDecision | None = None,
        escalated_from: str | None = None,
    ) -> None:
        previous = ticket.assignee
        tech = member.technician
        ticket.assignee = tech.email
        ticket.assigned_at = now
        # On the ticket from now on: a mail of theirs quoting [#N] threads here (and is then checked).
        add_participant(session, ticket, tech.email, tech.name, "technician", notify=False)
        note_assigned(session, member.id, now)
        data: dict[str, Any] = decision.reason() if decision is not None else {"technician": tech.email}
        record_event(
            session,
            ticket,
            EventKind.ASSIGNED,
            actor,
            now=now,
            old=previous if previous != tech.email else None,
            new=tech.email,
            reason=reason,
            data=data,
        )
        # A ticket assigned as it is opened: its acknowledgment names the technician, no second mail.
        fresh = ticket.status is TicketStatus.NEW
        if fresh:
            set_status(session, ticket, TicketStatus.OPEN, actor, now=now, reason="assigned")
        log.info(
            "ASSIGNED #%d to=%s score=%s by=%s %s",
            ticket.id,
            tech.email,
            decision.score if decision else "-",
            actor,
            reason,
        )
        first_text = session.execute(
            select(Message.new_text)
            .where(Message.ticket_id == ticket.id, Message.direction == "in", Message.internal.is_(False))
            .order_by(Message.id)
            .limit(1)
        ).scalar()
        self.notices.mail_technician(
            session,
            ticket,
            member,
            "technician_assigned",
            now=now,
            kind=OutboxKind.ASSIGNMENT,
            context={
                "requester_text": (first_text or "").strip(),
                "routing": routing_summary(ticket),
                "score": decision.score if decision else None,
                "parts": dict(decision.parts) if decision else {},
                "similar": similar_resolved(session, ticket, first_text or ""),
                "escalated_from": escalated_from,
                "reason": reason,
            },
        )
        done = ticket.status in DONE_STATUSES
        if previous is None and not fresh and ticket.requester and not done:
            self.mailer.mail_requester(
                session,
                ticket,
                "requester_assigned",
                now=now,
                kind=OutboxKind.ASSIGNED,
                automatic=True,
                context={"technician_name": tech.name},
            )

    def nobody_fits(
        self,
        session: Session,
        ticket: Ticket,
        decision: AssignmentDecision,
        *,
        now: datetime,
        reason: str,
        tell: bool,
    ) -> None:
        explanation = decision.explanation() or "no technician fits"
        record_event(
            session,
            ticket,
            EventKind.UNASSIGNED,
            "system",
            now=now,
            reason=f"{reason}: nobody fits",
            data=decision.reason(),
        )
        log.info("UNASSIGNED #%d nobody fits: %s", ticket.id, explanation.replace("\n", "; "))
        if tell:
            self.notices.tell_coordinators(
                session,
                ticket,
                "coordinator_unassigned",
                now=now,
                context={"explanation": explanation.splitlines(), "reason": reason},
            )
