"""Staff act by mail only while the desk trusts them, and strangers get in only when staff say so.

Through the real SMTP listener and an SMTP sink: a work token is checked against the roster on
every use, expires, and a coordinator acts only with a token made for that coordinator. A
stranger's mail reaches the assignee as a note; `#add EMAIL` makes the stranger a participant.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select, update

from helpdesk.app import App
from helpdesk.settings import SettingsError, build_settings, env_overrides
from models.message import Message, MessageKind
from models.outbox import OutboxMessage
from models.people import CoordinatorRow, TechnicianRow
from models.ticket import Participant, Ticket, TicketStatus
from notify.tokens import Token, TokenKind, verify
from routing.people import parse_people_toml
from tests.conftest import REPO_ROOT, Clock, deliver
from tests.mail import SUPPORT, make_mail, parse
from tests.tickets import test_technicians as conversation
from tests.tickets.test_technicians import TechnicianDesk, polish_printer_ticket, reply
from tickets.roster import change_technician, import_people

desk = conversation.desk  # the same desk: roster, rules, SMTP listener and sink

ALICJA = "Alicja Nowak <alicja@example.test>"
COORD = "Marta Coordinator <coord@example.test>"
MALLORY = "Mallory <mallory@evil.example>"
ONE_TECHNICIAN = """
[[technician]]
name = "Bob Smith"
email = "bob@example.test"
languages = ["en"]
timezone = "UTC"
shifts = ["24/7"]
"""


def reply_address(mail: EmailMessage) -> str:
    return str(mail["Reply-To"].addresses[0].addr_spec)


def refusals_to(desk: TechnicianDesk, address: str) -> list[EmailMessage]:
    return [m.message for m in desk.mails_to(address) if "not applied" in m.message.get_content()]


def participants(desk: TechnicianDesk, number: int) -> dict[str, bool]:
    with desk.app.sessions() as s:
        rows = s.scalars(select(Participant).where(Participant.ticket_id == number))
        return {p.address: p.notify for p in rows}


def coordinator_ticket(desk: TechnicianDesk) -> tuple[int, EmailMessage]:
    """A ticket nobody can take: the coordinator's mail about it carries the coordinator's token."""
    with desk.app.sessions() as s:
        s.execute(update(TechnicianRow).values(active=False))
        s.commit()
    desk.send(make_mail(sender="Hans <hans@kunde.example.de>", subject="Drucker", body="Drucker kaputt."))
    told = [
        m.message for m in desk.mails_to("coord@example.test") if "nobody can take" in m.message.get_content()
    ]
    assert len(told) == 1
    number = int(str(told[0]["X-Helpdesk-Ticket"]))
    return number, told[0]


# -- the roster decides, on every use ----------------------------------------------------------------


def test_an_inactive_technicians_old_token_closes_nothing(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    work = reply_address(assignment)
    with desk.app.sessions() as s:
        change_technician(s, "alicja@example.test", ["active=false"], None)
        s.commit()
    desk.send(reply(ALICJA, work, "Re: x", "#close"), to=work)
    assert desk.ticket(number).status is TicketStatus.OPEN
    assert "refused" in desk.events(number)
    refusals = refusals_to(desk, "alicja@example.test")
    assert len(refusals) == 1
    assert "not an active" in refusals[0].get_content()


def test_a_work_token_expires(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    work = reply_address(assignment)
    desk.clock.advance(days=31)
    desk.send(reply(ALICJA, work, "Re: x", "#close"), to=work)
    assert desk.ticket(number).status is TicketStatus.OPEN
    refusals = refusals_to(desk, "alicja@example.test")
    assert len(refusals) == 1
    text = refusals[0].get_content()
    assert "expired" in text
    assert "newest" in text
    # The refusal went to her roster address, so it may carry a fresh reply address: that one works.
    fresh = reply_address(refusals[0])
    assert fresh != work
    desk.send(reply(ALICJA, fresh, "Re: x", "#close"), to=fresh)
    assert desk.ticket(number).status is TicketStatus.CLOSED


def test_a_work_token_within_its_lifetime_works(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    work = reply_address(assignment)
    desk.clock.advance(days=29)
    desk.send(reply(ALICJA, work, "Re: x", "#close"), to=work)
    assert desk.ticket(number).status is TicketStatus.CLOSED


def test_a_work_token_without_an_issue_day_lives_from_our_newest_mail_to_its_holder(
    desk: TechnicianDesk,
) -> None:
    """Tokens sent before they carried a day: as old as the newest mail we sent its holder on the ticket."""
    number, assignment = polish_printer_ticket(desk)
    secret = desk.app.settings.identity.secret
    current = verify(secret, reply_address(assignment).split("+", 1)[1].split("@")[0])
    assert current is not None and current.issued is not None
    legacy = Token(TokenKind.WORK, number, current.who).text(secret)
    address = f"support+{legacy}@example.test"
    with desk.app.sessions() as s:  # the assignment mail as a version without token days wrote it
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "assignment")).one()
        row.data = bytes(row.data).replace(reply_address(assignment).encode(), address.encode())
        s.commit()
    desk.clock.advance(days=20)
    desk.send(reply(ALICJA, address, "Re: x", "#priority high"), to=address)
    assert desk.ticket(number).priority.value == "high"
    desk.clock.advance(days=11)  # 31 days after the assignment mail, the newest one she got
    desk.send(reply(ALICJA, address, "Re: x", "#close"), to=address)
    assert desk.ticket(number).status is TicketStatus.OPEN
    assert "expired" in refusals_to(desk, "alicja@example.test")[-1].get_content()


def test_a_coordinator_cannot_act_with_a_technicians_token(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    work = reply_address(assignment)
    before = len(desk.mails_to("zofia@klient.example.pl"))
    desk.send(reply(COORD, work, "Re: x", "#resolve done\n\nAll fixed."), to=work)
    ticket = desk.ticket(number)
    assert ticket.status is TicketStatus.OPEN
    assert ticket.resolution is None
    assert len(desk.mails_to("zofia@klient.example.pl")) == before
    assert len(refusals_to(desk, "coord@example.test")) == 1


def test_a_coordinator_acts_with_their_own_token(desk: TechnicianDesk) -> None:
    number, told = coordinator_ticket(desk)
    own = reply_address(told)
    assert own.startswith(f"support+c{number}.")
    desk.send(reply(COORD, own, "Re: x", "#priority urgent\n#note called the customer"), to=own)
    assert desk.ticket(number).priority.value == "urgent"
    assert "refused" not in desk.events(number)


def test_an_inactive_coordinators_token_is_refused(desk: TechnicianDesk) -> None:
    number, told = coordinator_ticket(desk)
    own = reply_address(told)
    with desk.app.sessions() as s:
        s.execute(update(CoordinatorRow).values(active=False))
        s.commit()
    desk.send(reply(COORD, own, "Re: x", "#priority urgent"), to=own)
    assert desk.ticket(number).priority.value != "urgent"
    assert "refused" in desk.events(number)


def test_another_coordinators_token_is_refused(desk: TechnicianDesk) -> None:
    number, told = coordinator_ticket(desk)
    own = reply_address(told)
    with desk.app.sessions() as s:
        s.add(CoordinatorRow(email="other@example.test", name="Other", language="en"))
        s.commit()
    desk.send(reply("Other <other@example.test>", own, "Re: x", "#priority urgent"), to=own)
    assert desk.ticket(number).priority.value != "urgent"
    assert len(refusals_to(desk, "other@example.test")) == 1


# -- strangers and #add ------------------------------------------------------------------------------


def test_a_strangers_mail_reaches_the_assignee_and_add_lets_them_in(desk: TechnicianDesk) -> None:
    number, _ = polish_printer_ticket(desk)
    ack = desk.mails_to("zofia@klient.example.pl")[0].message
    desk.send(
        make_mail(
            sender=MALLORY,
            subject=f"Re: {ack['Subject']}",
            body="I sit next to Zofia, the printer shows error E5.",
            in_reply_to=ack["Message-ID"],
        )
    )
    assert "mallory@evil.example" not in participants(desk, number)
    assert desk.mails_to("mallory@evil.example") == []
    note = desk.mails_to("alicja@example.test")[-1].message
    text = note.get_content()
    assert "mallory@evil.example" in text
    assert "error E5" in text
    assert "#add mallory@evil.example" in text
    work = reply_address(note)
    assert work.startswith(f"support+w{number}.")

    desk.send(reply(ALICJA, work, "Re: x", "#add mallory@evil.example"), to=work)
    assert participants(desk, number)["mallory@evil.example"] is True
    assert desk.mails_to("mallory@evil.example") == []  # #add itself tells them nothing
    assert "participant_added" in desk.events(number)

    # From now on they get the ticket's mail with the requester, and their replies thread.
    desk.send(reply(ALICJA, work, "Re: x", "Dziękuję, wymienię toner."), to=work)
    relayed = desk.mails_to("mallory@evil.example")
    assert len(relayed) == 1
    assert "wymienię toner" in relayed[0].message.get_content()
    assert "mallory@evil.example" in str(relayed[0].message["Cc"])
    desk.send(make_mail(sender=MALLORY, body="Thanks!", in_reply_to=relayed[0].message["Message-ID"]))
    with desk.app.sessions() as s:
        kinds = list(s.scalars(select(Message.kind).where(Message.from_addr == "mallory@evil.example")))
    assert kinds == [MessageKind.STRANGER, MessageKind.REQUESTER]


def test_add_takes_one_outside_address(desk: TechnicianDesk) -> None:
    number, assignment = polish_printer_ticket(desk)
    work = reply_address(assignment)
    desk.send(reply(ALICJA, work, "Re: x", f"#add {SUPPORT}\n#add not-an-address"), to=work)
    error = desk.mails_to("alicja@example.test")[-1].message.get_content()
    assert "linia 1" in error and "linia 2" in error
    assert set(participants(desk, number)) == {"zofia@klient.example.pl", "alicja@example.test"}


# -- the lifetime is configuration ---------------------------------------------------------------------


def test_token_lifetime_is_read_from_the_security_section(tmp_path: Path) -> None:
    default = build_settings({}, tmp_path, None)
    assert default.tokens.lifetime == 30 * 86400
    example = tomllib.loads((REPO_ROOT / "deploy" / "helpdesk.example.toml").read_text())
    assert build_settings(example, tmp_path, None).tokens.lifetime == default.tokens.lifetime
    assert build_settings({"security": {"token_lifetime": "12h"}}, tmp_path, None).tokens.lifetime == 43200
    env = env_overrides({"HELPDESK_SECURITY_TOKEN_LIFETIME": "7d"})
    assert build_settings(env, tmp_path, None).tokens.lifetime == 7 * 86400
    with pytest.raises(SettingsError, match=r"security\.token_lifetime"):
        build_settings({"security": {"token_lifetime": "soon"}}, tmp_path, None)
    with pytest.raises(SettingsError, match=r"security\.token_lifetime"):
        build_settings({"security": {"token_lifetime": 0}}, tmp_path, None)


def test_a_configured_lifetime_is_honoured(make_app: Callable[..., App], clock: Clock) -> None:
    app = make_app(security={"token_lifetime": "2d"})
    with app.sessions() as s:
        import_people(s, parse_people_toml(ONE_TECHNICIAN))
        s.commit()
    number = deliver(app, make_mail()).ticket_ids[0]
    with app.sessions() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.kind == "assignment")).one()
        work = reply_address(parse(row.data))
    clock.advance(days=2)  # the day it was made, then two more: still good
    deliver(app, make_mail(sender="bob@example.test", to=work, body="#priority high"), envelope_to=[work])
    clock.advance(days=1)
    deliver(app, make_mail(sender="bob@example.test", to=work, body="#close"), envelope_to=[work])
    with app.sessions() as s:
        ticket = s.get(Ticket, number)
        assert ticket is not None
        assert ticket.priority.value == "high"
        assert ticket.status is TicketStatus.OPEN
        assert [e.kind for e in ticket.events].count("refused") == 1
