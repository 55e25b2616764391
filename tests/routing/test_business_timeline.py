"""A business timeline gives the calendar walk's answers, at the edges of spans, holidays and DST."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from helpdesk.settings import read_sla
from models.ticket import Priority, TicketStatus
from routing.business_timeline import BusinessTimeline, with_timeline
from routing.calendar import BusinessHours, HolidayCalendar, add_business_time, business_time_between
from routing.shifts import parse_schedule
from routing.sla import SlaFacts, sla_outcome

START = datetime(2026, 3, 16, tzinfo=UTC)  # two weeks before the clocks move in Europe
HOURS = BusinessHours(parse_schedule(["mon-fri 09:00-17:00", "sat 10:00-12:30"]), "Europe/Warsaw")
HOLIDAYS = HolidayCalendar(frozenset({date(2026, 4, 6), date(2026, 3, 27)}))


@pytest.fixture(scope="module")
def timeline() -> BusinessTimeline:
    return BusinessTimeline(HOURS, HOLIDAYS, START, START + timedelta(days=60))


def instants(count: int) -> list[datetime]:
    rng = random.Random(3)
    edges = [START + timedelta(days=d, hours=h) for d in range(0, 40, 3) for h in (7, 8, 15, 16)]
    return edges + [START + timedelta(seconds=rng.uniform(0, 45 * 86400)) for _ in range(count)]


def test_adding_business_time_matches_the_calendar(timeline: BusinessTimeline) -> None:
    for at in instants(150):
        for hours in (0, 0.5, 1, 4, 8, 24, 80, 400):
            duration = timedelta(hours=hours)
            assert timeline.add(at, duration) == add_business_time(at, duration, HOURS, HOLIDAYS), (at, hours)


def test_business_time_between_matches_the_calendar(timeline: BusinessTimeline) -> None:
    points = instants(60)
    for a in points:
        for b in points[::7]:
            assert timeline.between(a, b) == business_time_between(a, b, HOURS, HOLIDAYS), (a, b)


def test_outside_the_timeline_the_calendar_answers(timeline: BusinessTimeline) -> None:
    before = START - timedelta(days=3)
    assert timeline.add(before, timedelta(hours=3)) == add_business_time(
        before, timedelta(hours=3), HOURS, HOLIDAYS
    )


def test_an_sla_outcome_is_the_same_on_a_timeline() -> None:
    config = read_sla({"timezone": "Europe/Warsaw"})
    fast = with_timeline(config, START, START + timedelta(days=60))
    for at in instants(40):
        for priority in Priority:
            facts = SlaFacts(
                created_at=at,
                priority=priority,
                status=TicketStatus.OPEN,
                first_response_at=at + timedelta(hours=2),
                paused=((at + timedelta(hours=3), at + timedelta(hours=30)),),
            )
            now = at + timedelta(days=3)
            assert sla_outcome(facts, now, fast) == sla_outcome(facts, now, config)


def test_coverage_counts_who_is_on_duty_each_hour() -> None:
    from routing.coverage import coverage
    from routing.people import Technician
    from routing.shifts import is_on_shift

    people = [
        Technician("A", "a@x", parse_schedule(["mon-fri 08:00-16:00"]), languages=("pl",), timezone="Europe/Warsaw",
                   skills={"network": 4}),
        Technician("B", "b@x", parse_schedule(["sun-thu 22:00-06:00"]), languages=("en", "pl"),
                   timezone="America/New_York", skills={"network": 2}),
    ]  # fmt: skip
    grid = coverage(people, START, languages=["de"])
    for h in range(grid.hours):
        middle = grid.hour(h) + timedelta(minutes=30)
        on = [t for t in people if is_on_shift(t, middle)]
        assert grid.total[h] == len(on)
        assert grid.by_language["pl"][h] == len(on)
        assert grid.by_skill["network"][h] == sum(1 for t in on if t.email == "a@x")
    assert set(grid.by_language["de"]) == {0}
    assert ("language", "de", 0) in grid.gaps()
