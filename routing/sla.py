"""SLA: the targets per priority, when a ticket's targets fall due, and what the timer must do now.

Each priority has two targets, first response and resolution, on one of two clocks: business
hours (the weekly `hours` in `timezone`, less holidays) or calendar hours (real elapsed time).
`sla_state` looks at a ticket's facts and the time and returns the steps due: a warning at
`warn_at` (75%) of a target, which reminds the assignee, and a breach at 100%, which escalates to
the next tier and tells the coordinators.

Idempotence: every step has a name (`SlaStep`). The caller performs the actions returned, records
their steps with the ticket in the same transaction (e.g. as `sla` events) and passes the recorded
steps back as `SlaFacts.steps_done`; a step is returned only while it is not done, so running
`helpdesk sla check` twice does nothing the second time. A warning is skipped when its breach is
already due (a timer that was down sends the breach alone).

Paused clock: the resolution clock stands still while the ticket waits for the requester
(`waiting`) and while it is resolved or closed; reopening it starts the clock again from where it
stopped. The caller passes those spans (`SlaFacts.paused`, see `paused_spans`, derived from the
status changes); the due time moves later by the clock time they took. The first response clock
never pauses: waiting for an answer means someone already asked.

Steps stay done when the priority changes or the ticket reopens: the coordinators heard once.

The defaults are here (`DEFAULT_TARGETS`, `DEFAULT_HOURS`, ...); the composition root reads the
`[sla]` table into `SlaConfig` with the grammar of every other setting (helpdesk/settings/sla.py).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from models.kinds import DONE_STATUSES, PAUSED_STATUSES, Priority, TicketStatus
from routing.calendar import (
    NO_HOLIDAYS,
    BusinessHours,
    HolidayCalendar,
    add_business_time,
    business_time_between,
)
from routing.shifts import require_aware

__all__ = [
    "DEFAULT_TARGETS",
    "SlaAction",
    "SlaConfig",
    "SlaFacts",
    "SlaOutcome",
    "SlaStep",
    "SlaTarget",
    "add_business_time",
    "due_times",
    "paused_spans",
    "sla_outcome",
    "sla_state",
]

WARN_AT = 0.75
DEFAULT_HOURS = ("mon-fri 09:00-17:00",)
DEFAULT_TIMEZONE = "UTC"
# (first response, resolution, business hours?) per priority. With the default hours a business
# day ("1d") is 8 hours. Urgent runs on the calendar: an outage at 18:00 on Friday cannot wait
# for Monday.
DEFAULT_TARGETS: Mapping[Priority, tuple[str, str, bool]] = {
    Priority.URGENT: ("1h", "4h", False),
    Priority.HIGH: ("4h", "1d", True),
    Priority.NORMAL: ("8h", "3d", True),
    Priority.LOW: ("2d", "10d", True),
}
CALENDAR_DAY = timedelta(days=1)


class SlaStep(enum.StrEnum):
    FIRST_RESPONSE_WARNING = "first_response_warning"
    FIRST_RESPONSE_BREACH = "first_response_breach"
    RESOLUTION_WARNING = "resolution_warning"
    RESOLUTION_BREACH = "resolution_breach"

    @property
    def target(self) -> str:
        """ "first_response" or "resolution"."""
        return self.value.rpartition("_")[0]

    @property
    def is_breach(self) -> bool:
        return self.value.endswith("_breach")


@dataclass(frozen=True)
class SlaTarget:
    first_response: timedelta
    resolution: timedelta
    business_hours: bool  # measured on the business hours, else on the calendar


@dataclass(frozen=True)
class SlaConfig:
    targets: Mapping[Priority, SlaTarget]
    hours: BusinessHours
    holidays: HolidayCalendar = NO_HOLIDAYS
    warn_at: float = WARN_AT
    enabled: bool = True

    def target(self, priority: Priority) -> SlaTarget:
        return self.targets[priority]

    def add(self, start: datetime, duration: timedelta, target: SlaTarget) -> datetime:
        """`start` plus `duration` on the target's clock."""
        if target.business_hours:
            return add_business_time(start, duration, self.hours, self.holidays)
        require_aware(start)
        # In UTC: adding to a datetime in a zone moves its wall clock, which is not elapsed time.
        return start.astimezone(UTC) + duration

    def elapsed(self, start: datetime, end: datetime, target: SlaTarget) -> timedelta:
        """The clock time between two instants on the target's clock."""
        if target.business_hours:
            return business_time_between(start, end, self.hours, self.holidays)
        require_aware(start)
        require_aware(end)
        # In UTC: two datetimes in one zone subtract by wall clock, wrong across a DST change.
        return max(end.astimezone(UTC) - start.astimezone(UTC), timedelta(0))


@dataclass(frozen=True)
class SlaFacts:
    """What the SLA timer needs to know about one ticket."""

    created_at: datetime
    priority: Priority
    status: TicketStatus
    first_response_at: datetime | None = None
    resolved_at: datetime | None = None  # used by `sla_outcome`; the status decides if the clock runs
    steps_done: frozenset[SlaStep] = frozenset()
    # Spans when the resolution clock stood still (waiting, resolved, closed); an open end: still.
    paused: tuple[tuple[datetime, datetime | None], ...] = ()


