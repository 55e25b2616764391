"""SLA: due times over weekends, holidays and DST; warnings and breaches once; pauses; the settings.

The `[sla]` table is read by the one settings reader (helpdesk/settings/sla.py).
"""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from helpdesk.settings import SettingsError, default_sla, read_sla, sla_duration
from models.ticket import Priority, TicketStatus
from routing.sla import (
    SlaAction,
    SlaConfig,
    SlaFacts,
    SlaStep,
    due_times,
    paused_spans,
    sla_outcome,
    sla_state,
)

WARSAW = ZoneInfo("Europe/Warsaw")
HOUR = timedelta(hours=1)

SETTINGS = """
[sla]
timezone = "Europe/Warsaw"
hours = "mon-fri 09:00-17:00"
holidays = ["2026-12-24", 2026-12-25]

[sla.urgent]
first_response = "1h"
resolution = "4h"
business_hours = false
"""


def warsaw(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=WARSAW)


@pytest.fixture(scope="module")
def config() -> SlaConfig:
    return read_sla(tomllib.loads(SETTINGS)["sla"])


def facts(
    created: datetime,
    priority: Priority = Priority.NORMAL,
    *,
    status: TicketStatus = TicketStatus.OPEN,
    first_response_at: datetime | None = None,
    resolved_at: datetime | None = None,
    steps_done: frozenset[SlaStep] = frozenset(),
    paused: tuple[tuple[datetime, datetime | None], ...] = (),
) -> SlaFacts:
    return SlaFacts(created, priority, status, first_response_at, resolved_at, steps_done, paused)


def steps(actions: list[SlaAction]) -> list[SlaStep]:
    return [action.step for action in actions]


def test_default_targets() -> None:
    defaults = default_sla()
    assert defaults.target(Priority.URGENT).business_hours is False
    assert defaults.target(Priority.URGENT).first_response == HOUR
    assert defaults.target(Priority.URGENT).resolution == 4 * HOUR
    assert defaults.target(Priority.HIGH).resolution == 8 * HOUR  # one business day of 8 hours
    assert defaults.target(Priority.NORMAL).first_response == 8 * HOUR
    assert defaults.target(Priority.NORMAL).resolution == 24 * HOUR
    assert defaults.target(Priority.LOW).first_response == 16 * HOUR
    assert defaults.target(Priority.LOW).resolution == 80 * HOUR
    assert defaults.hours.timezone == "UTC"


def test_due_times_across_a_weekend(config: SlaConfig) -> None:
    first, resolution = due_times(warsaw(2026, 1, 9, 15), Priority.NORMAL, config)  # Friday
    assert first == warsaw(2026, 1, 12, 15)  # 2 hours on Friday, 6 on Monday
    assert resolution == warsaw(2026, 1, 14, 15)  # 2 + 8 + 8 + 6


def test_urgent_runs_on_the_calendar(config: SlaConfig) -> None:
    first, resolution = due_times(warsaw(2026, 1, 9, 18), Priority.URGENT, config)  # Friday evening
    assert first == warsaw(2026, 1, 9, 19)
    assert resolution == warsaw(2026, 1, 9, 22)


def test_due_times_skip_holidays(config: SlaConfig) -> None:
    first, resolution = due_times(warsaw(2026, 12, 23, 16), Priority.HIGH, config)  # Wednesday
    assert first == warsaw(2026, 12, 28, 12)  # 1 hour on Wednesday; Christmas and a weekend; 3 on Monday
    assert resolution == warsaw(2026, 12, 28, 16)  # 1 hour on Wednesday, 7 on Monday


def test_due_times_across_the_spring_forward(config: SlaConfig) -> None:
    first, _ = due_times(warsaw(2026, 3, 27, 16), Priority.NORMAL, config)
    assert first == datetime(2026, 3, 30, 14, tzinfo=UTC)  # Monday 16:00 CEST
    urgent_first, urgent_resolution = due_times(warsaw(2026, 3, 29, 1, 30), Priority.URGENT, config)
    assert urgent_first == warsaw(2026, 3, 29, 3, 30)  # one real hour: the clock jumped 02:00 -> 03:00
    assert urgent_resolution == warsaw(2026, 3, 29, 6, 30)


