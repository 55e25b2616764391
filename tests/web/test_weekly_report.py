"""The weekly report: one self-contained HTML file, mailed on schedule to the coordinators once
(HTML with a text alternative), and `helpdesk report` says "—" where there is no figure."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from bench.desk_seed import COORDINATOR, seed_roster, seed_tickets
from helpdesk.app import App
from helpdesk.report import build_report, render_report
from helpdesk.web.weekly import WeeklyReport, scheduled_before, weekly_html
from models.outbox import OutboxKind, OutboxMessage
from tests.conftest import Clock
from tests.mail import parse

MONDAY_0705 = datetime(2026, 11, 30, 7, 5, tzinfo=UTC)


def test_the_schedule_names_the_last_time_it_fell() -> None:
    utc = ZoneInfo("UTC")
    assert scheduled_before(MONDAY_0705, "mon 07:00", utc) == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert scheduled_before(datetime(2026, 11, 30, 6, 59, tzinfo=UTC), "mon 07:00", utc) == datetime(
        2026, 11, 23, 7, 0, tzinfo=UTC
    )
    warsaw = scheduled_before(MONDAY_0705, "mon 07:00", ZoneInfo("Europe/Warsaw"))
    assert warsaw == datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    assert scheduled_before(MONDAY_0705, "", utc) is None


def test_an_empty_desk_reports_dashes_never_none(app: App, clock: Clock) -> None:
    with app.readers() as session:
        text = render_report(build_report(session, now=clock(), days=7, sla=app.settings.sla))
    assert "None" not in text
    assert "median —, p90 —" in text


def test_the_html_report_is_one_self_contained_file(app: App, clock: Clock, tmp_path: Path) -> None:
    with app.sessions() as session, session.begin():
        seed_roster(session)
        seed_tickets(session, 300, now=clock())
    with app.readers() as session:
        html, text = weekly_html(app.settings, session, now=clock(), days=7)
    assert html.count("<svg") >= 8
    assert "<style>" in html and "<script" not in html
    assert (
        "src=" not in html
        and 'rel="stylesheet"' not in html
        and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    )
    assert "Opened and resolved per day" in html and "#category corrections per model version" in html
    assert "None" not in text


def test_the_report_is_mailed_once_when_due(make_app: Callable[..., App], clock: Clock) -> None:
    app = make_app(report={"schedule": "mon 07:00"})
    with app.sessions() as session, session.begin():
        seed_roster(session)
        seed_tickets(session, 50, now=MONDAY_0705)
    clock.now = datetime(2026, 11, 30, 6, 59, tzinfo=UTC)
    weekly = WeeklyReport(app.settings, app.sessions, clock=clock)
    assert weekly.send_if_due() == 0  # last week's fell more than a day ago
    clock.now = MONDAY_0705
    assert weekly.send_if_due() == 1
    assert weekly.send_if_due() == 0
    assert WeeklyReport(app.settings, app.sessions, clock=clock).send_if_due() == 0  # another daemon
    with app.sessions() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.kind == OutboxKind.WEEKLY_REPORT.value)
        ).all()
        assert [row.recipient for row in rows] == [COORDINATOR]
        mail = parse(rows[0].data)
    assert mail.get_content_type() == "multipart/alternative"
    kinds = [part.get_content_type() for part in mail.iter_parts()]
    assert kinds == ["text/plain", "text/html"]
    plain, html = (part.get_content() for part in mail.iter_parts())
    assert "Helpdesk report, last 7 days" in plain and "None" not in plain
    assert "<svg" in html
    assert mail["Auto-Submitted"] == "auto-generated"


@pytest.mark.parametrize("schedule", ["someday 7", "mon 25:00", "07:00"])
def test_a_schedule_is_a_weekday_and_a_time(make_app: Callable[..., App], schedule: str) -> None:
    from helpdesk.settings import SettingsError

    with pytest.raises(SettingsError, match=r"report\.schedule"):
        make_app(report={"schedule": schedule})


def test_an_empty_schedule_mails_no_report(make_app: Callable[..., App], clock: Clock) -> None:
    app = make_app(report={"schedule": ""})
    with app.sessions() as session, session.begin():
        seed_roster(session)
    clock.now = MONDAY_0705
    assert WeeklyReport(app.settings, app.sessions, clock=clock).send_if_due() == 0
