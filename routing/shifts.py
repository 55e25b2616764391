"""Shift specs: the weekly hours someone is on duty, read as wall-clock time in an IANA time zone.

A spec is `DAYS HH:MM-HH:MM`: "mon-fri 08:00-16:00", "sat 10:00-14:00", "mon,wed,fri 09:00-17:30".
An end before the start crosses midnight: "sun-tue 22:00-06:00" starts on Sunday, Monday and Tuesday
evenings and ends the next morning. A day range may wrap past Sunday ("fri-mon"); "daily" is every
day; "24/7" (or "always") is on duty all the time. "24:00" may end a shift at midnight.

Times are wall-clock times in the zone, so a 08:00-16:00 shift starts at 08:00 local time on both
sides of a DST change, and an overnight shift on the night the clocks move is an hour shorter or
longer. A start or end inside the spring-forward gap maps to the instant the clocks jump to; inside
the autumn overlap it is the first of the two occurrences (PEP 495 `fold=0`).

Every instant computed here is compared in UTC: Python compares two aware datetimes that share a
tzinfo by their wall-clock fields alone, which is wrong across a DST change.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from routing.errors import RoutingError

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_LABELS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALWAYS_SPECS = frozenset({"24/7", "always"})
EVERY_DAY = "daily"
MINUTES_PER_DAY = 24 * 60

# One week of wall-clock time plus a day of slack for an overnight shift: any schedule with a shift
# has a shift start within this span of any instant.
_SEARCH_SPAN = timedelta(days=8)

_INSTANT = timedelta(microseconds=1)  # the shortest window that holds one instant

_SPEC_RE = re.compile(r"^(?P<days>.+?)\s+(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})$")
_TIME_RE = re.compile(r"^(?P<h>\d{1,2}):(?P<m>\d{2})$")


class ShiftSpecError(RoutingError, ValueError):
    """A shift spec that cannot be read; the message quotes the spec and says what is wrong."""


@dataclass(frozen=True)
class Shift:
    """One parsed spec: the weekdays it starts on and its wall-clock span."""

    spec: str
    days: frozenset[int]  # the weekdays the shift starts on, Monday = 0 (as `date.weekday()`)
    start: int  # minutes after local midnight of the start day
    end: int  # minutes after local midnight of the start day; past MINUTES_PER_DAY when overnight

    @property
    def overnight(self) -> bool:
        return self.end > MINUTES_PER_DAY

    @property
    def minutes(self) -> int:
        """Nominal length in minutes (a DST change makes the real one differ by the shift)."""
        return self.end - self.start


@dataclass(frozen=True)
class Schedule:
    """A week of duty: the union of its shifts, or all the time."""

    shifts: tuple[Shift, ...] = ()
    always: bool = False

    @property
    def specs(self) -> tuple[str, ...]:
        """The specs as they are best written back (in a file, in a CLI listing)."""
        if self.always:
            return ("24/7",)
        return tuple(shift.spec for shift in self.shifts)

    def weekly_minutes(self) -> dict[int, int]:
        """Nominal on-duty minutes per weekday a shift starts on (an overnight shift counts whole)."""
        if self.always:
            return dict.fromkeys(range(7), MINUTES_PER_DAY)
        totals: dict[int, int] = {}
        for shift in self.shifts:
            for day in shift.days:
                totals[day] = totals.get(day, 0) + shift.minutes
        return totals


class OnDuty(Protocol):
    """Anything with a weekly schedule in a time zone: a technician, the business hours."""

    @property
    def schedule(self) -> Schedule: ...

    @property
    def zone(self) -> ZoneInfo: ...


def parse_shift(spec: str) -> Shift:
    """Read one `DAYS HH:MM-HH:MM` spec (not "24/7": that is a schedule, see `parse_schedule`)."""
    text = " ".join(spec.split()).lower()
    match = _SPEC_RE.match(text)
    if match is None:
        raise ShiftSpecError(
            f'bad shift spec "{spec}": expected DAYS HH:MM-HH:MM, e.g. "mon-fri 08:00-16:00", or "24/7"'
        )
    days = _parse_days(match["days"], spec)
    start = _parse_time(match["start"], spec, may_be_24=False)
    end = _parse_time(match["end"], spec, may_be_24=True)
    if start == end:
        raise ShiftSpecError(
            f'bad shift spec "{spec}": the start and end are equal; '
            'write 00:00-24:00 for a whole day or "24/7" for all the time'
        )
    if end < start:
        end += MINUTES_PER_DAY  # overnight: ends on the next day
    return Shift(spec=" ".join(spec.split()), days=days, start=start, end=end)


def parse_schedule(specs: str | Iterable[str]) -> Schedule:
    """Read a list of shift specs (a single string is one spec) into a `Schedule`."""
    items = [specs] if isinstance(specs, str) else list(specs)
    if not items:
        raise ShiftSpecError('no shifts given: write at least one, e.g. "mon-fri 08:00-16:00" or "24/7"')
    shifts: list[Shift] = []
    always = False
    problems: list[str] = []
    for item in items:
        if not isinstance(item, str):
            problems.append(f"bad shift spec {item!r}: a shift spec is a string")
            continue
        if item.strip().lower() in ALWAYS_SPECS:
            always = True
            continue
        try:
            shifts.append(parse_shift(item))
        except ShiftSpecError as exc:
            problems.append(str(exc))
    if problems:
        raise ShiftSpecError("; ".join(problems))
    if always:
        return Schedule(always=True)
    return Schedule(shifts=tuple(shifts))


def _parse_days(text: str, spec: str) -> frozenset[int]:
    days: set[int] = set()
    for item in text.replace(" ", "").split(","):
        if item == EVERY_DAY:
            days.update(range(7))
            continue
        first, sep, last = item.partition("-")
        begin = _day_number(first, spec)
        if not sep:
            days.add(begin)
            continue
        finish = _day_number(last, spec)
        # A range may wrap past Sunday: "fri-mon" is Friday to Monday.
        span = (finish - begin) % 7
        days.update((begin + offset) % 7 for offset in range(span + 1))
    return frozenset(days)


def _day_number(name: str, spec: str) -> int:
    if name in DAY_NAMES:
        return DAY_NAMES.index(name)
    if name in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(name)
    known = ", ".join(DAY_NAMES)
    raise ShiftSpecError(f'bad shift spec "{spec}": unknown day "{name}" (use {known}, or "daily")')


def _parse_time(text: str, spec: str, *, may_be_24: bool) -> int:
    match = _TIME_RE.match(text)
    if match is None:  # pragma: no cover - the spec pattern only lets H:MM and HH:MM through
        raise ShiftSpecError(f'bad shift spec "{spec}": bad time "{text}"')
    hour, minute = int(match["h"]), int(match["m"])
    if hour == 24 and minute == 0 and may_be_24:
        return MINUTES_PER_DAY
    if hour > 23 or minute > 59:
        allowed = "00:00 to 24:00" if may_be_24 else "00:00 to 23:59"
        raise ShiftSpecError(f'bad shift spec "{spec}": time "{text}" is not a time of day ({allowed})')
    return hour * 60 + minute


def check_timezone(value: Any) -> str:
    """An IANA zone name that exists (in the system's or the tzdata package's database)."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError('must be an IANA time zone name, e.g. "Europe/Warsaw"')
    try:
        ZoneInfo(value.strip())
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f'unknown time zone "{value}" (use an IANA name, e.g. "Europe/Warsaw")') from None
    return value.strip()