def test_due_times_across_the_fall_back(config: SlaConfig) -> None:
    urgent_first, _ = due_times(warsaw(2026, 10, 25, 1, 30), Priority.URGENT, config)
    assert urgent_first.astimezone(UTC) == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    first, _ = due_times(warsaw(2026, 10, 23, 16), Priority.NORMAL, config)
    assert first == datetime(2026, 10, 26, 15, tzinfo=UTC)  # Monday 16:00 CET


def test_warn_at_75_percent_once_then_breach_once(config: SlaConfig) -> None:
    ticket = facts(warsaw(2026, 1, 12, 9))  # Monday; first response due 17:00, warning at 15:00
    assert sla_state(ticket, warsaw(2026, 1, 12, 14, 59), config) == []
    warning = sla_state(ticket, warsaw(2026, 1, 12, 15), config)
    assert steps(warning) == [SlaStep.FIRST_RESPONSE_WARNING]
    assert warning[0].due_at == warsaw(2026, 1, 12, 17)
    assert warning[0].remind_assignee
    assert not warning[0].escalate

    done = frozenset({SlaStep.FIRST_RESPONSE_WARNING})
    warned = facts(warsaw(2026, 1, 12, 9), steps_done=done)
    assert sla_state(warned, warsaw(2026, 1, 12, 15, 30), config) == []  # the second run: nothing
    breach = sla_state(warned, warsaw(2026, 1, 12, 17), config)
    assert steps(breach) == [SlaStep.FIRST_RESPONSE_BREACH]
    assert breach[0].escalate
    assert breach[0].notify_coordinators
    assert not breach[0].remind_assignee

    breached = facts(warsaw(2026, 1, 12, 9), steps_done=done | {SlaStep.FIRST_RESPONSE_BREACH})
    assert sla_state(breached, warsaw(2026, 1, 12, 17, 30), config) == []


def test_resolution_warning_and_breach(config: SlaConfig) -> None:
    created = warsaw(2026, 1, 12, 9)
    responded = facts(created, first_response_at=warsaw(2026, 1, 12, 10))
    # 24 business hours: warning after 18 (Wednesday 11:00), due Wednesday 17:00.
    assert sla_state(responded, warsaw(2026, 1, 14, 10, 59), config) == []
    assert steps(sla_state(responded, warsaw(2026, 1, 14, 11), config)) == [SlaStep.RESOLUTION_WARNING]
    assert steps(sla_state(responded, warsaw(2026, 1, 14, 17), config)) == [SlaStep.RESOLUTION_BREACH]
    assert sla_state(responded, warsaw(2026, 1, 14, 11), config)[0].as_dict() == {
        "step": "resolution_warning",
        "target": "resolution",
        "due_at": warsaw(2026, 1, 14, 17).astimezone(UTC).isoformat(),
    }


def test_a_late_timer_sends_the_breach_without_the_warning(config: SlaConfig) -> None:
    ticket = facts(warsaw(2026, 1, 12, 9))
    actions = sla_state(ticket, warsaw(2026, 1, 19, 9), config)
    assert steps(actions) == [SlaStep.FIRST_RESPONSE_BREACH, SlaStep.RESOLUTION_BREACH]
    done = frozenset(steps(actions))
    assert sla_state(facts(warsaw(2026, 1, 12, 9), steps_done=done), warsaw(2026, 1, 19, 9), config) == []


def test_no_actions_outside_business_hours_before_the_warning(config: SlaConfig) -> None:
    ticket = facts(warsaw(2026, 1, 9, 16, 30))  # Friday, half an hour before closing
    assert sla_state(ticket, warsaw(2026, 1, 11, 23), config) == []  # the weekend does not count


def test_finished_tickets_have_no_actions(config: SlaConfig) -> None:
    for status in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
        ticket = facts(warsaw(2026, 1, 12, 9), status=status, resolved_at=warsaw(2026, 1, 12, 10))
        assert sla_state(ticket, warsaw(2026, 2, 1), config) == []


def test_disabled(config: SlaConfig) -> None:
    disabled = read_sla({"enabled": False})
    assert sla_state(facts(warsaw(2026, 1, 12, 9)), warsaw(2026, 2, 1), disabled) == []


