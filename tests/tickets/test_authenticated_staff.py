"""`[security] require_authenticated_staff`: a technician's commands count only in authenticated mail.

Through the real SMTP listener and an SMTP sink, like a desk behind an MTA that writes
Authentication-Results under its own authserv-id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.smtp_listener import SmtpListener
from models.ticket import Ticket, TicketStatus
from routing.people import parse_people_toml
from tests.conftest import Clock
from tests.loopback import free_port
from tests.mail import SmtpSink, make_mail
from tests.tickets.test_backscatter import ROSTER, TUESDAY_MORNING
from tests.tickets.test_technicians import TechnicianDesk
from tickets.roster import import_people

MX = "mx.example.test"


@pytest.fixture
def open_desk(make_app: Callable[..., App], clock: Clock) -> Iterator[Callable[..., TechnicianDesk]]:
    running: list[SmtpListener] = []
    with SmtpSink() as sink:

        def factory(**security: Any) -> TechnicianDesk:
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
            return TechnicianDesk(app, sink, port, clock)

        yield factory
        for listener in running:
            listener.stop()


def a_ticket(desk: TechnicianDesk) -> tuple[int, EmailMessage]:
    desk.send(make_mail(sender="Zofia <zofia@klient.example.pl>", subject="Printer is dead"))
    with desk.app.sessions() as s:
        number = s.scalars(select(Ticket.id)).one()
    (assignment,) = desk.mails_to("alicja@example.test")
    return number, assignment.message


def resolve(desk: TechnicianDesk, assignment: EmailMessage, *, authenticated: bool) -> None:
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
    open_desk: Callable[..., TechnicianDesk],
) -> None:
    desk = open_desk(require_authenticated_staff=True)
    number, assignment = a_ticket(desk)
    resolve(desk, assignment, authenticated=False)
    assert desk.ticket(number).status is TicketStatus.OPEN  # nothing changed
    refusal = desk.mails_to("alicja@example.test")[-1].message
    assert "not applied" in refusal.get_content()
    assert "not authenticated for example.test" in refusal.get_content()


def test_authenticated_staff_commands_are_applied_when_required(
    open_desk: Callable[..., TechnicianDesk],
) -> None:
    desk = open_desk(require_authenticated_staff=True)
    number, assignment = a_ticket(desk)
    resolve(desk, assignment, authenticated=True)
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.resolution == "replaced the fuser"


def test_by_default_staff_mail_needs_no_authentication(open_desk: Callable[..., TechnicianDesk]) -> None:
    desk = open_desk()
    number, assignment = a_ticket(desk)
    resolve(desk, assignment, authenticated=False)
    assert desk.ticket(number).status is TicketStatus.RESOLVED


def test_a_technicians_out_of_office_is_not_relayed_to_the_requester(
    open_desk: Callable[..., TechnicianDesk],
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