def require_aware(at: datetime) -> None:
    """Refuse naive datetimes: an instant without a zone cannot be placed in anyone's week."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"naive datetime {at.isoformat()}: give an aware one (UTC)")


def _wall(day: date, minutes: int, zone: ZoneInfo) -> datetime:
    """The UTC instant of `minutes` of wall-clock time after local midnight of `day`."""
    # Adding a timedelta to an aware datetime moves its wall clock; the offset is then looked up for
    # the new wall time, which is what makes a shift start at 08:00 local on a DST change day.
    local = datetime(day.year, day.month, day.day, tzinfo=zone) + timedelta(minutes=minutes)
    return local.astimezone(UTC)


def duty_intervals(
    schedule: Schedule, zone: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The on-duty spans that overlap [start, end), in UTC, sorted, touching spans merged.

    Spans are not clipped to the window, so a span's start is a real shift start. An always-on
    schedule has no starts: it yields the window itself.
    """
    require_aware(start)
    require_aware(end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if schedule.always:
        return [(start, end)] if start < end else []
    spans = sorted(_raw_intervals(schedule, zone, start, end))
    merged: list[tuple[datetime, datetime]] = []
    for begin, finish in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], finish))
        else:
            merged.append((begin, finish))
    return [(begin, finish) for begin, finish in merged if finish > start and begin < end]


