"""`[sla]`: business hours, holidays and the targets per priority, read into `routing.sla.SlaConfig`.

The targets' defaults are routing's (`DEFAULT_TARGETS`, `DEFAULT_HOURS`, ...); this reads what the
file changes of them with the one grammar of the configuration. A target is a duration with its
unit (a bare number of seconds is no SLA anyone means); on a business-hours target "1d" is a
business day: the weekly hours over the days open ("mon-fri 09:00-17:00": 8 hours), or
`business_day`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from helpdesk.settings.reader import DAY, Reader, Table, parse_date, parse_duration
from models.kinds import Priority
from routing.calendar import BusinessHours, CalendarError, HolidayCalendar
from routing.shifts import Schedule, check_timezone, parse_schedule
from routing.sla import (
    CALENDAR_DAY,
    DEFAULT_HOURS,
    DEFAULT_TARGETS,
    DEFAULT_TIMEZONE,
    WARN_AT,
    SlaConfig,
    SlaTarget,
)

SLA_KEYS = ("enabled", "timezone", "hours", "holidays", "country", "subdivision", "business_day", "warn_at")
TARGET_KEYS = ("first_response", "resolution", "business_hours")
# Not a key of the SLA policy: how often `helpdesk serve` runs the timer.
CHECK_INTERVAL = "check_interval"
DEFAULT_CHECK_INTERVAL = 60.0


def sla_duration(value: Any, *, day: timedelta) -> timedelta:
    """A target: "30m", "4h", "2d", "1h30m"; a day is `day` long (a business day, or 24 hours)."""
    calendar = day == CALENDAR_DAY
    seconds = parse_duration(
        value, day=day.total_seconds(), week=7 * DAY if calendar else None, bare=False, positive=True
    )
    return timedelta(seconds=seconds)


def _hours(value: Any) -> Schedule:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError('must be a shift spec or a list of them, e.g. "mon-fri 08:00-17:00"')
    return parse_schedule(value)


def _dates(value: Any) -> frozenset[date]:
    if not isinstance(value, list):
        raise ValueError('must be a list of dates, e.g. ["2026-12-24", 2026-12-31]')
    return frozenset(parse_date(item) for item in value)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value.strip()


def _country(value: Any) -> str:
    text = _text(value).upper()
    if not re.fullmatch(r"[A-Z]{2}", text):
        raise ValueError(f'"{value}" is not a country code (ISO 3166-1 alpha-2, e.g. "PL")')
    return text


def _fraction(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"must be a fraction between 0 and 1 (0.75 warns at 75%), got {value!r}")
    return float(value)


def sla_policy(table: Table) -> SlaConfig:
    """The SLA policy of an `[sla]` table; every bad key is a problem of its own."""
    priorities = {priority.value for priority in Priority}
    for key in table.values:
        if key not in (*SLA_KEYS, CHECK_INTERVAL, *priorities):
            known = ", ".join((*SLA_KEYS, *(f"[sla.{p}]" for p in priorities)))
            table.problem(key, f"unknown key (known: {known})")
    enabled = table.flag("enabled", True)
    timezone = table.get("timezone", DEFAULT_TIMEZONE, check_timezone)
    hours = BusinessHours(table.get("hours", parse_schedule(DEFAULT_HOURS), _hours), timezone)
    dates = table.get("holidays", frozenset[date](), _dates)
    country = table.get("country", None, _country)
    subdivision = table.get("subdivision", None, _text)
    warn_at = table.get("warn_at", WARN_AT, _fraction)
    business_day = table.get("business_day", hours.business_day, lambda v: sla_duration(v, day=CALENDAR_DAY))
    try:
        holidays = HolidayCalendar(dates=dates, country=country, subdivision=subdivision)
    except CalendarError as exc:
        table.problem("subdivision" if subdivision else "country", str(exc))
        holidays = HolidayCalendar(dates=dates)
    targets = {priority: _target(table.sub(priority.value), priority, business_day) for priority in Priority}
    return SlaConfig(targets=targets, hours=hours, holidays=holidays, warn_at=warn_at, enabled=enabled)


def _target(table: Table, priority: Priority, business_day: timedelta) -> SlaTarget:
    first_text, resolution_text, business = DEFAULT_TARGETS[priority]
    for key in table.values:
        if key not in TARGET_KEYS:
            table.problem(key, f"unknown key (known: {', '.join(TARGET_KEYS)})")
    business = table.flag("business_hours", business)
    day = business_day if business else CALENDAR_DAY
    first = table.get("first_response", sla_duration(first_text, day=day), lambda v: sla_duration(v, day=day))
    resolution = table.get(
        "resolution", sla_duration(resolution_text, day=day), lambda v: sla_duration(v, day=day)
    )
    if first > resolution:
        table.reader.problem(
            f"{table.label}: first_response ({first}) is longer than resolution ({resolution})"
        )
    return SlaTarget(first, resolution, business)


def read_sla(table: Mapping[str, Any]) -> SlaConfig:
    """The SLA policy of one `[sla]` table alone; SettingsError names every bad key."""
    reader = Reader(Path.cwd())
    config = sla_policy(reader.table("sla", table))
    reader.check()
    return config


def default_sla() -> SlaConfig:
    """The defaults of routing's `DEFAULT_TARGETS` on `DEFAULT_HOURS` in UTC, with no holidays."""
    return read_sla({})
