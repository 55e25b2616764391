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
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from models.ticket import DONE_STATUSES, PAUSED_STATUSES, Priority, TicketStatus
from routing.calendar import (
    NO_HOLIDAYS,
    BusinessHours,
    CalendarError,
    HolidayCalendar,
    add_business_time,
    business_time_between,
)
from routing.errors import RoutingError
from routing.shifts import Schedule, ShiftSpecError, check_timezone, parse_schedule, require_aware

T = TypeVar("T")

__all__ = [
    "DEFAULT_TARGETS",
    "SlaAction",
    "SlaConfig",
    "SlaConfigError",
    "SlaFacts",
    "SlaOutcome",
    "SlaStep",
    "SlaTarget",
    "add_business_time",
    "default_sla_config",
    "due_times",
    "parse_duration",
    "parse_sla_config",
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

SLA_KEYS = ("enabled", "timezone", "hours", "holidays", "country", "subdivision", "business_day", "warn_at")
TARGET_KEYS = ("first_response", "resolution", "business_hours")

_DURATION_RE = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?$")


class SlaConfigError(RoutingError, ValueError):
    """The `[sla]` settings are invalid; `problems` names the key of each problem."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


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


def default_sla_config() -> SlaConfig:
    """The defaults of `DEFAULT_TARGETS` on `DEFAULT_HOURS` in UTC, with no holidays."""
    return parse_sla_config({})


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


# The `[sla]` table of helpdesk.toml.


def parse_duration(text: Any, *, day: timedelta) -> timedelta:
    """Read "30m", "4h", "2d", "1h30m"; a day is `day` long (a business day, or 24 hours)."""
    if not isinstance(text, str):
        raise ValueError(f'must be a duration like "30m", "4h" or "2d", got {text!r}')
    match = _DURATION_RE.match("".join(text.split()).lower())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f'"{text}" is not a duration (write e.g. "30m", "4h", "2d" or "1h30m")')
    days, hours, minutes = (int(match[unit] or 0) for unit in ("d", "h", "m"))
    duration = days * day + timedelta(hours=hours, minutes=minutes)
    if duration <= timedelta(0):
        raise ValueError(f'"{text}" must be longer than zero')
    return duration


def parse_sla_config(table: Mapping[str, Any]) -> SlaConfig:
    """Build the SLA settings from the `[sla]` table; raise `SlaConfigError` naming each bad key."""
    problems: list[str] = []
    priorities = {priority.value: priority for priority in Priority}
    for key in table:
        if key not in SLA_KEYS and key not in priorities:
            known = ", ".join((*SLA_KEYS, *(f"[sla.{p}]" for p in priorities)))
            problems.append(f"sla.{key}: unknown key (known: {known})")

    def check(key: str, default: T, checker: Callable[[Any], T]) -> T:
        if key not in table:
            return default
        try:
            return checker(table[key])
        except (ValueError, ShiftSpecError, CalendarError) as exc:
            problems.append(f"sla.{key}: {exc}")
            return default

    enabled = check("enabled", True, _check_bool)
    timezone = check("timezone", DEFAULT_TIMEZONE, check_timezone)
    schedule = check("hours", parse_schedule(DEFAULT_HOURS), _check_hours)
    hours = BusinessHours(schedule, timezone)
    dates: frozenset[date] = check("holidays", frozenset(), _check_dates)
    country = check("country", None, _check_country)
    subdivision = check("subdivision", None, _check_text)
    warn_at = check("warn_at", WARN_AT, _check_fraction)
    business_day = check("business_day", hours.business_day, lambda v: parse_duration(v, day=CALENDAR_DAY))
    try:
        holidays = HolidayCalendar(dates=dates, country=country, subdivision=subdivision)
    except CalendarError as exc:
        problems.append(f"sla.{'subdivision' if subdivision else 'country'}: {exc}")
        holidays = HolidayCalendar(dates=dates)

    targets: dict[Priority, SlaTarget] = {}
    for priority in Priority:
        targets[priority] = _target(priority, table.get(priority.value, {}), business_day, problems)
    if problems:
        raise SlaConfigError(problems)
    return SlaConfig(targets=targets, hours=hours, holidays=holidays, warn_at=warn_at, enabled=enabled)


def _target(priority: Priority, table: Any, business_day: timedelta, problems: list[str]) -> SlaTarget:
    prefix = f"sla.{priority.value}"
    first_text, resolution_text, business = DEFAULT_TARGETS[priority]
    if not isinstance(table, Mapping):
        problems.append(f"{prefix}: must be a table with {', '.join(TARGET_KEYS)}")
        table = {}
    for key in table:
        if key not in TARGET_KEYS:
            problems.append(f"{prefix}.{key}: unknown key (known: {', '.join(TARGET_KEYS)})")
    if "business_hours" in table:
        try:
            business = _check_bool(table["business_hours"])
        except ValueError as exc:
            problems.append(f"{prefix}.business_hours: {exc}")
    day = business_day if business else CALENDAR_DAY
    values: dict[str, timedelta] = {}
    for key, default in (("first_response", first_text), ("resolution", resolution_text)):
        try:
            values[key] = parse_duration(table.get(key, default), day=day)
        except ValueError as exc:
            problems.append(f"{prefix}.{key}: {exc}")
            values[key] = parse_duration(default, day=day)
    if values["first_response"] > values["resolution"]:
        problems.append(
            f"{prefix}: first_response ({values['first_response']}) is longer than "
            f"resolution ({values['resolution']})"
        )
    return SlaTarget(values["first_response"], values["resolution"], business)


def _check_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def _check_text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _check_country(value: Any) -> str:
    text = _check_text(value).upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise ValueError(f'"{value}" is not a country code (ISO 3166-1 alpha-2, e.g. "PL")')
    return text


def _check_hours(value: Any) -> Schedule:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError('must be a shift spec or a list of them, e.g. "mon-fri 08:00-17:00"')
    return parse_schedule(value)


def _check_dates(value: Any) -> frozenset[date]:
    if not isinstance(value, list):
        raise ValueError('must be a list of dates, e.g. ["2026-12-24", 2026-12-31]')
    dates: set[date] = set()
    for item in value:
        # TOML gives a date literal as a date, a quoted one as a string; a datetime is not a day.
        if isinstance(item, date) and not isinstance(item, datetime):
            dates.add(item)
            continue
        try:
            if not isinstance(item, str):
                raise ValueError
            dates.add(date.fromisoformat(item.strip()))
        except ValueError:
            raise ValueError(f"{item!r} is not a date (write YYYY-MM-DD)") from None
    return frozenset(dates)


def _check_fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"must be a fraction between 0 and 1 (0.75 warns at 75%), got {value!r}")
    return float(value)
