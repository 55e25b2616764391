"""Shift specs: parsing, overnight shifts, DST change days, other zones, and the error messages."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from routing.shifts import (
    MINUTES_PER_DAY,
    Schedule,
    ShiftSpecError,
    describe_when,
    duty_intervals,
    is_on_shift,
    next_shift_start,
    on_shift_from,
    parse_schedule,
    parse_shift,
)

WARSAW = ZoneInfo("Europe/Warsaw")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")


@dataclass(frozen=True)
class Person:
    schedule: Schedule
    zone: ZoneInfo


def person(*specs: str, zone: ZoneInfo = WARSAW) -> Person:
    return Person(parse_schedule(list(specs)), zone)


def local(zone: ZoneInfo, year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=zone)


def test_parses_a_weekday_range() -> None:
    shift = parse_shift("mon-fri 08:00-16:00")
    assert shift.days == frozenset(range(5))
    assert (shift.start, shift.end) == (8 * 60, 16 * 60)
    assert not shift.overnight


def test_parses_a_day_list_and_single_digit_hours() -> None:
    shift = parse_shift("Mon, Wed,fri  9:00 - 17:30")
    assert shift.days == frozenset({0, 2, 4})
    assert (shift.start, shift.end) == (9 * 60, 17 * 60 + 30)


def test_a_day_range_wraps_past_sunday() -> None:
    assert parse_shift("fri-mon 10:00-14:00").days == frozenset({4, 5, 6, 0})
    assert parse_shift("daily 10:00-14:00").days == frozenset(range(7))
    assert parse_shift("saturday 10:00-14:00").days == frozenset({5})


def test_an_end_before_the_start_crosses_midnight() -> None:
    shift = parse_shift("sun-tue 22:00-06:00")
    assert shift.days == frozenset({6, 0, 1})
    assert shift.overnight
    assert shift.end == MINUTES_PER_DAY + 6 * 60
    assert parse_shift("mon 00:00-24:00").minutes == MINUTES_PER_DAY


@pytest.mark.parametrize("spec", ["24/7", "always", " Always "])
def test_always(spec: str) -> None:
    schedule = parse_schedule([spec])
    assert schedule.always
    assert schedule.specs == ("24/7",)
    assert is_on_shift(Person(schedule, WARSAW), datetime(2026, 1, 1, 3, tzinfo=UTC))
    assert next_shift_start(Person(schedule, WARSAW), datetime(2026, 1, 1, tzinfo=UTC)) is None


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("mon-fri", "expected DAYS HH:MM-HH:MM"),
        ("mo-fr 08:00-16:00", 'unknown day "mo"'),
        ("mon-fri 08:00-25:00", 'time "25:00" is not a time of day'),
        ("mon-fri 08:60-16:00", 'time "08:60"'),
        ("mon 24:00-06:00", "00:00 to 23:59"),
        ("mon 08:00-08:00", "the start and end are equal"),
        ("mon-fri 8-16", "expected DAYS HH:MM-HH:MM"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec: str, message: str) -> None:
    with pytest.raises(ShiftSpecError, match=message) as info:
        parse_schedule([spec])
    assert spec in str(info.value)


def test_every_bad_spec_is_reported() -> None:
    with pytest.raises(ShiftSpecError) as info:
        parse_schedule(["xx 08:00-09:00", "mon 09:00-08:00", "yy 10:00-11:00"])
    assert '"xx"' in str(info.value)
    assert '"yy"' in str(info.value)


def test_an_empty_list_is_an_error() -> None:
    with pytest.raises(ShiftSpecError, match="no shifts given"):
        parse_schedule([])


def test_on_and_off_shift_in_the_technicians_zone() -> None:
    alicja = person("mon-fri 08:00-16:00")
    # Monday 2026-01-05: Warsaw is UTC+1 in winter.
    assert not is_on_shift(alicja, datetime(2026, 1, 5, 6, 59, tzinfo=UTC))
    assert is_on_shift(alicja, datetime(2026, 1, 5, 7, 0, tzinfo=UTC))
    assert is_on_shift(alicja, datetime(2026, 1, 5, 14, 59, tzinfo=UTC))
    assert not is_on_shift(alicja, datetime(2026, 1, 5, 15, 0, tzinfo=UTC))  # 16:00 local: the end
    assert not is_on_shift(alicja, local(WARSAW, 2026, 1, 10, 12))  # Saturday


def test_the_same_instant_in_other_zones() -> None:
    at = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)  # 15:00 Warsaw, 09:00 New York, 23:00 Tokyo
    assert is_on_shift(person("mon-fri 08:00-16:00"), at)
    assert is_on_shift(person("mon-fri 09:00-17:00", zone=NEW_YORK), at)
    assert not is_on_shift(person("mon-fri 09:00-17:00", zone=TOKYO), at)
    assert is_on_shift(person("mon 22:00-06:00", zone=TOKYO), at)
    # The instant may be given in any zone.
    assert is_on_shift(person("mon-fri 08:00-16:00"), at.astimezone(TOKYO))


def test_overnight_shift_runs_into_the_next_day() -> None:
    night = person("sun-tue 22:00-06:00")
    assert is_on_shift(night, local(WARSAW, 2026, 1, 4, 23))  # Sunday night
    assert is_on_shift(night, local(WARSAW, 2026, 1, 5, 5, 59))  # Monday early, from Sunday's shift
    assert not is_on_shift(night, local(WARSAW, 2026, 1, 5, 6))
    assert is_on_shift(night, local(WARSAW, 2026, 1, 7, 3))  # Wednesday early, from Tuesday's shift
    assert not is_on_shift(night, local(WARSAW, 2026, 1, 7, 23))  # Wednesday night: no shift
    assert not is_on_shift(night, local(WARSAW, 2026, 1, 4, 3))  # Sunday early: Saturday had none


def test_day_shift_on_the_spring_forward_day() -> None:
    # 2026-03-29: Warsaw moves from UTC+1 to UTC+2 at 02:00 local.
    sunday = person("sun 08:00-16:00")
    assert is_on_shift(sunday, datetime(2026, 3, 29, 6, 0, tzinfo=UTC))  # 08:00 CEST
    assert not is_on_shift(sunday, datetime(2026, 3, 29, 5, 59, tzinfo=UTC))
    assert not is_on_shift(sunday, datetime(2026, 3, 29, 14, 0, tzinfo=UTC))  # 16:00 CEST


def test_overnight_shift_across_the_spring_forward_night_is_an_hour_shorter() -> None:
    night = person("sat 22:00-06:00")
    spans = duty_intervals(
        night.schedule, WARSAW, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)
    )
    assert spans == [(datetime(2026, 3, 28, 21, tzinfo=UTC), datetime(2026, 3, 29, 4, tzinfo=UTC))]
    assert spans[0][1] - spans[0][0] == timedelta(hours=7)
    assert is_on_shift(night, datetime(2026, 3, 29, 3, 59, tzinfo=UTC))
    assert not is_on_shift(night, datetime(2026, 3, 29, 4, 0, tzinfo=UTC))  # 06:00 CEST


def test_overnight_shift_across_the_fall_back_night_is_an_hour_longer() -> None:
    # 2026-10-25: Warsaw moves from UTC+2 back to UTC+1 at 03:00 local.
    night = person("sat 22:00-06:00")
    spans = duty_intervals(
        night.schedule, WARSAW, datetime(2026, 10, 24, tzinfo=UTC), datetime(2026, 10, 26, tzinfo=UTC)
    )
    assert spans == [(datetime(2026, 10, 24, 20, tzinfo=UTC), datetime(2026, 10, 25, 5, tzinfo=UTC))]
    assert is_on_shift(night, datetime(2026, 10, 25, 4, 30, tzinfo=UTC))  # 05:30 CET
    assert not is_on_shift(night, datetime(2026, 10, 25, 5, 0, tzinfo=UTC))


def test_a_shift_inside_the_spring_forward_gap_is_empty() -> None:
    gap = person("sun 02:00-03:00")
    spans = duty_intervals(
        gap.schedule, WARSAW, datetime(2026, 3, 28, tzinfo=UTC), datetime(2026, 3, 30, tzinfo=UTC)
    )
    assert spans == []


def test_next_shift_start_is_in_the_technicians_zone() -> None:
    alicja = person("mon-fri 08:00-16:00")
    friday_evening = local(WARSAW, 2026, 1, 9, 18)
    start = next_shift_start(alicja, friday_evening)
    assert start == local(WARSAW, 2026, 1, 12, 8)
    assert start is not None
    assert start.tzinfo == WARSAW
    assert describe_when(start, WARSAW, friday_evening) == "Mon 08:00 Europe/Warsaw"


def test_next_shift_start_after_the_spring_forward() -> None:
    alicja = person("mon-fri 08:00-16:00")
    start = next_shift_start(alicja, local(WARSAW, 2026, 3, 27, 17))
    assert start is not None
    assert start.astimezone(UTC) == datetime(2026, 3, 30, 6, tzinfo=UTC)  # 08:00 CEST


def test_next_shift_start_skips_the_shift_already_running_and_merges_touching_shifts() -> None:
    split = person("mon-fri 08:00-12:00", "mon-fri 12:00-16:00")
    start = next_shift_start(split, local(WARSAW, 2026, 1, 5, 10))
    assert start == local(WARSAW, 2026, 1, 6, 8)
    assert on_shift_from(split, local(WARSAW, 2026, 1, 5, 10)) == local(WARSAW, 2026, 1, 5, 10)
    assert on_shift_from(split, local(WARSAW, 2026, 1, 5, 17)) == local(WARSAW, 2026, 1, 6, 8)


def test_describe_when_gives_the_date_a_week_away() -> None:
    now = local(WARSAW, 2026, 1, 5, 9)
    assert describe_when(local(WARSAW, 2026, 1, 14, 8), WARSAW, now) == "Wed 2026-01-14 08:00 Europe/Warsaw"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        is_on_shift(person("24/7"), datetime(2026, 1, 1))


def test_weekly_minutes() -> None:
    schedule = parse_schedule(["mon-fri 09:00-17:00", "sat 10:00-14:00"])
    assert schedule.weekly_minutes() == {0: 480, 1: 480, 2: 480, 3: 480, 4: 480, 5: 240}