def test_waiting_pauses_the_resolution_clock_not_the_first_response(config: SlaConfig) -> None:
    created = warsaw(2026, 1, 12, 9)
    waiting = facts(
        created,
        status=TicketStatus.WAITING,
        paused=((warsaw(2026, 1, 12, 10), None),),
    )
    assert steps(sla_state(waiting, warsaw(2026, 1, 20, 9), config)) == [SlaStep.FIRST_RESPONSE_BREACH]


def test_time_spent_waiting_moves_the_resolution_due_time(config: SlaConfig) -> None:
    created = warsaw(2026, 1, 12, 9)
    history = [
        (created, TicketStatus.NEW),
        (warsaw(2026, 1, 12, 10), TicketStatus.IN_PROGRESS),
        (warsaw(2026, 1, 12, 11), TicketStatus.WAITING),
        (warsaw(2026, 1, 13, 11), TicketStatus.OPEN),  # 8 business hours later
    ]
    spans = paused_spans(history)
    assert spans == ((warsaw(2026, 1, 12, 11), warsaw(2026, 1, 13, 11)),)
    resumed = facts(created, first_response_at=warsaw(2026, 1, 12, 10), paused=spans)
    # Due Wednesday 17:00 without the pause; a business day later with it.
    assert sla_state(resumed, warsaw(2026, 1, 14, 17), config) == []
    breach = sla_state(resumed, warsaw(2026, 1, 15, 17), config)
    assert steps(breach) == [SlaStep.RESOLUTION_BREACH]
    assert breach[0].due_at == warsaw(2026, 1, 15, 17)
    _, due = due_times(created, Priority.NORMAL, config, paused=8 * HOUR)
    assert due == warsaw(2026, 1, 15, 17)


def test_a_reopened_ticket_does_not_count_the_time_it_was_resolved(config: SlaConfig) -> None:
    created = warsaw(2026, 1, 12, 9)
    history = [
        (created, TicketStatus.NEW),
        (warsaw(2026, 1, 12, 12), TicketStatus.RESOLVED),
        (warsaw(2026, 1, 13, 12), TicketStatus.CLOSED),
        (warsaw(2026, 2, 2, 9), TicketStatus.OPEN),  # the requester wrote again
    ]
    assert paused_spans(history) == ((warsaw(2026, 1, 12, 12), warsaw(2026, 2, 2, 9)),)
    reopened = facts(created, first_response_at=warsaw(2026, 1, 12, 10), paused=paused_spans(history))
    assert sla_state(reopened, warsaw(2026, 2, 2, 10), config) == []
    # 3 business hours were used before it was resolved: 21 remain, the warning comes after 15 more.
    assert steps(sla_state(reopened, warsaw(2026, 2, 4, 8), config)) == [SlaStep.RESOLUTION_WARNING]


def test_paused_spans_with_an_open_end() -> None:
    start = warsaw(2026, 1, 12, 9)
    assert paused_spans([(start, TicketStatus.WAITING), (start + HOUR, TicketStatus.RESOLVED)]) == (
        (start, None),
    )
    assert paused_spans([]) == ()


@pytest.mark.parametrize(
    ("text", "business", "expected"),
    [
        ("30m", True, timedelta(minutes=30)),
        ("4h", True, 4 * HOUR),
        ("1h30m", True, timedelta(minutes=90)),
        ("1h 30m", True, timedelta(minutes=90)),
        ("2d", True, 16 * HOUR),
        ("2d", False, 48 * HOUR),
        ("1d4h", True, 12 * HOUR),
    ],
)
def test_parse_duration(text: str, business: bool, expected: timedelta) -> None:
    assert sla_duration(text, day=8 * HOUR if business else 24 * HOUR) == expected


