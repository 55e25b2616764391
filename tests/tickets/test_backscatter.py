"""The desk does not reflect a flood at strangers, nor pour it onto its technicians.

Each flood is 1,000 generated mails, stored as the SMTP listener stores them and processed by the
real worker; the figures are the rows the desk wrote to its outbox (what it would send).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from helpdesk.app import App, build_app
from intake.worker import WorkReport
from models.base import utcnow
from models.db import create_db_engine, migrate
from models.outbox import OutboxMessage
from models.people import TechnicianRow
from models.ticket import Ticket, TicketEvent
from routing.people import parse_people_toml
from tests.conftest import Clock, deliver, desk_settings
from tests.mail import make_mail, parse
from tickets.roster import import_people

FLOOD = 1000
# A Tuesday morning, inside every shift below.
TUESDAY_MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

ROSTER = """
[[technician]]
name = "Alicja Nowak"
email = "alicja@example.test"
tier = 1
languages = ["en", "pl"]
timezone = "Europe/Warsaw"
max_open = 5000
shifts = ["24/7"]
skills = { printing = 5, network = 5, software = 5, hardware = 5, accounts = 5, email = 5, security = 5, other = 5, triage = 5 }

[[coordinator]]
name = "Marta Coordinator"
email = "coord@example.test"
language = "en"
"""


def outbox(app: App, kind: str | None = None, recipient_like: str | None = None) -> int:
    with app.sessions() as s:
        query = select(func.count()).select_from(OutboxMessage)
        if kind is not None:
            query = query.where(OutboxMessage.kind == kind)
        if recipient_like is not None:
            query = query.where(OutboxMessage.recipient.like(recipient_like))
        return int(s.scalar(query) or 0)


def tickets(app: App) -> int:
    with app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Ticket)) or 0)


def flood(app: App, make: Callable[[int], bytes], count: int = FLOOD) -> None:
    for i in range(count):
        app.store.store(make(i), source="smtp", envelope_to=["support@example.test"])
    app.worker.process_available()


@pytest.fixture
def staffed(make_app: Callable[..., App], clock: Clock) -> Callable[..., App]:
    """A desk with one technician on shift around the clock and one coordinator."""

    def factory(**sections: dict[str, Any]) -> App:
        clock.now = TUESDAY_MORNING
        app = make_app(**sections)
        with app.sessions() as s:
            import_people(s, parse_people_toml(ROSTER, categories=app.settings.routing.categories))
            s.commit()
        return app

    return factory


def test_forged_sender_flood_gets_at_most_the_hourly_budget_of_acknowledgments(app: App) -> None:
    # 1,000 forged senders in 40 domains (25 each, under the per-domain cap): the global cap binds.
    flood(app, lambda i: make_mail(sender=f"forged-{i}@domain-{i % 40}.example", subject=f"Cheap pills {i}"))
    assert tickets(app) == FLOOD  # every mail is still a ticket
    acks = outbox(app, "ack")
    assert acks == 300
    assert acks == app.settings.limits.automatic_per_hour
    with app.sessions() as s:
        stopped = s.scalars(select(TicketEvent.reason).where(TicketEvent.kind == "mail_suppressed")).all()
    assert len(stopped) == FLOOD - acks
    assert all("hourly budget" in reason for reason in stopped)


def test_forged_flood_from_one_domain_stops_at_the_domain_cap(app: App) -> None:
    flood(app, lambda i: make_mail(sender=f"user-{i}@victim.example", subject=f"Win a prize {i}"))
    assert tickets(app) == FLOOD
    assert outbox(app, "ack") == 30
    assert app.settings.limits.automatic_per_domain_per_hour == 30


def test_reply_to_flood_sends_nothing_to_the_victims(app: App) -> None:
    # One sender, each mail naming another victim in Reply-To (in a domain that is not the sender's).
    flood(
        app,
        lambda i: make_mail(
            sender="attacker@evil.example",
            subject=f"Visit http://spam.example/{i}",
            headers={"Reply-To": f"victim-{i}@victims.example"},
        ),
    )
    assert tickets(app) == FLOOD
    assert outbox(app, recipient_like="%@victims.example") == 0
    # The acknowledgments that did go out went to the From, within its per-address limit.
    assert outbox(app, "ack") == outbox(app, recipient_like="attacker@evil.example") == 5


def test_same_domain_reply_to_flood_stops_at_the_domain_cap(app: App) -> None:
    flood(
        app,
        lambda i: make_mail(
            sender=f"forged-{i}@victims.example",
            subject=f"Spam {i}",
            headers={"Reply-To": f"victim-{i}@victims.example"},
        ),
    )
    assert outbox(app, recipient_like="victim-%@victims.example") == 30


def test_technician_flood_folds_into_a_digest(staffed: Callable[..., App], clock: Clock) -> None:
    app = staffed()
    flood(app, lambda i: make_mail(sender=f"forged-{i}@domain-{i % 40}.example", subject=f"Problem {i}"))
    with app.sessions() as s:
        assigned = s.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.assignee == "alicja@example.test")
        )
    assert assigned == FLOOD  # the tickets are hers and in her queue
    assert outbox(app, "assignment") == 30  # but only this many mails, one by one
    notices = app.settings.limits.staff_notices_per_hour
    assert notices == 30
    assert outbox(app, "digest") == 0
    # The timer folds the rest into one digest once the flood has gathered for a few minutes.
    clock.advance(minutes=6)
    app.sla_timer.check()
    app.sla_timer.check()
    assert outbox(app, "digest") == 1
    with app.sessions() as s:
        digest = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest")).one()
    assert digest.recipient == "alicja@example.test"
    text = parse(digest.data).get_content()
    assert f"{FLOOD - notices} " in text
    # Each ticket in it carries the reply address that works for commands.
    assert "support+w" in text
    assert outbox(app, recipient_like="alicja@example.test") == notices + 1
    # The coordinator heard nothing per ticket: someone was always there to take them.
    assert outbox(app, recipient_like="coord@example.test") == 0


def test_a_normal_day_is_not_touched_by_the_budgets(app: App, clock: Clock) -> None:
    # 25 requesters from one company, each writing once within the hour: all are acknowledged.
    for i in range(25):
        deliver(app, make_mail(sender=f"employee-{i}@company.example", subject=f"Laptop {i}"))
        clock.advance(minutes=2)
    assert outbox(app, "ack") == 25


def test_coordinator_flood_when_nobody_is_on_shift_folds_into_a_digest(
    staffed: Callable[..., App], clock: Clock
) -> None:
    app = staffed()
    with app.sessions() as s:
        change = s.scalars(select(TechnicianRow)).one()
        change.shifts = ["sat-sun 08:00-09:00"]  # nobody on shift on a Tuesday morning
        s.commit()
    flood(app, lambda i: make_mail(sender=f"forged-{i}@domain-{i % 40}.example", subject=f"Help {i}"), 200)
    assert outbox(app, "coordinator") == 30
    clock.advance(minutes=6)
    app.sla_timer.check()
    with app.sessions() as s:
        digest = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "digest")).one()
    assert digest.recipient == "coord@example.test"
    text = parse(digest.data).get_content()
    assert "170 notices" in text
    assert "nobody can take it" in text
    assert "support+c" in text  # the coordinator's reply address of each ticket


def test_budget_holds_across_processes_sharing_postgresql(pg_url: str, tmp_path: Path) -> None:
    """Two desks (as two `helpdesk serve` processes) work one flood at once: the cap is exact."""
    settings = desk_settings(
        tmp_path,
        pg_url,
        limits={"automatic_per_hour": 50, "automatic_per_domain_per_hour": 1000},
        intake={"worker_batch": 5},
    )
    engine = create_db_engine(settings.database)
    migrate(engine)
    engine.dispose()
    apps = [build_app(settings) for _ in range(2)]
    try:
        for i in range(300):
            apps[0].store.store(
                make_mail(sender=f"forged-{i}@domain-{i}.example", subject=f"Spam {i}"),
                source="smtp",
                envelope_to=["support@example.test"],
            )
        reports: list[WorkReport] = []
        threads = [
            threading.Thread(target=lambda a=a: reports.append(a.worker.process_available())) for a in apps
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert all(r.processed > 0 for r in reports), "both processes took part"
        assert sum(r.tickets_created for r in reports) == 300
        assert outbox(apps[0], "ack") == 50
        with apps[0].sessions() as s:
            assert apps[0].mailer.budgets.report(s, utcnow()).suppressed_global == 250
    finally:
        for app in apps:
            app.close()
