"""A mail of ours that finally fails is an event on its ticket, the people working it are told, and
`helpdesk tickets show` says what became of each outgoing mail (queued, sent, failed, bounced).

The relay is a fake one on loopback (tests/notify/fake_relay.py) that refuses chosen recipients.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from helpdesk.app import App
from helpdesk.views import render_ticket, ticket_detail
from models.outbox import OutboxMessage, OutboxStatus
from models.ticket import Ticket, TicketEvent
from routing.people import parse_people_toml
from tests.conftest import Clock, deliver
from tests.mail import make_mail, parse
from tests.notify.fake_relay import FakeRelay, Misbehaviour
from tickets.queries import record_of
from tickets.roster import import_people

TECHNICIAN = """
[[technician]]
name = "Alicja Nowak"
email = "alicja@example.test"
languages = ["en"]
timezone = "UTC"
shifts = ["24/7"]
skills = { triage = 3 }
"""
COORDINATORS = """
[[coordinator]]
name = "Marta Coordinator"
email = "marta@example.test"
language = "en"

[[coordinator]]
name = "Zbigniew Coordinator"
email = "zbigniew@example.test"
language = "pl"
"""
NO_SUCH_USER = "550 5.1.1 no such user"


def with_people(app: App, roster: str) -> App:
    with app.sessions() as session:
        import_people(session, parse_people_toml(roster, categories=app.settings.routing.categories))
        session.commit()
    return app


def outbox(app: App) -> list[OutboxMessage]:
    with app.sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def events(app: App, kind: str) -> list[TicketEvent]:
    with app.sessions() as session:
        return list(
            session.scalars(select(TicketEvent).where(TicketEvent.kind == kind).order_by(TicketEvent.id))
        )


def shown(app: App, number: int) -> tuple[dict[str, Any], str]:
    with app.readers() as session:
        ticket = session.get(Ticket, number)
        assert ticket is not None
        view = ticket_detail(record_of(session, ticket))
    return view, render_ticket(view)


def test_a_refused_acknowledgment_is_an_event_the_assignee_is_told_and_tickets_show_says_failed(
    make_app: Callable[..., App],
) -> None:
    refusals = {"gone@example.com": [NO_SUCH_USER]}
    with FakeRelay(Misbehaviour(rcpt_replies=refusals)) as relay:
        app = with_people(make_app(outgoing={"url": relay.url}), TECHNICIAN + COORDINATORS)
        (number,) = deliver(app, make_mail(sender="gone@example.com")).ticket_ids
        report = app.sender.deliver_due()
        # The assignment went out, the ack did not, and the notice about it (queued with the
        # failure) went out in the same run.
        assert (report.sent, report.failed) == (2, 1)
        notices = [t for t in relay.received if t.rcpt_tos == ["alicja@example.test"]]
    (failed,) = events(app, "delivery_failed")
    assert failed.ticket_id == number and failed.actor == "sender" and failed.new == "failed"
    assert failed.data["recipient"] == "gone@example.com" and failed.data["kind"] == "ack"
    assert NO_SUCH_USER in failed.reason
    # The assignee hears about it, in a mail they can answer with commands; the coordinators do not.
    assert len(notices) == 2  # the assignment, then the notice
    notice = parse(notices[1].data)
    assert f"[#{number}]" in str(notice["Subject"])
    assert "gone@example.com" in notice.get_content() and NO_SUCH_USER in notice.get_content()
    assert not [t for t in relay.received if "marta@example.test" in t.rcpt_tos]
    view, text = shown(app, number)
    by_kind = {m["kind"]: m["delivery"] for m in view["messages"] if m["direction"] == "out"}
    assert by_kind["ack"]["status"] == "failed" and NO_SUCH_USER in by_kind["ack"]["error"]
    assert by_kind["assignment"]["status"] == "sent"
    assert by_kind["delivery_failed"]["status"] == "sent"
    assert f"delivery: failed: gone@example.com: {NO_SUCH_USER}" in text


def test_a_mail_given_up_at_the_retry_deadline_tells_the_coordinators_when_nobody_is_assigned(
    make_app: Callable[..., App], clock: Clock
) -> None:
    refusals = {"busy@example.com": ["451 4.3.0 mailbox busy"] * 50}
    with FakeRelay(Misbehaviour(rcpt_replies=refusals)) as relay:
        app = with_people(make_app(outgoing={"url": relay.url, "retry_for": "10m"}), COORDINATORS)
        (number,) = deliver(app, make_mail(sender="busy@example.com")).ticket_ids
        for _ in range(8):  # retried with backoff until the deadline passes
            app.sender.deliver_due()
            clock.advance(minutes=2)
        app.sender.deliver_due()
        told = {rcpt for t in relay.received for rcpt in t.rcpt_tos}
    ack = next(row for row in outbox(app) if row.kind == "ack")
    assert ack.status is OutboxStatus.FAILED and ack.attempts > 2
    assert ack.last_error is not None and ack.last_error.startswith("gave up after")
    (failed,) = events(app, "delivery_failed")
    assert failed.ticket_id == number and "451 4.3.0" in failed.reason
    # Nobody is assigned: both coordinators are told, each once, in their language.
    assert told >= {"marta@example.test", "zbigniew@example.test"}
    notices = [row for row in outbox(app) if row.kind == "delivery_failed"]
    assert sorted(row.recipient for row in notices) == ["marta@example.test", "zbigniew@example.test"]
    polish = parse(next(row.data for row in notices if row.recipient == "zbigniew@example.test"))
    assert "nie udało się doręczyć" in polish.get_content()


def test_a_failed_notice_is_recorded_and_tells_nobody_so_two_bad_addresses_cannot_loop(
    make_app: Callable[..., App],
) -> None:
    # The requester's address and the only coordinator's are both refused.
    coordinator = COORDINATORS.split("\n\n")[0]
    refusals = {"gone@example.com": [NO_SUCH_USER], "marta@example.test": [NO_SUCH_USER] * 5}
    with FakeRelay(Misbehaviour(rcpt_replies=refusals)) as relay:
        app = with_people(make_app(outgoing={"url": relay.url}), coordinator)
        deliver(app, make_mail(sender="gone@example.com"))
        for _ in range(3):
            app.sender.deliver_due()
    rows = outbox(app)
    # The ack failed, the coordinator was to be told and that notice failed too: it is recorded
    # on the ticket like any failure, and nobody is told about it.
    assert [row.kind for row in rows] == ["ack", "delivery_failed"]
    assert all(row.status is OutboxStatus.FAILED for row in rows)
    assert len(events(app, "delivery_failed")) == len(rows)
    assert relay.received == []


def test_a_technician_whose_own_mail_fails_is_not_mailed_about_it_the_coordinators_are(
    make_app: Callable[..., App],
) -> None:
    refusals = {"alicja@example.test": [NO_SUCH_USER]}
    with FakeRelay(Misbehaviour(rcpt_replies=refusals)) as relay:
        app = with_people(make_app(outgoing={"url": relay.url}), TECHNICIAN + COORDINATORS)
        deliver(app, make_mail(sender="anna@example.com"))
        app.sender.deliver_due()
        app.sender.deliver_due()
    notices = [row for row in outbox(app) if row.kind == "delivery_failed"]
    assert sorted(row.recipient for row in notices) == ["marta@example.test", "zbigniew@example.test"]
    (failed,) = events(app, "delivery_failed")
    assert failed.data["kind"] == "assignment"
