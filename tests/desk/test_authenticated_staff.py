"""`[security] require_authenticated_staff`: a technician's commands count only in authenticated mail.

Through the real SMTP listener and an SMTP sink, like a desk behind an MTA that writes
Authentication-Results under its own authserv-id.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.smtp_listener import SmtpListener
from models.ticket import Ticket, TicketStatus
from routing.people import parse_people_toml
from tests.conftest import Clock
from tests.desk.test_backscatter import ROSTER, TUESDAY_MORNING
from tests.mail import SUPPORT, Received, SmtpSink, free_port, make_mail
from tickets.roster import import_people

MX = "mx.example.test"


@dataclass
class StaffedDesk:
    app: App
    sink: SmtpSink
    port: int

    def send(self, data: bytes, to: str = SUPPORT) -> None:
        with smtplib.SMTP("127.0.0.1", self.port) as client:
            client.sendmail("someone@example.com", [to], data)
        self.app.worker.process_available()
        self.app.sender.deliver_due()

    def mails_to(self, address: str) -> list[Received]:
        return [r for r in self.sink.received if address in r.rcpt_tos]

    def ticket(self, number: int) -> Ticket:
        with self.app.sessions() as s:
            ticket = s.get(Ticket, number)
            assert ticket is not None
            return ticket


@pytest.fixture
def open_desk(make_app: Callable[..., App], clock: Clock) -> Iterator[Callable[..., StaffedDesk]]:
    running: list[SmtpListener] = []
    with SmtpSink() as sink:

        def factory(**security: Any) -> StaffedDesk:
            clock.now = TUESDAY_MORNING
            port = free_port()
            app = make_app(
                smtp={"listen": f"127.0.0.1:{port}"},
                outgoing={"url": f"smtp://127.0.0.1:{sink.port}?tls=none"},
                security={"trusted_authserv_ids": [MX], **security},
            )
            with app.sessions() as s:
                import_people(s, parse_people_toml(ROSTER, categories=app.settings.routing.categories))
                s.commit()
            listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
            listener.start()
            running.append(listener)
            return StaffedDesk(app, sink, port)

        yield factory
        for listener in running:
            listener.stop()


def a_ticket(desk: StaffedDesk) -> tuple[int, EmailMessage]:
    desk.send(make_mail(sender="Zofia <zofia@klient.example.pl>", subject="Printer is dead"))
    with desk.app.sessions() as s:
        number = s.scalars(select(Ticket.id)).one()
    (assignment,) = desk.mails_to("alicja@example.test")
    return number, assignment.message


def resolve(desk: StaffedDesk, assignment: EmailMessage, *, authenticated: bool) -> None:
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    mail = make_mail(
        sender="Alicja Nowak <alicja@example.test>",
        to=reply_to,
        subject=f"Re: {assignment['Subject']}",
        body="#resolve replaced the fuser\n\nIt prints again.",
        in_reply_to=assignment["Message-ID"],
    )
    result = "pass" if authenticated else "none"
    header = f"Authentication-Results: {MX}; dkim={result} header.d=example.test\r\n".encode()
    desk.send(header + mail, to=reply_to)


def test_unauthenticated_staff_commands_are_refused_when_required(
    open_desk: Callable[..., StaffedDesk],
) -> None:
    desk = open_desk(require_authenticated_staff=True)
    number, assignment = a_ticket(desk)
    resolve(desk, assignment, authenticated=False)
    assert desk.ticket(number).status is TicketStatus.OPEN  # nothing changed
    refusal = desk.mails_to("alicja@example.test")[-1].message
    assert "not applied" in refusal.get_content()
    assert "not authenticated for example.test" in refusal.get_content()


def test_authenticated_staff_commands_are_applied_when_required(
    open_desk: Callable[..., StaffedDesk],
) -> None:
    desk = open_desk(require_authenticated_staff=True)
    number, assignment = a_ticket(desk)
    resolve(desk, assignment, authenticated=True)
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.resolution == "replaced the fuser"


def test_by_default_staff_mail_needs_no_authentication(open_desk: Callable[..., StaffedDesk]) -> None:
    desk = open_desk()
    number, assignment = a_ticket(desk)
    resolve(desk, assignment, authenticated=False)
    assert desk.ticket(number).status is TicketStatus.RESOLVED


def test_a_technicians_out_of_office_is_not_relayed_to_the_requester(
    open_desk: Callable[..., StaffedDesk],
) -> None:
    desk = open_desk()
    number, assignment = a_ticket(desk)
    # Notices are marked as machine-made, so a well-behaved responder stays quiet ...
    assert assignment["Auto-Submitted"] == "auto-generated"
    reply_to = assignment["Reply-To"].addresses[0].addr_spec
    before = len(desk.mails_to("zofia@klient.example.pl"))
    # ... and one that answers anyway reaches nobody through us (RFC 3834 section 2).
    desk.send(
        make_mail(
            sender="Alicja Nowak <alicja@example.test>",
            to=reply_to,
            subject=f"Automatic reply: {assignment['Subject']}",
            body="I am out of the office until Monday.",
            in_reply_to=assignment["Message-ID"],
            headers={"Auto-Submitted": "auto-replied"},
        ),
        to=reply_to,
    )
    assert len(desk.mails_to("zofia@klient.example.pl")) == before
    assert desk.ticket(number).status is TicketStatus.OPEN
