"""Threading: every reply finds its ticket, and nobody walks into someone else's ticket."""

from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.app import App
from models.message import Message
from models.outbox import OutboxMessage
from models.ticket import Ticket, TicketStatus
from tests.conftest import deliver
from tests.mail import make_mail, parse
from tickets.status import set_status


def tickets(app: App) -> list[Ticket]:
    with app.sessions() as s:
        return list(s.scalars(select(Ticket).order_by(Ticket.id)))


def ack_of(app: App, ticket_id: int) -> tuple[str, str]:
    """(Message-ID, Reply-To address) of the acknowledgment of a ticket."""
    with app.sessions() as s:
        row = s.scalars(
            select(OutboxMessage).where(OutboxMessage.ticket_id == ticket_id, OutboxMessage.kind == "ack")
        ).one()
        mail = parse(row.data)
        return row.message_id, mail["Reply-To"].addresses[0].addr_spec


def messages_on(app: App, ticket_id: int) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(Message).where(Message.ticket_id == ticket_id)) or 0


def open_one(app: App) -> tuple[int, str, str]:
    report = deliver(app, make_mail(message_id="<first@example.com>"))
    assert report.tickets_created == 1
    ticket_id = report.ticket_ids[0]
    ack_id, reply_to = ack_of(app, ticket_id)
    return ticket_id, ack_id, reply_to


def test_reply_by_in_reply_to(app: App) -> None:
    ticket_id, ack_id, _ = open_one(app)
    report = deliver(app, make_mail(subject="Re: printer", body="Still broken.", in_reply_to=f"<{ack_id}>"))
    assert report.replies == 1
    assert report.ticket_ids == [ticket_id]
    assert len(tickets(app)) == 1


def test_reply_by_references_only(app: App) -> None:
    ticket_id, ack_id, _ = open_one(app)
    report = deliver(
        app,
        make_mail(subject="Printer", body="More info.", references=["<first@example.com>", f"<{ack_id}>"]),
    )
    assert report.replies == 1
    assert report.ticket_ids == [ticket_id]


def test_reply_by_token_only_when_headers_are_stripped(app: App) -> None:
    ticket_id, _, reply_to = open_one(app)
    assert reply_to.startswith("support+t")
    # Outlook/ServiceNow style: no In-Reply-To, no References, a new subject; only the Reply-To address survives.
    report = deliver(
        app, make_mail(to=reply_to, subject="printer again", body="Any news?"), envelope_to=[reply_to]
    )
    assert report.replies == 1
    assert report.ticket_ids == [ticket_id]


def test_a_forged_token_does_not_thread(app: App) -> None:
    ticket_id, _, reply_to = open_one(app)
    forged = reply_to.replace("+t", "+t9", 1)
    report = deliver(app, make_mail(to=forged, subject="hello", body="x"), envelope_to=[forged])
    assert report.tickets_created == 1
    assert report.ticket_ids != [ticket_id]


def test_reply_by_subject_tag_from_a_participant(app: App) -> None:
    ticket_id, _, _ = open_one(app)
    report = deliver(app, make_mail(subject=f"[#{ticket_id}] printer", body="It works again, thanks."))
    assert report.replies == 1
    assert report.ticket_ids == [ticket_id]


def test_stranger_quoting_a_ticket_number_gets_a_new_ticket(app: App) -> None:
    ticket_id, _, _ = open_one(app)
    report = deliver(
        app,
        make_mail(
            sender="mallory@evil.example", subject=f"Re: [#{ticket_id}] printer", body="Let me see it."
        ),
    )
    assert report.tickets_created == 1
    assert report.replies == 0
    assert report.ticket_ids != [ticket_id]
    assert messages_on(app, ticket_id) == 2  # the requester's mail and our ack, nothing of mallory's


def test_mail_arriving_after_a_reply_to_it_joins_that_ticket(app: App) -> None:
    # B answers A, but B is stored first (out of order): A then joins B's ticket.
    b = make_mail(message_id="<b@example.com>", in_reply_to="<a@example.com>", references=["<a@example.com>"])
    first = deliver(app, b)
    assert first.tickets_created == 1
    second = deliver(app, make_mail(message_id="<a@example.com>", subject="the original"))
    assert second.replies == 1
    assert second.ticket_ids == first.ticket_ids


def test_reply_reopens_a_resolved_ticket(app: App) -> None:
    ticket_id, ack_id, _ = open_one(app)
    with app.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        set_status(s, ticket, TicketStatus.RESOLVED, "tech@example.test", now=ticket.created_at)
        s.commit()
    report = deliver(app, make_mail(body="It is broken again.", in_reply_to=f"<{ack_id}>"))
    assert report.replies == 1
    with app.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        assert ticket.status is TicketStatus.OPEN
        assert ticket.resolved_at is None
        kinds = [e.kind for e in ticket.events]
        assert "reopened" in kinds


def test_reply_to_a_closed_ticket_opens_a_follow_up(app: App) -> None:
    ticket_id, ack_id, _ = open_one(app)
    with app.sessions() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        set_status(s, ticket, TicketStatus.CLOSED, "tech@example.test", now=ticket.created_at)
        s.commit()
    report = deliver(app, make_mail(body="New problem.", in_reply_to=f"<{ack_id}>"))
    assert report.tickets_created == 1
    with app.sessions() as s:
        new = s.get(Ticket, report.ticket_ids[0])
        assert new is not None
        assert new.follow_up_of == ticket_id


def test_redelivery_is_a_noop(app: App) -> None:
    mail = make_mail(message_id="<same@example.com>")
    deliver(app, mail)
    report = deliver(app, mail)
    assert report.processed == 0
    assert len(tickets(app)) == 1
