"""The coordinator's job, automated: full conversations through the real SMTP listener and an SMTP sink."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.smtp_listener import SmtpListener
from models.ticket import Ticket, TicketStatus
from routing.people import parse_people_toml
from tests.conftest import Clock
from tests.loopback import free_port
from tests.mail import SUPPORT, Received, SmtpSink, make_mail, send_mail
from tickets.roster import import_people

# Tuesday 24 November 2026, 10:00 in Warsaw (09:00 UTC).
TUESDAY_MORNING = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

ROSTER = """
[[technician]]
name = "Alicja Nowak"
email = "alicja@example.test"
tier = 1
languages = ["pl", "en"]
timezone = "Europe/Warsaw"
max_open = 12
shifts = ["mon-fri 08:00-16:00"]
skills = { printing = 5, network = 2 }

[[technician]]
name = "Piotr Zieliński"
email = "piotr@example.test"
tier = 1
languages = ["pl"]
timezone = "Europe/Warsaw"
shifts = ["mon-fri 16:00-23:00"]
skills = { printing = 5 }

[[technician]]
name = "Bob Smith"
email = "bob@example.test"
tier = 1
languages = ["en"]
timezone = "Europe/London"
shifts = ["mon-fri 08:00-17:00"]
skills = { printing = 4 }

[[technician]]
name = "Katarzyna Wójcik"
email = "kasia@example.test"
tier = 2
languages = ["pl", "en", "de"]
timezone = "Europe/Warsaw"
shifts = ["24/7"]
skills = { printing = 3, network = 5 }

