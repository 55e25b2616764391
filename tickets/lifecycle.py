"""The lifecycle timer: nobody waits forever. Runs inside the SLA timer's pass (`tickets.sla_timer`).

* A ticket `waiting` on the requester gets one reminder after `[lifecycle] waiting_reminder`
  business days, and is resolved `waiting_close` business days after that reminder, with a note
  and a mail in the requester's language that says a reply opens it again.
* A `resolved` ticket closes `resolved_close` calendar days after it was resolved.

A business day is a day the `[sla]` business hours are open that is not a holiday; "3 business
days" after Friday 10:00 is Wednesday 10:00. Each step is a row in `lifecycle_steps`, unique per
ticket, step and the moment the ticket entered the status, written in the same transaction as
the mail it causes: a second pass, or a second process, finds it taken and does nothing. A reply
takes a waiting ticket back to open (`tickets.status`), which stops the countdown; waiting again
later starts a new one. Every step is an event on the ticket that says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.loop import LifecycleStep
from models.outbox import OutboxKind
from models.ticket import SPAM_TAG, EventKind, Ticket, TicketEvent, TicketStatus
from routing.calendar import BusinessHours, HolidayCalendar
from tickets.events import record_event
from tickets.loop_config import LifecycleConfig
from tickets.mailer import Mailer
from tickets.status import set_status

log = logging.getLogger("helpdesk.lifecycle")

ACTOR = "lifecycle-timer"
REMINDER, AUTO_RESOLVED, AUTO_CLOSED = "waiting_reminder", "waiting_close", "resolved_close"
# How far the search for business days looks ahead before it gives up (a calendar of only holidays).
MAX_DAYS_SEARCHED = 366


def add_business_days(
    start: datetime, days: int, hours: BusinessHours, holidays: HolidayCalendar
) -> datetime:
    """The same local time of day `days` business days after `start` (days the hours are open, not holidays)."""
    zone = hours.zone
    local = start.astimezone(zone)
    open_days = set(hours.schedule.weekly_minutes())
    day, counted = local.date(), 0
    for _ in range(MAX_DAYS_SEARCHED):
        if counted >= days:
            break
        day += timedelta(days=1)
        if day.weekday() in open_days and not holidays.is_holiday(day):
            counted += 1
    return local.replace(year=day.year, month=day.month, day=day.day).astimezone(UTC)


@dataclass
class LifecycleCounts:
    reminders: int = 0
    auto_resolved: int = 0
    auto_closed: int = 0


class Lifecycle:
    """Takes the due lifecycle steps of one ticket at a time, in the caller's transaction."""

    def __init__(
        self, mailer: Mailer, config: LifecycleConfig, hours: BusinessHours, holidays: HolidayCalendar
    ) -> None:
        self.mailer = mailer
        self.config = config
        self.hours = hours
        self.holidays = holidays

    def candidates(self, session: Session) -> list[int]:
        """The tickets a step may be due on: waiting or resolved ones."""
        statuses = (TicketStatus.WAITING, TicketStatus.RESOLVED)
        return list(session.scalars(select(Ticket.id).where(Ticket.status.in_(statuses)).order_by(Ticket.id)))

    def check_ticket(self, session: Session, ticket: Ticket, now: datetime, counts: LifecycleCounts) -> None:
        if SPAM_TAG in ticket.tags:
            return
        if ticket.status is TicketStatus.WAITING:
            self._waiting(session, ticket, now, counts)
        elif ticket.status is TicketStatus.RESOLVED and self.config.resolved_close and ticket.resolved_at:
            since = ticket.resolved_at
            if now >= since + timedelta(days=self.config.resolved_close) and self._take(
                session, ticket, AUTO_CLOSED, since, now
            ):
                why = f"resolved {self.config.resolved_close} days ago ({_day(since)}) and not reopened"
                set_status(session, ticket, TicketStatus.CLOSED, ACTOR, now=now, reason=why)
                self._event(session, ticket, AUTO_CLOSED, why, now)
                counts.auto_closed += 1

    def _waiting(self, session: Session, ticket: Ticket, now: datetime, counts: LifecycleCounts) -> None:
        config = self.config
        since = self.waiting_since(session, ticket)
        if not config.waiting_reminder:
            return
        reminded = session.scalar(
            select(LifecycleStep.at).where(
                LifecycleStep.ticket_id == ticket.id,
                LifecycleStep.step == REMINDER,
                LifecycleStep.since == since,
            )
        )
        if reminded is None:
            due = add_business_days(since, config.waiting_reminder, self.hours, self.holidays)
            if now < due or not self._take(session, ticket, REMINDER, since, now):
                return
            why = f"waiting for the requester since {_day(since)}: {config.waiting_reminder} business days"
            self._event(session, ticket, REMINDER, why, now)
            self.mailer.mail_requester(
                session,
                ticket,
                "requester_waiting_reminder",
                now=now,
                kind=OutboxKind.REMINDER,
                automatic=True,
                context={"close_days": config.waiting_close},
            )
            counts.reminders += 1
            return
        if not config.waiting_close:
            return
        due = add_business_days(reminded, config.waiting_close, self.hours, self.holidays)
        if now < due or not self._take(session, ticket, AUTO_RESOLVED, since, now):
            return
        why = (
            f"no answer from the requester {config.waiting_close} business days after the reminder "
            f"of {_day(reminded)}"
        )
        if not ticket.resolution:
            ticket.resolution = f"Resolved automatically: {why}."
        set_status(session, ticket, TicketStatus.RESOLVED, ACTOR, now=now, reason=why)
        self._event(session, ticket, AUTO_RESOLVED, why, now)
        self.mailer.mail_requester(
            session, ticket, "requester_auto_resolved", now=now, kind=OutboxKind.AUTO_RESOLVED, automatic=True
        )
        counts.auto_resolved += 1

    @staticmethod
    def waiting_since(session: Session, ticket: Ticket) -> datetime:
        """When the ticket last went to waiting (its newest status change to it)."""
        at = session.scalar(
            select(TicketEvent.at)
            .where(
                TicketEvent.ticket_id == ticket.id,
                TicketEvent.kind == EventKind.STATUS.value,
                TicketEvent.new == TicketStatus.WAITING.value,
            )
            .order_by(TicketEvent.id.desc())
            .limit(1)
        )
        return at or ticket.updated_at

    def _take(self, session: Session, ticket: Ticket, step: str, since: datetime, now: datetime) -> bool:
        """Claim `step` for this clock start; False when another pass or process took it already."""
        try:
            with session.begin_nested():
                session.add(LifecycleStep(ticket_id=ticket.id, step=step, since=since, at=now))
        except IntegrityError:
            log.info("LIFECYCLE #%d %s taken already", ticket.id, step)
            return False
        return True

    def _event(self, session: Session, ticket: Ticket, step: str, why: str, now: datetime) -> None:
        record_event(session, ticket, EventKind.LIFECYCLE, ACTOR, now=now, new=step, reason=why)
        log.info("LIFECYCLE #%d %s: %s", ticket.id, step, why)


def _day(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="minutes").replace("+00:00", "Z")