@dataclass(frozen=True)
class SlaAction:
    """One step the timer must take now for a ticket."""

    step: SlaStep
    due_at: datetime  # when the target falls (or fell) due

    @property
    def remind_assignee(self) -> bool:
        """A warning: remind the assignee (the coordinators, when nobody is assigned)."""
        return not self.step.is_breach

    @property
    def escalate(self) -> bool:
        """A breach: escalate to the next tier."""
        return self.step.is_breach

    @property
    def notify_coordinators(self) -> bool:
        return self.step.is_breach

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step.value, "target": self.step.target, "due_at": self.due_at.isoformat()}


def paused_spans(
    changes: Sequence[tuple[datetime, TicketStatus]],
) -> tuple[tuple[datetime, datetime | None], ...]:
    """From a ticket's status changes in time order, the spans its resolution clock stood still."""
    spans: list[tuple[datetime, datetime | None]] = []
    since: datetime | None = None
    for at, status in changes:
        if status in PAUSED_STATUSES and since is None:
            since = at
        elif status not in PAUSED_STATUSES and since is not None:
            spans.append((since, at))
            since = None
    if since is not None:
        spans.append((since, None))
    return tuple(spans)


def due_times(
    created_at: datetime, priority: Priority, config: SlaConfig, *, paused: timedelta = timedelta(0)
) -> tuple[datetime, datetime]:
    """(first response due, resolution due); `paused` is resolution clock time spent paused."""
    target = config.target(priority)
    first = config.add(created_at, target.first_response, target)
    resolution = config.add(created_at, target.resolution + paused, target)
    return first, resolution


def sla_state(facts: SlaFacts, now: datetime, config: SlaConfig) -> list[SlaAction]:
    """The SLA steps due for this ticket at `now` that are not in `facts.steps_done`."""
    require_aware(now)
    if not config.enabled or facts.status in DONE_STATUSES:
        return []
    target = config.target(facts.priority)
    actions: list[SlaAction] = []
    if facts.first_response_at is None:
        actions.extend(
            _due_steps(
                now,
                warn_at=config.add(facts.created_at, target.first_response * config.warn_at, target),
                due_at=config.add(facts.created_at, target.first_response, target),
                warning=SlaStep.FIRST_RESPONSE_WARNING,
                breach=SlaStep.FIRST_RESPONSE_BREACH,
                done=facts.steps_done,
            )
        )
    if facts.status not in PAUSED_STATUSES:
        paused = _paused_time(facts, now, target, config)
        actions.extend(
            _due_steps(
                now,
                warn_at=config.add(facts.created_at, target.resolution * config.warn_at + paused, target),
                due_at=config.add(facts.created_at, target.resolution + paused, target),
                warning=SlaStep.RESOLUTION_WARNING,
                breach=SlaStep.RESOLUTION_BREACH,
                done=facts.steps_done,
            )
        )
    return actions


def _paused_time(facts: SlaFacts, until: datetime, target: SlaTarget, config: SlaConfig) -> timedelta:
    """The clock time of the paused spans before `until` (an open span runs to `until`)."""
    total = timedelta(0)
    for start, end in facts.paused:
        if start < until:
            total += config.elapsed(start, min(end or until, until), target)
    return total


@dataclass(frozen=True)
class SlaOutcome:
    """How a ticket stands against its targets, for reports."""

    first_response_due: datetime
    resolution_due: datetime
    # True met, False missed (or overdue now), None still running and not yet due.
    first_response_met: bool | None
    resolution_met: bool | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "first_response_due": self.first_response_due.isoformat(),
            "resolution_due": self.resolution_due.isoformat(),
            "first_response_met": self.first_response_met,
            "resolution_met": self.resolution_met,
        }


def sla_outcome(facts: SlaFacts, now: datetime, config: SlaConfig) -> SlaOutcome:
    """Whether the first response and the resolution came (or are still) within their targets.

    A resolved ticket is judged at `resolved_at`; the time it spent waiting before does not count.
    """
    require_aware(now)
    target = config.target(facts.priority)
    finished = facts.status in DONE_STATUSES and facts.resolved_at is not None
    until = facts.resolved_at if finished and facts.resolved_at is not None else now
    first_due, resolution_due = due_times(
        facts.created_at, facts.priority, config, paused=_paused_time(facts, until, target, config)
    )
    return SlaOutcome(
        first_response_due=first_due,
        resolution_due=resolution_due,
        first_response_met=_met(facts.first_response_at, first_due, now),
        resolution_met=_met(facts.resolved_at if finished else None, resolution_due, now),
    )


def _met(done_at: datetime | None, due_at: datetime, now: datetime) -> bool | None:
    if done_at is not None:
        return done_at <= due_at
    return False if now >= due_at else None


def _due_steps(
    now: datetime,
    *,
    warn_at: datetime,
    due_at: datetime,
    warning: SlaStep,
    breach: SlaStep,
    done: frozenset[SlaStep],
) -> list[SlaAction]:
    if now >= due_at:
        return [] if breach in done else [SlaAction(breach, due_at)]
    if now >= warn_at and warning not in done:
        return [SlaAction(warning, due_at)]
    return []
