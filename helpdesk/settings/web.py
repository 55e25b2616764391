"""`[web]` and `[report]`: the dashboard's listener and links, and the weekly report's schedule."""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from helpdesk.settings.reader import Table
from helpdesk.web.config import ReportConfig, WebConfig

# "mon 07:00": a weekday and a wall-clock time.
SCHEDULE = re.compile(r"^(mon|tue|wed|thu|fri|sat|sun)\s+([01]?\d|2[0-3]):([0-5]\d)$")


def _listen(value: Any) -> tuple[str, int] | None:
    if not isinstance(value, str):
        raise ValueError(f'must be HOST:PORT or "" (off), not {value!r}')
    if not value.strip():
        return None
    host, _, port = value.strip().rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'must be HOST:PORT or "" (off), not {value!r}')
    return host.strip("[]"), int(port)


def web(section: Table) -> WebConfig:
    default = WebConfig()
    listen: tuple[str, int] | None = section.get("listen", (default.host, default.port), _listen)  # type: ignore[arg-type]
    base_url = section.text("base_url", default.base_url).strip()
    if base_url and not base_url.startswith(("http://", "https://")):
        section.problem("base_url", f"must start with http:// or https://, not {base_url!r}")
        base_url = default.base_url
    config = WebConfig(
        host=listen[0] if listen else default.host,
        port=listen[1] if listen else default.port,
        enabled=listen is not None,
        base_url=base_url,
        session_lifetime=section.duration("session_lifetime", default.session_lifetime, positive=True),
        refresh=section.duration("refresh", default.refresh, positive=True),
        tls_cert=section.path("tls_cert"),
        tls_key=section.path("tls_key"),
    )
    if (config.tls_cert is None) != (config.tls_key is None):
        section.reader.problem("web.tls_cert and web.tls_key go together: set both or neither")
    return config


def _schedule(value: Any) -> str:
    text = " ".join(str(value).lower().split())
    if text and not SCHEDULE.match(text):
        raise ValueError(f'must be a weekday and a time like "mon 07:00", or "" (never), not {value!r}')
    return text


def _zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}") from exc
    return str(value)


def report(section: Table) -> ReportConfig:
    default = ReportConfig()
    return ReportConfig(
        schedule=section.get("schedule", default.schedule, _schedule),
        timezone=section.get("timezone", default.timezone, _zone),
        days=section.whole("days", default.days, 1),
    )
