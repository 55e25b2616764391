"""Business time: weekends, closing time, holidays (explicit and by country), and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from routing.calendar import (
    BusinessHours,
    CalendarError,
    HolidayCalendar,
    add_business_time,
    business_time_between,
)
from routing.shifts import Schedule, parse_schedule

WARSAW = ZoneInfo("Europe/Warsaw")
OFFICE = BusinessHours(parse_schedule(["mon-fri 09:00-17:00"]), "Europe/Warsaw")
HOURS = timedelta(hours=1)


def warsaw(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=WARSAW)


def test_time_over_the_weekend_does_not_count() -> None:
    friday = warsaw(2026, 1, 9, 15)
    assert add_business_time(friday, 4 * HOURS, OFFICE) == warsaw(2026, 1, 12, 11)
    assert business_time_between(friday, warsaw(2026, 1, 12, 11), OFFICE) == 4 * HOURS


def test_a_start_outside_business_hours_waits_for_the_opening() -> None:
    assert add_business_time(warsaw(2026, 1, 10, 12), HOURS, OFFICE) == warsaw(2026, 1, 12, 10)
    assert add_business_time(warsaw(2026, 1, 12, 6), HOURS, OFFICE) == warsaw(2026, 1, 12, 10)


def test_a_duration_ending_at_closing_time_ends_then() -> None:
    assert add_business_time(warsaw(2026, 1, 12, 9), 8 * HOURS, OFFICE) == warsaw(2026, 1, 12, 17)
    assert add_business_time(warsaw(2026, 1, 12, 9), 8 * HOURS + timedelta(minutes=1), OFFICE) == warsaw(
        2026, 1, 13, 9, 1
    )


def test_long_durations_cross_weeks() -> None:
    # 10 business days of 8 hours from Monday 09:00 end on the second Friday at 17:00.
    assert add_business_time(warsaw(2026, 1, 12, 9), 80 * HOURS, OFFICE) == warsaw(2026, 1, 23, 17)


def test_explicit_holidays_are_skipped() -> None:
    christmas = HolidayCalendar(dates=frozenset({date(2026, 12, 24), date(2026, 12, 25)}))
    start = warsaw(2026, 12, 23, 16)  # Wednesday
    assert add_business_time(start, 2 * HOURS, OFFICE, christmas) == warsaw(2026, 12, 28, 10)
    assert business_time_between(start, warsaw(2026, 12, 28, 10), OFFICE, christmas) == 2 * HOURS


def test_country_holidays() -> None:
    poland = HolidayCalendar(country="PL")
    assert poland.is_holiday(date(2026, 11, 11))  # Independence Day, a Wednesday
    assert not poland.is_holiday(date(2026, 11, 12))
    start = warsaw(2026, 11, 10, 16)
    assert add_business_time(start, 2 * HOURS, OFFICE, poland) == warsaw(2026, 11, 12, 10)
    assert add_business_time(start, 2 * HOURS, OFFICE) == warsaw(2026, 11, 11, 10)


def test_regional_holidays() -> None:
    bavaria = HolidayCalendar(country="DE", subdivision="BY")
    assert bavaria.is_holiday(date(2026, 1, 6))  # Epiphany, in Bavaria only
    assert not HolidayCalendar(country="DE", subdivision="BE").is_holiday(date(2026, 1, 6))


def test_unknown_countries_fail_when_the_calendar_is_made() -> None:
    with pytest.raises(CalendarError, match="XX"):
        HolidayCalendar(country="XX")
    with pytest.raises(CalendarError):
        HolidayCalendar(country="PL", subdivision="nowhere")


def test_the_opening_hour_after_spring_forward_is_local() -> None:
    # Friday 2026-03-27 16:00 CET; the clocks go forward on Sunday; Monday opens at 09:00 CEST.
    due = add_business_time(warsaw(2026, 3, 27, 16), 2 * HOURS, OFFICE)
    assert due == datetime(2026, 3, 30, 8, 0, tzinfo=UTC)  # 10:00 CEST
    assert due.astimezone(WARSAW).hour == 10


def test_the_opening_hour_after_fall_back_is_local() -> None:
    due = add_business_time(warsaw(2026, 10, 23, 16), 2 * HOURS, OFFICE)
    assert due == datetime(2026, 10, 26, 9, 0, tzinfo=UTC)  # 10:00 CET


def test_round_the_clock_business_hours_count_real_time_across_dst() -> None:
    always = BusinessHours(parse_schedule(["24/7"]), "Europe/Warsaw")
    # 24 real hours from Saturday noon end at 13:00 local on Sunday: the night lost an hour.
    assert add_business_time(warsaw(2026, 3, 28, 12), 24 * HOURS, always) == warsaw(2026, 3, 29, 13)
    spring = business_time_between(warsaw(2026, 3, 29), warsaw(2026, 3, 30), always)
    assert spring == 23 * HOURS


def test_holidays_cut_round_the_clock_hours_at_local_midnight() -> None:
    always = BusinessHours(parse_schedule(["24/7"]), "Europe/Warsaw")
    holiday = HolidayCalendar(dates=frozenset({date(2026, 1, 13)}))
    assert add_business_time(warsaw(2026, 1, 12, 23), 2 * HOURS, always, holiday) == warsaw(2026, 1, 14, 1)


def test_an_overnight_business_shift_over_a_holiday() -> None:
    nights = BusinessHours(parse_schedule(["mon-fri 22:00-06:00"]), "Europe/Warsaw")
    holiday = HolidayCalendar(dates=frozenset({date(2026, 1, 13)}))  # Tuesday
    # The holiday is the whole local Tuesday: Monday night's shift stops at midnight and Tuesday
    # night's counts from Wednesday's midnight on.
    start = warsaw(2026, 1, 12, 22)
    assert add_business_time(start, 3 * HOURS, nights, holiday) == warsaw(2026, 1, 14, 1)


def test_zero_and_negative_durations() -> None:
    start = warsaw(2026, 1, 10, 12)
    assert add_business_time(start, timedelta(0), OFFICE) == start
    with pytest.raises(ValueError, match="negative"):
        add_business_time(start, -HOURS, OFFICE)
    assert business_time_between(start, start - HOURS, OFFICE) == timedelta(0)


def test_no_business_time_at_all_is_an_error() -> None:
    with pytest.raises(ValueError, match="no business time"):
        add_business_time(warsaw(2026, 1, 10), HOURS, BusinessHours(Schedule(), "UTC"))


def test_business_day_length() -> None:
    assert OFFICE.business_day == 8 * HOURS
    assert BusinessHours(parse_schedule(["24/7"])).business_day == 24 * HOURS
    assert BusinessHours(parse_schedule(["mon-fri 08:00-17:00"])).business_day == 9 * HOURS
    assert BusinessHours(Schedule()).business_day == timedelta(0)