@pytest.mark.parametrize(
    ("value", "message"), [("4", "is not a duration"), ("0h", "longer than zero"), (4, "4")]
)
def test_bad_durations(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        sla_duration(value, day=8 * HOUR)


def test_days_follow_the_business_hours_and_can_be_set() -> None:
    nine_hours = read_sla({"hours": ["mon-fri 08:00-17:00"], "normal": {"resolution": "1d"}})
    assert nine_hours.target(Priority.NORMAL).resolution == 9 * HOUR
    set_day = read_sla(
        {"hours": "mon-fri 08:00-17:00", "business_day": "8h", "low": {"first_response": "1d"}}
    )
    assert set_day.target(Priority.LOW).first_response == 8 * HOUR
    calendar = read_sla({"high": {"resolution": "2d", "business_hours": False}})
    assert calendar.target(Priority.HIGH).resolution == 48 * HOUR


def test_settings_are_read(config: SlaConfig) -> None:
    assert config.hours.timezone == "Europe/Warsaw"
    assert config.holidays.dates == frozenset({date(2026, 12, 24), date(2026, 12, 25)})
    with_country = read_sla({"country": "pl", "warn_at": 0.5})
    assert with_country.holidays.country == "PL"
    assert with_country.holidays.is_holiday(date(2026, 5, 3))
    assert with_country.warn_at == 0.5


def test_every_bad_key_is_named() -> None:
    table = {
        "timezone": "Europe/Warsw",
        "hours": "weekdays 9-5",
        "holidays": ["2026-12-32"],
        "country": "Poland",
        "warn_at": 1.5,
        "critical": {},
        "high": {"first_response": "2d", "resolution": "1d", "business_hour": True},
        "low": {"business_hours": "yes", "resolution": "ten days"},
    }
    with pytest.raises(SettingsError) as info:
        read_sla(table)
    problems = "\n".join(info.value.problems)
    for expected in (
        'sla.timezone: unknown time zone "Europe/Warsw"',
        'sla.hours: bad shift spec "weekdays 9-5"',
        "sla.holidays: '2026-12-32' is not a date (write YYYY-MM-DD)",
        'sla.country: "Poland" is not a country code',
        "sla.warn_at: must be a fraction between 0 and 1",
        "sla.critical: unknown key",
        "sla.high.business_hour: unknown key",
        "sla.high: first_response (16:00:00) is longer than resolution (8:00:00)",
        "sla.low.business_hours: must be true or false, got 'yes'",
        'sla.low.resolution: "ten days" is not a duration',
    ):
        assert expected in problems


def test_unknown_country_and_subdivision() -> None:
    with pytest.raises(SettingsError, match=r"sla\.country: no public holidays known for XX"):
        read_sla({"country": "XX"})
    with pytest.raises(SettingsError, match=r"sla\.subdivision: no public holidays known for DE/ZZ"):
        read_sla({"country": "DE", "subdivision": "ZZ"})


def test_naive_now_is_refused(config: SlaConfig) -> None:
    with pytest.raises(ValueError, match="naive"):
        sla_state(facts(warsaw(2026, 1, 12, 9)), datetime(2026, 1, 12, 10), config)


def test_outcome_for_reports(config: SlaConfig) -> None:
    created = warsaw(2026, 1, 12, 9)
    running = sla_outcome(facts(created), warsaw(2026, 1, 12, 10), config)
    assert (running.first_response_met, running.resolution_met) == (None, None)
    assert running.first_response_due == warsaw(2026, 1, 12, 17)
    overdue = sla_outcome(facts(created), warsaw(2026, 1, 12, 17), config)
    assert overdue.first_response_met is False
    history = [(warsaw(2026, 1, 12, 10), TicketStatus.WAITING), (warsaw(2026, 1, 13, 10), TicketStatus.OPEN)]
    history.append((warsaw(2026, 1, 15, 16), TicketStatus.RESOLVED))
    resolved = facts(
        created,
        status=TicketStatus.RESOLVED,
        first_response_at=warsaw(2026, 1, 12, 10),
        resolved_at=warsaw(2026, 1, 15, 16),
        paused=paused_spans(history),
    )
    # 8 business hours waiting: due Thursday 17:00 instead of Wednesday; resolved at 16:00.
    outcome = sla_outcome(resolved, warsaw(2026, 3, 1), config)
    assert outcome.resolution_due == warsaw(2026, 1, 15, 17)
    assert (outcome.first_response_met, outcome.resolution_met) == (True, True)
    assert outcome.as_dict()["resolution_met"] is True
