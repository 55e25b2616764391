"""The SLA timer: reminds at 75% of a target, escalates at breach, and keeps tickets with someone on shift.

Runs in `helpdesk serve` (one process at a time, elected) every `check_interval`, and as
`helpdesk sla check` for cron. Each ticket is handled in a transaction of its own, and each SLA
step is recorded on the ticket (`sla_done`) in the same transaction as the mail it causes, so
running the check twice never sends anything twice. Every step is also an event on the ticket.

Besides the targets, the timer:
* gives unassigned tickets to a technician as soon as one fits (someone came on shift);
* moves a ticket whose assignee was deactivated, or is off shift while the ticket's next SLA
  target falls before their next shift starts;
* sends the digests of staff notices that the hourly budget held back, and prunes old budget
  counters;
* takes the lifecycle steps (`tickets.lifecycle`): reminders to requesters who owe an answer,
  auto-resolution of tickets nobody answered, auto-close of resolved ones.

Tickets an upstream filter marked as spam are left alone: they wait for the coordinator, and no
timer mails anybody about them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.leases import bound_idle_transaction
from models.outbox import OutboxKind
from models.ticket import OPEN_STATUSES, SPAM_TAG, EventKind, Ticket, TicketEvent, TicketStatus
from routing.shifts import is_on_shift, next_shift_start
from routing.sla import SlaAction, SlaConfig, SlaFacts, SlaStep, due_times, paused_spans, sla_state
from tickets.assignment import Assignment
from tickets.events import record_event
from tickets.lifecycle import Lifecycle, LifecycleCounts
from tickets.roster import StaffMember, staff

# A ticket's transaction left idle this long is a stopped process's (SIGSTOP, a frozen VM): on
# PostgreSQL the server ends it, so the ticket's row lock does not hold up the other daemons' workers.
IDLE_IN_TRANSACTION = 15.0

log = logging.getLogger("helpdesk.sla")


@dataclass
class SlaReport:
    checked: int = 0
    warnings: int = 0
    breaches: int = 0
    escalations: int = 0
    assigned: int = 0
    reassigned: int = 0
    digests: int = 0
    reminders: int = 0  # lifecycle: requesters reminded that we wait for them
    auto_resolved: int = 0  # lifecycle: waiting tickets resolved after the reminder went unanswered
    auto_closed: int = 0  # lifecycle: resolved tickets closed
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def ticket_facts(session: Session, ticket: Ticket) -> SlaFacts:
    changes = session.execute(
        select(TicketEvent.at, TicketEvent.new)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == EventKind.STATUS.value)
        .order_by(TicketEvent.id)
    ).all()
    steps = frozenset(SlaStep(s) for s in ticket.sla_done if s in {step.value for step in SlaStep})
    return SlaFacts(
        created_at=ticket.created_at,
        priority=ticket.priority,
        status=ticket.status,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        steps_done=steps,
        paused=paused_spans([(at, TicketStatus(new)) for at, new in changes if new]),
    )


class SlaTimer:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        assignment: Assignment,
        config: SlaConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        interval: float = 60.0,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        self._sessions = sessions
        self._assignment = assignment
        self._notices = assignment.notices
        self._config = config
        self._clock = clock
        self.interval = interval
        self.lifecycle = lifecycle

    def check(self) -> SlaReport:
        """One pass over every open ticket."""
        report = SlaReport()
        now = self._clock()
        with self._sessions() as session:
            ids = list(
                session.scalars(select(Ticket.id).where(Ticket.status.in_(OPEN_STATUSES)).order_by(Ticket.id))
            )
        for ticket_id in ids:
            with self._sessions() as session:
                try:
                    bound_idle_transaction(session, IDLE_IN_TRANSACTION)
                    ticket = session.get(Ticket, ticket_id)
                    if ticket is None or ticket.status not in OPEN_STATUSES:
                        continue
                    report.checked += 1
                    self._check_ticket(session, ticket, now, report)
                    session.commit()
                except Exception as exc:  # one bad ticket must not stop the others
                    session.rollback()
                    log.exception("SLA check of #%d failed", ticket_id)
                    report.errors.append(f"#{ticket_id}: {exc.__class__.__name__}: {exc}")
        if self.lifecycle is not None:
            self._lifecycle(self.lifecycle, now, report)
        with self._sessions() as session:
            try:
                bound_idle_transaction(session, IDLE_IN_TRANSACTION)
                report.digests = self._notices.digests.send(session, now)
                self._assignment.mailer.budgets.prune(session, now)
                session.commit()
            except Exception as exc:
                session.rollback()
                log.exception("sending the digests of held notices failed")
                report.errors.append(f"digests: {exc.__class__.__name__}: {exc}")
        if (
            report.digests
            or report.warnings
            or report.breaches
            or report.assigned
            or report.reassigned
            or report.reminders
            or report.auto_resolved
            or report.auto_closed
        ):
            log.info("SLA CHECKED %d tickets: %s", report.checked, report.as_dict())
        return report

    def _lifecycle(self, lifecycle: Lifecycle, now: datetime, report: SlaReport) -> None:
        """Reminders, auto-resolution and auto-close: each ticket in a transaction of its own."""
        counts = LifecycleCounts()
        with self._sessions() as session:
            ids = lifecycle.candidates(session)
        for ticket_id in ids:
            with self._sessions() as session:
                try:
                    bound_idle_transaction(session, IDLE_IN_TRANSACTION)
                    ticket = session.get(Ticket, ticket_id)
                    if ticket is not None:
                        lifecycle.check_ticket(session, ticket, now, counts)
                    session.commit()
                except Exception as exc:  # one bad ticket must not stop the others
                    session.rollback()
                    log.exception("lifecycle check of #%d failed", ticket_id)
                    report.errors.append(f"#{ticket_id}: {exc.__class__.__name__}: {exc}")
        report.reminders, report.auto_resolved, report.auto_closed = (
            counts.reminders,
            counts.auto_resolved,
            counts.auto_closed,
        )

    def _check_ticket(self, session: Session, ticket: Ticket, now: datetime, report: SlaReport) -> None:
        if SPAM_TAG in ticket.tags:
            return
        members = {m.email: m for m in staff(session)}
        for action in sla_state(ticket_facts(session, ticket), now, self._config):
            self._take(session, ticket, action, now, members, report)
        if members and ticket.status is not TicketStatus.WAITING:
            self._keep_staffed(session, ticket, now, members, report)

    def _take(
        self,
        session: Session,
        ticket: Ticket,
        action: SlaAction,
        now: datetime,
        members: dict[str, StaffMember],
        report: SlaReport,
    ) -> None:
        ticket.sla_done = [*ticket.sla_done, action.step.value]
        target = action.step.target.replace("_", " ")
        due = action.due_at.isoformat(timespec="minutes")
        record_event(
            session,
            ticket,
            EventKind.SLA,
            "sla-timer",
            now=now,
            new=action.step.value,
            reason=f"{target} target due at {due}",
            data=action.as_dict(),
        )
        log.info("SLA #%d %s (due %s)", ticket.id, action.step.value, due)
        if action.escalate:
            report.breaches += 1
            before = ticket.assignee
            escalated = self._assignment.escalate(
                session,
                ticket,
                now=now,
                actor="sla-timer",
                reason=f"the {target} target was missed (due {due})",
            )
            report.escalations += escalated
            self._notices.tell_coordinators(
                session,
                ticket,
                "coordinator_sla_breach",
                now=now,
                context={
                    "target": target,
                    "due_at": due,
                    "escalation": f"to {ticket.assignee}"
                    if escalated
                    else f"nobody above {before or 'tier 0'} fits",
                },
            )
            return
        report.warnings += 1
        member = members.get(ticket.assignee or "")
        if member is None:
            self._notices.tell_coordinators(
                session, ticket, "coordinator_sla_warning", now=now, context={"target": target, "due_at": due}
            )
            return
        self._notices.mail_technician(
            session,
            ticket,
            member,
            "technician_sla_warning",
            now=now,
            kind=OutboxKind.SLA_WARNING,
            context={"target": target, "due_at": due},
        )

    def _keep_staffed(
        self,
        session: Session,
        ticket: Ticket,
        now: datetime,
        members: dict[str, StaffMember],
        report: SlaReport,
    ) -> None:
        current = members.get(ticket.assignee or "")
        if ticket.assignee is None:
            decision = self._assignment.assign(
                session,
                ticket,
                now=now,
                actor="sla-timer",
                reason="a technician is available now",
                tell_coordinators=False,
            )
            report.assigned += decision.technician is not None
            return
        if current is None or not current.technician.active:
            why = f"{ticket.assignee} is no longer an active technician"
        elif not is_on_shift(current.technician, now) and self._due_before_return(ticket, current, now):
            why = f"{ticket.assignee} is off shift until after the next SLA target"
        else:
            return
        previous = ticket.assignee
        decision = self._assignment.decide(
            session, ticket, now=now, exclude={previous: "the current assignee"}
        )[0]
        if decision.technician is None:
            return  # nobody better now: it stays, and the next check tries again
        ticket.assignee = None
        self._assignment.assign(
            session,
            ticket,
            now=now,
            actor="sla-timer",
            reason=f"reassigned: {why}",
            exclude={previous: "the current assignee"},
            tell_coordinators=False,
        )
        report.reassigned += 1

    def _due_before_return(self, ticket: Ticket, member: StaffMember, now: datetime) -> bool:
        back = next_shift_start(member.technician, now)
        if back is None:
            return False
        first, resolution = due_times(ticket.created_at, ticket.priority, self._config)
        due = resolution if ticket.first_response_at is not None else min(first, resolution)
        return due < back

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.check()
            except Exception:
                log.exception("SLA timer pass failed; trying again next time")
            stop.wait(self.interval)
