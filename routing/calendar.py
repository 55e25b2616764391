"""Business time: the weekly business hours in a time zone, less holidays, and arithmetic on it.

`add_business_time` answers "when have N hours of business time passed since this instant";
`business_time_between` measures the business time inside a span. Both work on real elapsed time
in UTC over the business hours' wall-clock schedule, so they stay right across DST changes.

A holiday is a whole local day (in the business hours' zone) with no business time. Holidays come
from an explicit list of dates and, optionally, a country's public holidays from the `holidays`
package (with a subdivision for regional ones, e.g. country "DE", subdivision "BY").
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from routing.errors import RoutingError
from routing.shifts import Schedule, duty_intervals, require_aware

# How far ahead add_business_time looks before it gives up: a schedule and holiday list that leave
# no business time in two years are a configuration mistake, not a long wait.
MAX_SEARCH = timedelta(days=2 * 366)
_WINDOW = timedelta(days=7)


class CalendarError(RoutingError, ValueError):
    """A holiday calendar that cannot be built (unknown country or subdivision)."""


@dataclass(frozen=True)
class HolidayCalendar:
    dates: frozenset[date] = frozenset()
    country: str | None = None  # ISO 3166-1 alpha-2, as the `holidays` package knows it
    subdivision: str | None = None  # e.g. a German state, "BY"

    def __post_init__(self) -> None:
        if self.country is not None:
            # Fail at configuration time, not on the first SLA check of the year.
            _country_days(self.country, self.subdivision, date.today().year)

    def is_holiday(self, day: date) -> bool:
        if day in self.dates:
            return True
        return self.country is not None and day in _country_days(self.country, self.subdivision, day.year)


NO_HOLIDAYS = HolidayCalendar()


@functools.lru_cache(maxsize=64)
def _country_days(country: str, subdivision: str | None, year: int) -> frozenset[date]:
    import holidays as holiday_data  # only desks with a country calendar pay for loading it

    try:
        table = holiday_data.country_holidays(country, subdiv=subdivision, years=year)
    except NotImplementedError as exc:
        raise CalendarError(f"no public holidays known for {country}/{subdivision or '-'}: {exc}") from None
    return frozenset(table.keys())


@dataclass(frozen=True)
class BusinessHours:
    """The weekly business schedule and its zone; it satisfies `routing.shifts.OnDuty`."""

    schedule: Schedule
    timezone: str = "UTC"

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def business_day(self) -> timedelta:
        """The length of a typical business day: the week's hours over the days that have any.

        "mon-fri 09:00-17:00" gives 8 hours; "24/7" gives 24. This is what "1d" means in business time.
        """
        per_day = self.schedule.weekly_minutes()
        if not per_day:
            return timedelta(0)
        return timedelta(minutes=sum(per_day.values()) / len(per_day))


def business_intervals(
    hours: BusinessHours, holidays: HolidayCalendar, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The business-time spans inside [start, end), in UTC, sorted, holidays cut out."""
    require_aware(start)
    require_aware(end)
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    zone = hours.zone
    spans: list[tuple[datetime, datetime]] = []
    for begin, finish in duty_intervals(hours.schedule, zone, start, end):
        for piece_start, piece_end in _cut_holidays(begin, finish, zone, holidays):
            piece_start, piece_end = max(piece_start, start), min(piece_end, end)
            if piece_start < piece_end:
                spans.append((piece_start, piece_end))
    return spans


def _cut_holidays(
    begin: datetime, finish: datetime, zone: ZoneInfo, holidays: HolidayCalendar
) -> Iterable[tuple[datetime, datetime]]:
    """Split a span at local midnights and drop the pieces that fall on a holiday."""
    day = begin.astimezone(zone).date()
    while True:
        midnight = _local_midnight(day, zone)
        next_midnight = _local_midnight(day + timedelta(days=1), zone)
        piece_start, piece_end = max(begin, midnight), min(finish, next_midnight)
        if piece_start >= finish:
            return
        if piece_start < piece_end and not holidays.is_holiday(day):
            yield piece_start, piece_end
        day += timedelta(days=1)


def _local_midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)


def add_business_time(
    start: datetime, duration: timedelta, hours: BusinessHours, holidays: HolidayCalendar = NO_HOLIDAYS
) -> datetime:
    """The UTC instant when `duration` of business time has passed since `start`.

    Time before the next business span does not count, so 1 hour from Saturday noon is Monday at
    the opening hour plus 1 hour. A duration that ends exactly at closing time ends at closing time.
    """
    require_aware(start)
    if duration < timedelta(0):
        raise CalendarError(f"negative duration {duration}")
    cursor = start.astimezone(UTC)
    if duration == timedelta(0):
        return cursor
    remaining = duration
    horizon = cursor + MAX_SEARCH
    while cursor < horizon:
        window_end = cursor + _WINDOW
        for begin, finish in business_intervals(hours, holidays, cursor, window_end):
            if finish - begin >= remaining:
                return begin + remaining
            remaining -= finish - begin
        cursor = window_end
    raise CalendarError(
        f"business hours {list(hours.schedule.specs)} in {hours.timezone} leave no business time "
        f"in the {MAX_SEARCH.days} days after {start.isoformat()} (are all days holidays?)"
    )


def business_time_between(
    start: datetime, end: datetime, hours: BusinessHours, holidays: HolidayCalendar = NO_HOLIDAYS
) -> timedelta:
    """How much business time lies in [start, end) (zero when end is not after start)."""
    if end <= start:
        return timedelta(0)
    spans = business_intervals(hours, holidays, start, end)
    return sum((finish - begin for begin, finish in spans), timedelta(0))
