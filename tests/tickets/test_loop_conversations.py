"""Closing the loop, as requesters and technicians live it: through the real SMTP listener and a sink.

A rating by reply is recorded and keeps the ticket resolved, a new problem still reopens it; the
lifecycle timer reminds a requester once, resolves once, and stops when they answer; an automatic
reply never counts as a rating, a "solved" or an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage

from sqlalchemy import func, select

from helpdesk.app import App
from helpdesk.views import ticket_detail
from models.loop import Satisfaction
from models.outbox import OutboxMessage
from models.ticket import Ticket, TicketStatus
from tests.mail import SUPPORT, make_mail
from tests.tickets import test_technicians as conversation
from tests.tickets.test_technicians import TechnicianDesk, polish_printer_ticket
from tickets.queries import ticket_record
from tickets.sla_timer import SlaReport

desk = conversation.desk  # the same desk: roster, rules, SMTP listener and sink

ZOFIA = "Zofia Kowalska <zofia@klient.example.pl>"
ZOFIA_ADDR = "zofia@klient.example.pl"
ALICJA = "alicja@example.test"


def last_to(desk: TechnicianDesk, address: str) -> EmailMessage:
    return desk.mails_to(address)[-1].message


def answer(
    desk: TechnicianDesk, sender: str, address: str, body: str, headers: dict[str, str] | None = None
) -> None:
    """`sender` replies to the newest mail the desk sent to `address`, through its Reply-To."""
    mail = last_to(desk, address)
    reply_to = mail["Reply-To"].addresses[0].addr_spec
    desk.send(
        make_mail(
            sender=sender,
            to=reply_to,
            subject=f"Re: {mail['Subject']}",
            body=body,
            in_reply_to=mail["Message-ID"],
            headers=headers,
        ),
        to=reply_to,
    )


def resolved_printer_ticket(desk: TechnicianDesk) -> int:
    number, _ = polish_printer_ticket(desk)
    answer(desk, ALICJA, ALICJA, "#resolve Wymieniono toner w drukarce.\n\nDrukarka znowu drukuje.")
    assert desk.ticket(number).status is TicketStatus.RESOLVED
    return number


def satisfaction(desk: TechnicianDesk, number: int) -> object:
    with desk.app.sessions() as s:
        record = ticket_record(s, number)
        assert record is not None
        return ticket_detail(record)["satisfaction"]


def test_the_resolved_mail_asks_for_a_rating_in_the_requesters_language(desk: TechnicianDesk) -> None:
    resolved_printer_ticket(desk)
    text = last_to(desk, ZOFIA_ADDR).get_content()
    assert "Wymieniono toner w drukarce." in text
    assert "Jak nam poszło? Odpowiedz cyfrą od 1 (słabo) do 5 (świetnie)" in text
    assert "nie otwiera zgłoszenia ponownie" in text


def test_a_rating_reply_is_recorded_and_keeps_the_ticket_resolved(desk: TechnicianDesk) -> None:
    number = resolved_printer_ticket(desk)
    assert satisfaction(desk, number) is None
    mails_before = len(desk.mails_to(ZOFIA_ADDR))
    answer(desk, ZOFIA, ZOFIA_ADDR, "4, thanks\n\n> Jak nam poszło?")
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.RESOLVED
    assert satisfaction(desk, number) == {
        "rating": 4,
        "comment": "thanks",
        "at": desk.clock.now.isoformat().replace("+00:00", "Z"),
    }
    assert "satisfaction" in desk.events(number)
    assert "reopened" not in desk.events(number)
    assert len(desk.mails_to(ZOFIA_ADDR)) == mails_before  # nothing to tell her
    with desk.app.sessions() as s:
        row = s.scalars(select(Satisfaction)).one()
        assert (row.technician, row.category) == (ALICJA, "printing")
    # A new problem is not a rating: it reopens the ticket, as any reply does.
    answer(desk, ZOFIA, ZOFIA_ADDR, "Still broken: it prints blank pages again.")
    assert desk.ticket(number).status is TicketStatus.OPEN
    assert "reopened" in desk.events(number)
    assert satisfaction(desk, number)["rating"] == 4  # type: ignore[index]


def test_a_rating_word_counts_and_a_low_one_with_a_comment_tells_the_coordinator(
    desk: TechnicianDesk,
) -> None:
    number = resolved_printer_ticket(desk)
    answer(desk, ZOFIA, ZOFIA_ADDR, "słabo - czekałam dwa dni na odpowiedź")
    assert desk.ticket(number).status is TicketStatus.RESOLVED
    assert satisfaction(desk, number)["rating"] == 2  # type: ignore[index]
    notice = last_to(desk, "coord@example.test")
    text = notice.get_content()
    assert f"ticket #{number}" in text and "rated it 2 of 5" in text
    assert "czekałam dwa dni na odpowiedź" in text


def test_an_out_of_office_never_counts_as_a_rating_or_an_answer(desk: TechnicianDesk) -> None:
    number = resolved_printer_ticket(desk)
    answer(
        desk,
        ZOFIA,
        ZOFIA_ADDR,
        "5\n\nI am out of office until Monday.",
        headers={"Auto-Submitted": "auto-replied"},
    )
    assert desk.ticket(number).status is TicketStatus.RESOLVED
    assert satisfaction(desk, number) is None
    assert "automatic_mail" in desk.events(number)
    # Nor is it an answer that stops the waiting countdown, or a "solved".
    answer(desk, ZOFIA, ZOFIA_ADDR, "Still broken.")
    answer(desk, ALICJA, ALICJA, "#status waiting\n\nCzy drukarka jest włączona?")
    assert desk.ticket(number).status is TicketStatus.WAITING
    answer(desk, ZOFIA, ZOFIA_ADDR, "solved\n\nOut of office.", headers={"Auto-Submitted": "auto-replied"})
    assert desk.ticket(number).status is TicketStatus.WAITING
    assert "self_service" not in desk.events(number)


def waiting_ticket(desk: TechnicianDesk) -> int:
    number, _ = polish_printer_ticket(desk)
    answer(desk, ALICJA, ALICJA, "#status waiting\n\nCzy drukarka jest włączona i podłączona do sieci?")
    assert desk.ticket(number).status is TicketStatus.WAITING
    return number


def reminders(desk: TechnicianDesk) -> list[str]:
    return [
        m.message.get_content()
        for m in desk.mails_to(ZOFIA_ADDR)
        if "przypominamy" in m.message.get_content()
    ]


def test_a_waiting_ticket_gets_one_reminder_then_one_auto_resolution(desk: TechnicianDesk) -> None:
    number = waiting_ticket(desk)  # Tuesday 09:00 UTC
    timer = desk.app.sla_timer
    desk.clock.advance(days=2, hours=23)  # Friday morning: 2 business days, not 3
    assert timer.check().reminders == 0
    desk.clock.advance(days=3, hours=1)  # Monday 09:00: 4 business days (the weekend does not count)
    report = timer.check()
    assert (report.reminders, report.auto_resolved) == (1, 0)
    desk.app.sender.deliver_due()
    texts = reminders(desk)
    assert len(texts) == 1
    assert "Jeśli nie odezwiesz się w ciągu 4 dni roboczych" in texts[0]
    assert timer.check().reminders == 0  # each step once
    desk.clock.advance(days=3)  # Thursday: 3 business days after the reminder, not 4
    assert timer.check().auto_resolved == 0
    desk.clock.advance(days=1)  # Friday: 4
    assert timer.check().auto_resolved == 1
    assert timer.check().auto_resolved == 0
    desk.app.sender.deliver_due()
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.resolution and "no answer from the requester" in ticket.resolution
    told = last_to(desk, ZOFIA_ADDR)
    assert "oznaczyliśmy je jako rozwiązane" in told.get_content()
    assert told["Content-Language"] == "pl"
    assert len(reminders(desk)) == 1
    with desk.app.sessions() as s:
        steps = [e.new for e in s.get(Ticket, number).events if e.kind == "lifecycle"]  # type: ignore[union-attr]
    assert steps == ["waiting_reminder", "waiting_close"]
    # She can still reopen it by replying.
    answer(desk, ZOFIA, ZOFIA_ADDR, "Drukarka nadal nie działa, była wyłączona z prądu.")
    assert desk.ticket(number).status is TicketStatus.OPEN


def test_a_reply_after_the_reminder_stops_the_countdown(desk: TechnicianDesk) -> None:
    number = waiting_ticket(desk)
    timer = desk.app.sla_timer
    desk.clock.advance(days=6)  # Monday
    assert timer.check().reminders == 1
    desk.app.sender.deliver_due()
    answer(desk, ZOFIA, ZOFIA_ADDR, "Tak, jest włączona i podłączona.")
    assert desk.ticket(number).status is TicketStatus.OPEN
    desk.clock.advance(days=14)
    report = timer.check()
    assert (report.reminders, report.auto_resolved) == (0, 0)
    assert desk.ticket(number).status is TicketStatus.OPEN


def test_a_resolved_ticket_closes_after_resolved_close_days(desk: TechnicianDesk) -> None:
    number = resolved_printer_ticket(desk)
    timer = desk.app.sla_timer
    desk.clock.advance(days=6, hours=23)
    assert timer.check().auto_closed == 0
    desk.clock.advance(hours=1)
    assert timer.check().auto_closed == 1
    assert desk.ticket(number).status is TicketStatus.CLOSED
    assert timer.check().auto_closed == 0


def test_the_report_counts_ratings_per_technician_category_and_week(desk: TechnicianDesk) -> None:
    from helpdesk.report import build_report, render_report

    number = resolved_printer_ticket(desk)
    answer(desk, ZOFIA, ZOFIA_ADDR, "5")
    with desk.app.sessions() as s:
        report = build_report(s, now=desk.clock.now + timedelta(minutes=1), days=7, sla=desk.app.settings.sla)
    rated = report["satisfaction"]
    assert rated["count"] == 1 and rated["average"] == 5.0
    assert rated["by_technician"] == {ALICJA: {"count": 1, "average": 5.0, "low": 0}}
    assert rated["by_category"]["printing"]["count"] == 1
    assert list(rated["by_week"]) == ["2026-W48"]
    text = render_report(report)
    assert f"technician {ALICJA}: 5.0 avg of 1" in text
    assert desk.ticket(number).status is TicketStatus.RESOLVED


def test_a_colleague_in_cc_does_not_rate_the_requesters_ticket(desk: TechnicianDesk) -> None:
    number = resolved_printer_ticket(desk)
    mail = last_to(desk, ZOFIA_ADDR)
    desk.send(
        make_mail(
            sender="Jan <jan@klient.example.pl>",
            to=SUPPORT,
            cc=ZOFIA,
            subject=f"Re: {mail['Subject']}",
            body="1",
            in_reply_to=mail["Message-ID"],
        )
    )
    assert satisfaction(desk, number) is None


def test_a_late_rating_of_a_closed_ticket_rates_it_and_opens_nothing(desk: TechnicianDesk) -> None:
    number = resolved_printer_ticket(desk)
    desk.clock.advance(days=8)
    assert desk.app.sla_timer.check().auto_closed == 1
    answer(desk, ZOFIA, ZOFIA_ADDR, "5 - bardzo dziękuję")
    with desk.app.sessions() as s:
        assert list(s.scalars(select(Ticket.id))) == [number]  # no follow-up ticket
    assert desk.ticket(number).status is TicketStatus.CLOSED
    assert satisfaction(desk, number)["rating"] == 5  # type: ignore[index]
    # Anything else to a closed ticket still opens a follow-up, as before.
    answer(desk, ZOFIA, ZOFIA_ADDR, "Drukarka znowu nie drukuje.")
    with desk.app.sessions() as s:
        follow_up = s.scalars(select(Ticket).where(Ticket.id != number)).one()
        assert follow_up.follow_up_of == number


def test_two_timers_at_once_remind_once(desk: TechnicianDesk, make_app: Callable[..., App]) -> None:
    waiting_ticket(desk)
    other = make_app(sla={"timezone": "Europe/Warsaw", "hours": ["mon-fri 08:00-16:00"]})
    desk.clock.advance(days=6)
    reports: list[SlaReport] = []
    timers = [
        threading.Thread(target=lambda t=t: reports.append(t.check()))
        for t in (desk.app.sla_timer, other.sla_timer)
    ]
    for timer in timers:
        timer.start()
    for timer in timers:
        timer.join()
    assert sum(r.reminders for r in reports) == 1
    with desk.app.sessions() as s:
        assert (
            s.scalar(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "reminder"))
            == 1
        )