[[coordinator]]
name = "Marta Coordinator"
email = "coord@example.test"
language = "en"
"""

RULES = """
[[rule]]
name = "printers"
[rule.when]
subject_or_body_contains = ["drukarka", "drukarki", "printer", "drucker"]
[rule.then]
category = "printing"
"""


@dataclass
class TechnicianDesk:
    app: App
    sink: SmtpSink
    port: int
    clock: Clock

    def send(self, data: bytes, to: str = SUPPORT) -> None:
        send_mail(self.port, data, to=[to])
        self.app.worker.process_available()
        self.app.sender.deliver_due()

    def mails_to(self, address: str) -> list[Received]:
        return [r for r in self.sink.received if address in r.rcpt_tos]

    def ticket(self, number: int) -> Ticket:
        with self.app.sessions() as s:
            ticket = s.get(Ticket, number)
            assert ticket is not None
            return ticket

    def events(self, number: int) -> list[str]:
        with self.app.sessions() as s:
            ticket = s.get(Ticket, number)
            assert ticket is not None
            return [e.kind for e in ticket.events]


@pytest.fixture
def desk(make_app: Callable[..., App], tmp_path: Path, clock: Clock) -> Iterator[TechnicianDesk]:
    clock.now = TUESDAY_MORNING
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    with SmtpSink() as sink:
        port = free_port()
        app = make_app(
            smtp={"listen": f"127.0.0.1:{port}"},
            outgoing={"url": f"smtp://127.0.0.1:{sink.port}?tls=none"},
            routing={"rules_path": str(rules)},
            sla={"timezone": "Europe/Warsaw", "hours": ["mon-fri 08:00-16:00"]},
        )
        with app.sessions() as s:
            import_people(s, parse_people_toml(ROSTER, categories=app.settings.routing.categories))
            s.commit()
        listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
        listener.start()
        try:
            yield TechnicianDesk(app, sink, port, clock)
        finally:
            listener.stop()


def polish_printer_ticket(desk: TechnicianDesk) -> tuple[int, EmailMessage]:
    desk.send(
        make_mail(
            sender="Zofia Kowalska <zofia@klient.example.pl>",
            subject="Drukarka nie drukuje",
            body="Dzień dobry, drukarka w pokoju 12 nie drukuje od rana. Proszę o pomoc.",
            message_id="<zofia-1@klient.example.pl>",
        )
    )
    with desk.app.sessions() as s:
        number = s.scalars(select(Ticket.id)).one()
    assignment = desk.mails_to("alicja@example.test")
    assert len(assignment) == 1
    return number, assignment[0].message


def reply(
    sender: str,
    to: str,
    subject: str,
    body: str,
    in_reply_to: str | None = None,
    message_id: str | None = None,
) -> bytes:
    return make_mail(
        sender=sender, to=to, subject=subject, body=body, in_reply_to=in_reply_to, message_id=message_id
    )


def test_polish_printer_ticket_goes_to_the_polish_printing_expert_on_shift(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    ticket = desk.ticket(number)
    assert ticket.category == "printing"
    assert ticket.language == "pl"
    assert ticket.assignee == "alicja@example.test"  # not Piotr (off shift), not Bob (no Polish)
    assert ticket.status is TicketStatus.OPEN
    with desk.app.sessions() as s:
        assigned = [e for e in s.get(Ticket, number).events if e.kind == "assigned"]  # type: ignore[union-attr]
        assert assigned[0].data["parts"]
        assert "piotr@example.test" in assigned[0].data["rejected"]
    # The technician's mail: Polish, with the requester's words and a reply address signed for her.
    text = assignment.get_content()
    assert "zgłoszenie nr" in text
    assert "drukarka w pokoju 12 nie drukuje" in text
    assert "#resolve" in text
    assert assignment["Reply-To"].addresses[0].addr_spec.startswith(f"support+w{number}.")
    # The requester: one acknowledgment, in Polish, in her thread, saying who looks after it.
    to_zofia = desk.mails_to("zofia@klient.example.pl")
    assert [m.message["Content-Language"] for m in to_zofia] == ["pl"]
    assert "Zajmuje się nim Alicja Nowak" in to_zofia[0].message.get_content()
    assert to_zofia[0].message["References"] == "<zofia-1@klient.example.pl>"
    assert desk.mails_to("piotr@example.test") == []


def test_status_command_and_reply_reach_the_requester_in_her_thread_in_polish(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    desk.send(
        reply(
            "Alicja Nowak <alicja@example.test>",
            reply_to,
            f"Re: {assignment['Subject']}",
            "#status in_progress\n\nDzień dobry, sprawdzę drukarkę jeszcze dziś przed południem.\n\n"
            "> quoted assignment text\n",
            in_reply_to=assignment["Message-ID"],
        ),
        to=reply_to,
    )
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.IN_PROGRESS
    assert ticket.first_response_at == desk.clock.now
    relay = desk.mails_to("zofia@klient.example.pl")[-1].message
    body = relay.get_content()
    assert "sprawdzę drukarkę jeszcze dziś" in body
    assert "#status" not in body
    assert "quoted assignment text" not in body
    assert "Alicja Nowak" in str(relay["From"])
    assert relay["Content-Language"] == "pl"
    assert relay["Subject"] == f"Re: [#{number}] Drukarka nie drukuje"
    assert relay["References"].startswith("<zofia-1@klient.example.pl>")
    assert relay["Reply-To"].addresses[0].addr_spec.startswith(f"support+t{number}-")


def test_forged_from_with_a_valid_token_changes_nothing(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    before = len(desk.mails_to("zofia@klient.example.pl"))
    desk.send(
        reply("Mallory <mallory@evil.example>", reply_to, "Re: x", "#resolve done\n\nAll fixed, bye."),
        to=reply_to,
    )
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.OPEN
    assert ticket.resolution is None
    assert len(desk.mails_to("zofia@klient.example.pl")) == before  # nothing relayed
    refusal = desk.mails_to("mallory@evil.example")
    assert len(refusal) == 1
    assert "not applied" in refusal[0].message.get_content()
    assert "refused" in desk.events(number)


def test_valid_from_without_the_token_changes_nothing(desk: TechnicianDesk) -> None:
    number, _ = polish_printer_ticket(desk)
    before = len(desk.mails_to("zofia@klient.example.pl"))
    desk.send(
        reply("Alicja Nowak <alicja@example.test>", SUPPORT, f"[#{number}] drukarka", "#close\n\nZamykam.")
    )
    assert desk.ticket(number).status is TicketStatus.OPEN
    assert len(desk.mails_to("zofia@klient.example.pl")) == before
    refusals = [m for m in desk.mails_to("alicja@example.test") if "not applied" in m.message.get_content()]
    assert len(refusals) == 1


def test_resolve_without_a_note_is_refused(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    before = len(desk.mails_to("zofia@klient.example.pl"))
    desk.send(
        reply("alicja@example.test", reply_to, "Re: x", "#priority high\n#resolve\n\nNaprawione."),
        to=reply_to,
    )
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.OPEN
    assert ticket.priority.value == "normal"  # the valid #priority line was not applied either
    assert len(desk.mails_to("zofia@klient.example.pl")) == before
    error = desk.mails_to("alicja@example.test")[-1].message
    text = error.get_content()
    assert "linia 2" in text  # she reads Polish: the reply says which line and why
    assert "#resolve" in text


def test_resolution_then_the_requesters_reply_reopens(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    desk.send(
        reply("alicja@example.test", reply_to, "Re: x", "#resolve wymieniono toner w drukarce"), to=reply_to
    )
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.resolution == "wymieniono toner w drukarce"
    resolved = desk.mails_to("zofia@klient.example.pl")[-1].message
    assert "wymieniono toner w drukarce" in resolved.get_content()
    desk.send(
        reply(
            "Zofia Kowalska <zofia@klient.example.pl>",
            SUPPORT,
            resolved["Subject"],
            "Niestety nadal nie drukuje.",
            in_reply_to=resolved["Message-ID"],
        )
    )
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.OPEN
    assert ticket.assignee == "alicja@example.test"
    assert "reopened" in desk.events(number)
    assert "ponownie otwarte" in desk.mails_to("zofia@klient.example.pl")[-1].message.get_content()
    assert "Niestety nadal nie drukuje" in desk.mails_to("alicja@example.test")[-1].message.get_content()


def test_note_stays_internal_and_category_correction_is_recorded(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    before = len(desk.mails_to("zofia@klient.example.pl"))
    desk.send(
        reply(
            "alicja@example.test", reply_to, "Re: x", "#note to jednak sieć, nie drukarka\n#category network"
        ),
        to=reply_to,
    )
    ticket = desk.ticket(number)
    assert ticket.category == "network"
    assert len(desk.mails_to("zofia@klient.example.pl")) == before  # a note is never sent
    with desk.app.sessions() as s:
        t = s.get(Ticket, number)
        assert t is not None
        notes = [m for m in t.messages if m.kind == "note"]
        assert notes[0].internal
        assert notes[0].text == "to jednak sieć, nie drukarka"
        corrections = [e for e in t.events if e.kind == "category"]
        assert (corrections[0].old, corrections[0].new, corrections[0].actor) == (
            "printing",
            "network",
            "alicja@example.test",
        )


def test_sla_breach_escalates_to_tier_two_and_tells_the_coordinator_once(desk: TechnicianDesk) -> None:
    number, _ = polish_printer_ticket(desk)
    # Normal priority: first response due 8 business hours later; the clock jumps well past it.
    desk.clock.advance(days=2)
    first = desk.app.sla_timer.check()
    second = desk.app.sla_timer.check()
    desk.app.sender.deliver_due()
    assert first.breaches >= 1
    assert first.escalations >= 1
    assert second.breaches == 0
    assert second.warnings == 0
    ticket = desk.ticket(number)
    assert ticket.assignee == "kasia@example.test"  # tier 2
    breach_mails = [m for m in desk.mails_to("coord@example.test") if "missed its" in m.message.get_content()]
    assert len(breach_mails) == len({s for s in ticket.sla_done if s.endswith("breach")})
    escalation_to_kasia = desk.mails_to("kasia@example.test")
    assert escalation_to_kasia
    assert "alicja@example.test" in escalation_to_kasia[0].message.get_content()
    assert "sla" in desk.events(number)
    assert "escalated" in desk.events(number)


def test_sla_warning_reminds_the_assignee_once(desk: TechnicianDesk) -> None:
    number, _ = polish_printer_ticket(desk)
    # 75% of 8 business hours (first response) is 6 hours: 10:00 + 6h = 16:00 Warsaw, end of business.
    desk.clock.advance(hours=6, minutes=30)
    desk.app.sla_timer.check()
    desk.app.sla_timer.check()
    desk.app.sender.deliver_due()
    reminders = [m for m in desk.mails_to("alicja@example.test") if "upływa" in m.message.get_content()]
    assert len(reminders) == 1
    assert desk.ticket(number).assignee == "alicja@example.test"


def test_nobody_fits_tells_the_coordinator_why(desk: TechnicianDesk) -> None:
    desk.send(
        make_mail(
            sender="Hans <hans@kunde.example.de>",
            subject="Der Drucker druckt nicht",
            body="Guten Tag, der Drucker im 3. Stock druckt nicht mehr. Bitte helfen Sie.",
        )
    )
    # Everyone who can print is at full load: nobody fits.
    with desk.app.sessions() as s:
        from models.people import TechnicianRow

        for row in s.scalars(select(TechnicianRow)):
            row.active = False
        s.commit()
    desk.send(
        make_mail(sender="Hans <hans@kunde.example.de>", subject="Drucker again", body="Drucker kaputt.")
    )
    told = [m for m in desk.mails_to("coord@example.test") if "nobody can take" in m.message.get_content()]
    assert len(told) == 1
    text = told[0].message.get_content()
    assert "inactive" in text or "not active" in text


def test_report_counts_what_happened(desk: TechnicianDesk) -> None:
    from helpdesk.report import build_report, render_report

    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    desk.clock.advance(hours=1)
    desk.send(
        reply("alicja@example.test", reply_to, "Re: x", "#resolve toner wymieniony\n\nGotowe."), to=reply_to
    )
    with desk.app.sessions() as s:
        report = build_report(s, now=desk.clock.now, days=7, sla=desk.app.settings.sla)
    assert report["opened"] == 1
    assert report["resolved"] == 1
    assert report["first_response_hours"]["median"] == 1.0
    assert report["sla"]["met"] == 1
    assert report["routed_by"] == {"rule": 1}
    assert "opened 1   resolved 1" in render_report(report)
    assert number == 1


def test_a_technician_can_reopen_a_closed_ticket_with_a_command(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    desk.send(reply("alicja@example.test", reply_to, "Re: x", "#close"), to=reply_to)
    assert desk.ticket(number).status is TicketStatus.CLOSED
    desk.send(
        reply("alicja@example.test", reply_to, "Re: x", "#status open\n#note klientka dzwoniła"), to=reply_to
    )
    assert desk.ticket(number).status is TicketStatus.OPEN
    with desk.app.sessions() as s:
        assert len(list(s.scalars(select(Ticket.id)))) == 1  # no follow-up ticket for staff
    assert "ponownie otwarte" in desk.mails_to("zofia@klient.example.pl")[-1].message.get_content()
