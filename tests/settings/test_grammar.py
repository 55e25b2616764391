"""One grammar for the values of every section: durations, sizes, booleans, dates; problems named."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from helpdesk.settings import SettingsError, build_settings, env_overrides, load_settings, read_sla
from helpdesk.settings.reader import (
    EnvText,
    format_duration,
    format_size,
    parse_bool,
    parse_date,
    parse_duration,
    parse_size,
)
from models.ticket import Priority


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (30, 30.0),
        (0.25, 0.25),
        ("45", 45.0),
        ("0.5", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("5M", 300.0),
        ("30 m", 1800.0),
        ("1.5h", 5400.0),
        ("2h", 7200.0),
        ("1d", 86400.0),
        ("2W", 14 * 86400.0),
        ("1h30m", 5400.0),
        ("1d 4h", 100800.0),
        ("1w2d3h4m5s", 7 * 86400 + 2 * 86400 + 3 * 3600 + 4 * 60 + 5.0),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 minutes", "m5", "1m1h", "1h1h", "", True, -1, [5], "-5s"])
def test_what_is_not_a_duration(value: object) -> None:
    with pytest.raises(ValueError, match=r"duration|0 seconds or more"):
        parse_duration(value)


def test_a_business_clock_counts_its_own_days_and_no_weeks() -> None:
    assert parse_duration("1d4h", day=8 * 3600, week=None) == 12 * 3600
    with pytest.raises(ValueError, match="weeks do not count business time"):
        parse_duration("1w", day=8 * 3600, week=None, bare=False)


def test_a_duration_that_must_name_its_unit_and_be_longer_than_zero() -> None:
    with pytest.raises(ValueError, match='"4" is not a duration'):
        parse_duration(4, bare=False)
    with pytest.raises(ValueError, match='"0h" must be longer than zero'):
        parse_duration("0h", positive=True)
    with pytest.raises(ValueError, match="must be more than 0 seconds, got 0"):
        parse_duration(0, positive=True)
    assert parse_duration(0) == 0.0


@pytest.mark.parametrize(
    ("value", "size"),
    [
        (26214400, 26214400),
        (1500.0, 1500),
        ("1024", 1024),
        ("100b", 100),
        ("512KB", 512 * 1024),
        ("512k", 512 * 1024),
        ("25MB", 25 * 1024**2),
        ("10 MiB", 10 * 1024**2),
        ("1.5mb", int(1.5 * 1024**2)),
        ("1GB", 1024**3),
        ("2gib", 2 * 1024**3),
    ],
)
def test_sizes(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["big", "10TB", "10ib", -1, -0.5, True, "1,5MB"])
def test_what_is_not_a_size(value: object) -> None:
    with pytest.raises(ValueError, match="must be a size"):
        parse_size(value)


def test_booleans_are_true_or_false_and_the_environment_may_say_yes() -> None:
    assert parse_bool(True) is True and parse_bool(False) is False
    for word in ("yes", "Yes", "TRUE", "on"):
        assert parse_bool(EnvText(word)) is True
    for word in ("no", "FALSE", "Off"):
        assert parse_bool(EnvText(word)) is False
    for value in ("yes", "true", 1, 0, None, EnvText("maybe"), EnvText("1")):
        with pytest.raises(ValueError, match="must be true or false"):
            parse_bool(value)


def test_the_environment_sets_booleans_in_words(tmp_path: Path) -> None:
    words = env_overrides({"HELPDESK_SMTP_REQUIRE_TLS": "yes", "HELPDESK_SECURITY_VERIFY_DKIM": "true"})
    settings = build_settings(words, tmp_path, None)
    assert settings.smtp.require_tls is True and settings.sender_auth.verify_dkim is True
    assert (
        build_settings(env_overrides({"HELPDESK_SMTP_REQUIRE_TLS": "no"}), tmp_path, None).smtp.require_tls
        is False
    )
    calendar = env_overrides({"HELPDESK__SLA__HIGH__BUSINESS_HOURS": "no"})
    assert build_settings(calendar, tmp_path, None).sla.target(Priority.HIGH).business_hours is False


def test_dates() -> None:
    assert parse_date(date(2026, 12, 24)) == date(2026, 12, 24)
    assert parse_date(" 2026-12-24 ") == date(2026, 12, 24)
    assert parse_date(datetime(2026, 12, 24, 23, 30, tzinfo=UTC)) == date(2026, 12, 24)
    with pytest.raises(ValueError, match=r"'2026-12-32' is not a date \(write YYYY-MM-DD\)"):
        parse_date("2026-12-32")


@pytest.mark.parametrize("seconds", [0.5, 30, 90, 300, 3600, 5400, 86400, 2 * 86400, 604800, 30 * 86400])
def test_durations_are_written_back_as_they_read(seconds: float) -> None:
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("size", [0, 100, 1000, 512 * 1024, 25 * 1024**2, 256 * 1024**2, 3 * 1024**3])
def test_sizes_are_written_back_as_they_read(size: int) -> None:
    assert parse_size(format_size(size)) == size


def test_every_problem_of_a_configuration_is_named_at_once(tmp_path: Path) -> None:
    table = {
        "smtp": {"max_sessions": 0, "require_tls": "yes", "idle_timeout": "soon"},
        "intake": {"max_attachment_size": "big"},
        "security": {"token_lifetime": 0},
        "sla": {"warn_at": 2, "high": {"resolution": "4"}},
    }
    with pytest.raises(SettingsError) as caught:
        build_settings(table, tmp_path, None)
    assert sorted(caught.value.problems) == sorted(
        [
            "smtp.max_sessions: must be a whole number >= 1, got 0",
            "smtp.require_tls: must be true or false, got 'yes'",
            'smtp.idle_timeout: "soon" is not a duration (write seconds, or e.g. "30s", "5m", "2h", "1d", "1w", "1h30m")',
            'intake.max_attachment_size: must be a size like 26214400, "25MB" or "512KB", got \'big\'',
            "sla.warn_at: must be a fraction between 0 and 1 (0.75 warns at 75%), got 2",
            'sla.high.resolution: "4" is not a duration (write it with its unit, e.g. "30m", "4h" or "2d")',
            "security.token_lifetime: must be more than 0 seconds, got 0",
        ]
    )
    assert str(caught.value) == "\n".join(caught.value.problems)


def test_an_sla_target_is_a_duration_of_the_one_grammar() -> None:
    sla = read_sla({"urgent": {"first_response": "90s", "resolution": "1h30m", "business_hours": False}})
    urgent = sla.target(Priority.URGENT)
    assert (urgent.first_response, urgent.resolution) == (timedelta(seconds=90), timedelta(minutes=90))
    assert read_sla({"urgent": {"resolution": "1w"}}).target(Priority.URGENT).resolution == timedelta(weeks=1)
    with pytest.raises(SettingsError, match="weeks do not count business time"):
        read_sla({"low": {"resolution": "2w"}})


def test_a_configuration_that_is_not_utf8_is_a_settings_error(tmp_path: Path) -> None:
    config = tmp_path / "helpdesk.toml"
    config.write_bytes('[mail]\naddress = "pomoc@example.test"\n# Zażółć\n'.encode("iso-8859-2"))
    with pytest.raises(SettingsError, match="not UTF-8 at byte"):
        load_settings(config, environ={})
