"""The weekly report: the Reports page's charts in one self-contained HTML file (`helpdesk report
--html FILE`), and mailed to the coordinators on `[report] schedule` with a text alternative.

The file needs nothing else: the stylesheet is inside it and the charts are inline SVG, so it
opens the same from a disk, an attachment or a mail client that blocks remote content. The
scheduled mail is sent by one daemon only (models/election.py), once per scheduled time: before
writing it looks in the outbox for a report written since that time (tickets/weekly.py).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy.orm import Session, sessionmaker

from helpdesk.report import build_report, render_report
from helpdesk.settings import Settings
from helpdesk.web import charts
from helpdesk.web.render import stylesheet, templates
from models.base import utcnow
from models.outbox import OutboxKind
from notify.compose import Draft
from notify.outbox import enqueue
from routing.shifts import DAY_NAMES
from tickets.trends import Trends, trends
from tickets.weekly import last_report_at, report_recipients

log = logging.getLogger("helpdesk.report")
CHECK_EVERY = 60.0
# A report whose time passed while no daemon ran goes out late, but not a week late.
LATE_LIMIT = timedelta(days=1)


def report_charts(figures: Any) -> dict[str, Any]:
    """The charts of the Reports page and the weekly report, from `tickets.trends.Trends`."""
    days = [f"{d:%d %b}" for d in figures.days]
    weeks = [f"{w:%d %b}" for w in figures.weeks]
    conf = [f"{i / 10:.1f}" for i in range(len(figures.confidence))]
    return {
        "volume": charts.bars(
            "Opened and resolved per day", days, [("opened", figures.opened), ("resolved", figures.resolved)]
        ),
        "first_response": charts.lines(
            "First response per week (hours)",
            weeks,
            [
                ("median", [m for m, _ in figures.first_response]),
                ("p90", [p for _, p in figures.first_response]),
            ],
            unit="h",
        ),
        "resolution": charts.lines(
            "Resolution per week (hours)",
            weeks,
            [("median", [m for m, _ in figures.resolution]), ("p90", [p for _, p in figures.resolution])],
            unit="h",
        ),
        "sla_met": charts.lines(
            "SLA targets met per week", weeks, [("met", figures.sla_met)], unit="%", top=100
        ),
        "backlog_age": charts.hbars("Open tickets by age", list(figures.backlog_age.items())),
        "by_category": charts.hbars("Open tickets by category", list(figures.by_category.items())),
        "by_priority": charts.hbars("Open tickets by priority", list(figures.by_priority.items())),
        "decided_by": charts.hbars("Category decided by", list(figures.decided_by.items())),
        "confidence": charts.bars(
            "Model confidence of its category decisions", conf, [("tickets", figures.confidence)]
        ),
        "corrections": charts.hbars(
            "#category corrections per model version",
            [(c["model_version"], c["rate"]) for c in figures.corrections],
            unit="%",
        ),
    }


def weekly_html(settings: Settings, session: Session, *, now: datetime, days: int) -> tuple[str, str]:
    """(HTML, text) of the report of the `days` before `now`."""
    summary = build_report(session, now=now, days=days, sla=settings.sla)
    figures = trends(session, now=now, days=days, sla=settings.sla)
    html = (
        templates()
        .get_template("weekly.html.j2")
        .render(
            css=Markup(stylesheet()),  # our own file, not mail-derived
            desk=settings.identity.address,
            days=days,
            now=now,
            summary=summary,
            figures=figures,
            charts=report_charts(figures),
        )
    )
    return html, render_report(summary)


def scheduled_before(now: datetime, schedule: str, zone: ZoneInfo) -> datetime | None:
    """The latest instant at or before `now` that `schedule` ("mon 07:00") names, in UTC."""
    if not schedule:
        return None
    day_name, _, clock = schedule.partition(" ")
    hour, minute = (int(part) for part in clock.split(":"))
    local = now.astimezone(zone)
    for back in range(8):
        day = (local - timedelta(days=back)).date()
        if DAY_NAMES[day.weekday()] != day_name:
            continue
        at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=zone).astimezone(UTC)
        if at <= now:
            return at
    return None


class WeeklyReport:
    """Mails the report to the coordinators when its scheduled time has come and it has not gone out."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] = utcnow,
        wake_sender: Callable[[], None] = lambda: None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.clock = clock
        self.wake_sender = wake_sender

    def send_if_due(self) -> int:
        """The mails written now (0 when nothing is due)."""
        config = self.settings.report
        now = self.clock()
        due = scheduled_before(now, config.schedule, ZoneInfo(config.timezone))
        if due is None or now - due > LATE_LIMIT:
            return 0
        with self.sessions() as session, session.begin():
            last = last_report_at(session)
            if last is not None and last >= due:
                return 0
            recipients = report_recipients(session)
            if not recipients:
                return 0
            html, text = weekly_html(self.settings, session, now=now, days=config.days)
            for coordinator in recipients:
                draft = Draft(
                    to=((coordinator.name, coordinator.email),),
                    subject=f"Helpdesk weekly report to {now:%Y-%m-%d}",
                    body=text,
                    html=html,
                    language=coordinator.language,
                    automatic=False,
                    generated=True,
                )
                enqueue(
                    session,
                    self.settings.identity,
                    self.settings.outgoing,
                    draft,
                    kind=OutboxKind.WEEKLY_REPORT,
                    now=now,
                )
        log.info("REPORTED the weekly report to %d coordinators (due %s)", len(recipients), due.isoformat())
        self.wake_sender()
        return len(recipients)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.send_if_due()
            except Exception:  # the database is away; the next round tries again
                log.exception("REPORT the weekly report could not be written; trying again")
            stop.wait(CHECK_EVERY)


__all__ = ["Trends", "WeeklyReport", "report_charts", "scheduled_before", "weekly_html"]