def _raw_intervals(
    schedule: Schedule, zone: ZoneInfo, start: datetime, end: datetime
) -> Iterator[tuple[datetime, datetime]]:
    # Begin a day early (an overnight shift from the day before may still run) and end a day late
    # (so that a span touching the window's end is merged with what follows it).
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        weekday = day.weekday()
        for shift in schedule.shifts:
            if weekday in shift.days:
                begin, finish = _wall(day, shift.start, zone), _wall(day, shift.end, zone)
                if finish > begin:  # a shift wholly inside the spring-forward gap is empty
                    yield begin, finish
        day += timedelta(days=1)


def on_duty(schedule: Schedule, zone: ZoneInfo, at: datetime) -> bool:
    """Whether `at` falls inside a shift (a shift includes its start and excludes its end)."""
    require_aware(at)
    if schedule.always:
        return True
    at = at.astimezone(UTC)
    spans = duty_intervals(schedule, zone, at, at + _INSTANT)
    return any(begin <= at < finish for begin, finish in spans)


def next_start(schedule: Schedule, zone: ZoneInfo, after: datetime) -> datetime | None:
    """The first shift start at or after `after`, in `zone`; None for an always-on or empty schedule.

    Touching shifts count as one ("mon-fri 08:00-12:00" and "mon-fri 12:00-16:00" start at 08:00).
    """
    require_aware(after)
    if schedule.always or not schedule.shifts:
        return None
    after = after.astimezone(UTC)
    spans = duty_intervals(schedule, zone, after, after + _SEARCH_SPAN)
    for begin, _finish in spans:
        if begin >= after:
            return begin.astimezone(zone)
    return None  # pragma: no cover - every shift recurs within a week


def is_on_shift(who: OnDuty, at: datetime) -> bool:
    """Whether a technician (or anything on a schedule) is on duty at the instant `at`."""
    return on_duty(who.schedule, who.zone, at)


def next_shift_start(who: OnDuty, after: datetime) -> datetime | None:
    """When their next shift starts, at or after `after`, in their own zone (None if always on)."""
    return next_start(who.schedule, who.zone, after)


def on_shift_from(who: OnDuty, at: datetime) -> datetime | None:
    """The first instant at or after `at` when they are on duty: `at` itself if they are on now."""
    if is_on_shift(who, at):
        return at
    return next_shift_start(who, at)


def describe_when(at: datetime, zone: ZoneInfo, now: datetime) -> str:
    """A short local time for a person: "Mon 08:00 Europe/Warsaw", with the date when a week away."""
    local = at.astimezone(zone)
    label = DAY_LABELS[local.weekday()]
    if at.astimezone(UTC) - now.astimezone(UTC) >= timedelta(days=6):
        return f"{label} {local:%Y-%m-%d %H:%M} {zone.key}"
    return f"{label} {local:%H:%M} {zone.key}"
