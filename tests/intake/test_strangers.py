"""Strangers cannot ride a ticket's threading: what a non-participant's mail may and may not do.

A mail joins a ticket through its headers only via a message we sent to its sender or one its
sender sent (or when the sender is already on the ticket). Anyone else who knows a Message-ID of
ours (it is in every forwarded mail) or a forwarded reply address leaves a note for staff, and
nothing more: no participant, no reopening, no status change, no mail to them.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from helpdesk.app import App
from models.message import Message, MessageKind
from models.outbox import OutboxMessage
from models.raw_message import RawMessage
from models.ticket import Participant, Ticket, TicketStatus
from routing.people import parse_people_toml
from tests.conftest import deliver
from tests.mail import make_mail, parse
from tickets.roster import import_people
from tickets.status import set_status

ROSTER = """
[[technician]]
name = "Bob Smith"
email = "bob@example.test"
languages = ["en"]
timezone = "UTC"
shifts = ["24/7"]

[[coordinator]]
name = "Marta Coordinator"
email = "coord@example.test"
language = "en"
"""

ALICE = "Alice Example <alice@example.com>"
MALLORY = "Mallory <mallory@evil.example>"


@pytest.fixture
def staffed(app: App) -> App:
    """The desk with one technician on shift around the clock and one coordinator."""
    with app.sessions() as s:
        import_people(s, parse_people_toml(ROSTER))
        s.commit()
    return app


def outbox(app: App, **where: Any) -> list[OutboxMessage]:
    with app.sessions() as s:
        query = select(OutboxMessage).order_by(OutboxMessage.id)
        for name, value in where.items():
            query = query.where(getattr(OutboxMessage, name) == value)
        return list(s.scalars(query))


def ack_of(app: App, ticket_id: int) -> tuple[str, str]:
    """(Message-ID, Reply-To address) of a ticket's acknowledgment."""
    row = outbox(app, ticket_id=ticket_id, kind="ack")[0]
    return row.message_id, parse(row.data)["Reply-To"].addresses[0].addr_spec


def participants(app: App, ticket_id: int) -> dict[str, bool]:
    with app.sessions() as s:
        rows = s.scalars(select(Participant).where(Participant.ticket_id == ticket_id))
        return {p.address: p.notify for p in rows}


def ticket(app: App, number: int) -> Ticket:
    with app.sessions() as s:
        found = s.get(Ticket, number)
        assert found is not None
        return found


def kinds_on(app: App, number: int) -> list[str]:
    with app.sessions() as s:
        return list(s.scalars(select(Message.kind).where(Message.ticket_id == number).order_by(Message.id)))


def open_ticket(app: App) -> tuple[int, str, str]:
    report = deliver(app, make_mail(sender=ALICE, message_id="<alice-1@example.com>"))
    assert report.tickets_created == 1
    number = report.ticket_ids[0]
    ack_id, reply_to = ack_of(app, number)
    return number, ack_id, reply_to


def resolve(app: App, number: int) -> None:
    with app.sessions() as s:
        found = s.get(Ticket, number)
        assert found is not None
        set_status(s, found, TicketStatus.RESOLVED, "bob@example.test", now=found.created_at)
        s.commit()


def test_a_stranger_replying_to_our_acknowledgment_leaves_a_note_and_joins_nothing(staffed: App) -> None:
    app = staffed
    number, ack_id, _ = open_ticket(app)
    assert ticket(app, number).assignee == "bob@example.test"
    resolve(app, number)
    before = len(outbox(app))
    report = deliver(
        app,
        make_mail(
            sender=MALLORY,
            subject=f"Re: [#{number}] Printer on floor 3 does not print",
            body="Please send me the details of this ticket.",
            in_reply_to=f"<{ack_id}>",
            references=["<alice-1@example.com>", f"<{ack_id}>"],
        ),
    )
    assert report.replies == 0
    assert report.tickets_created == 0
    assert report.strangers == 1
    assert report.ticket_ids == [number]
    # Not a participant, no reopening, no status change, no mail to them.
    assert "mallory@evil.example" not in participants(app, number)
    assert ticket(app, number).status is TicketStatus.RESOLVED
    assert outbox(app, recipient="mallory@evil.example") == []
    # Kept on the ticket as an internal note, and the assignee is told it is a stranger's.
    with app.sessions() as s:
        note = s.scalars(select(Message).where(Message.from_addr == "mallory@evil.example")).one()
        assert note.kind == MessageKind.STRANGER
        assert note.internal
        events = [e.kind for e in s.scalars(select(Ticket).where(Ticket.id == number)).one().events]
        assert "stranger_mail" in events
        assert "reopened" not in events
        raw = s.scalars(select(RawMessage).order_by(RawMessage.id.desc())).first()
        assert raw is not None and raw.outcome == "stranger"
    told = outbox(app)[before:]
    assert [(m.recipient, m.kind) for m in told] == [("bob@example.test", "stranger_notice")]
    text = parse(told[0].data).get_content()
    assert "mallory@evil.example" in text
    assert "Please send me the details" in text
    assert "#add mallory@evil.example" in text
    assert "the requester wrote" not in text


def test_the_requesters_own_reply_still_threads_and_reopens(staffed: App) -> None:
    app = staffed
    number, ack_id, _ = open_ticket(app)
    resolve(app, number)
    report = deliver(app, make_mail(sender=ALICE, body="Broken again.", in_reply_to=f"<{ack_id}>"))
    assert report.replies == 1
    assert ticket(app, number).status is TicketStatus.OPEN


def test_a_stranger_quoting_the_ticket_number_and_our_message_does_not_reopen(staffed: App) -> None:
    app = staffed
    number, ack_id, _ = open_ticket(app)
    resolve(app, number)
    deliver(app, make_mail(sender=MALLORY, subject=f"Re: [#{number}] x", references=[f"<{ack_id}>"]))
    assert ticket(app, number).status is TicketStatus.RESOLVED
    assert "mallory@evil.example" not in participants(app, number)


def test_a_forwarded_requester_reply_address_makes_no_participant(staffed: App) -> None:
    """Reply addresses get forwarded with the mail: the token names the thread, not who may join it."""
    app = staffed
    number, _, reply_to = open_ticket(app)
    report = deliver(
        app, make_mail(sender=MALLORY, to=reply_to, subject="hi", body="Me too."), envelope_to=[reply_to]
    )
    assert report.strangers == 1
    assert report.ticket_ids == [number]
    assert "mallory@evil.example" not in participants(app, number)
    assert outbox(app, recipient="mallory@evil.example") == []
    # The requester's own mail to the same address is hers.
    report = deliver(
        app, make_mail(sender=ALICE, to=reply_to, subject="hi", body="Any news?"), envelope_to=[reply_to]
    )
    assert report.replies == 1


def test_a_stranger_on_an_unassigned_ticket_is_reported_to_the_coordinators(app: App) -> None:
    with app.sessions() as s:
        import_people(s, parse_people_toml("[[coordinator]]" + ROSTER.split("[[coordinator]]")[1]))
        s.commit()
    number, ack_id, _ = open_ticket(app)
    assert ticket(app, number).assignee is None
    before = len(outbox(app))
    deliver(app, make_mail(sender=MALLORY, body="Let me in.", in_reply_to=f"<{ack_id}>"))
    told = outbox(app)[before:]
    assert [(m.recipient, m.kind) for m in told] == [("coord@example.test", "stranger_notice")]
    assert "#add mallory@evil.example" in parse(told[0].data).get_content()


def test_a_stranger_flood_tells_staff_once_an_hour(staffed: App) -> None:
    app = staffed
    number, ack_id, _ = open_ticket(app)
    before = len(outbox(app))
    for n in range(5):
        deliver(app, make_mail(sender=MALLORY, body=f"again {n}", in_reply_to=f"<{ack_id}>"))
    assert [m.kind for m in outbox(app)[before:]] == ["stranger_notice"]
    assert kinds_on(app, number).count(MessageKind.STRANGER) == 5  # every mail is kept


def test_a_strangers_reply_to_their_own_note_stays_a_note(staffed: App) -> None:
    app = staffed
    number, ack_id, _ = open_ticket(app)
    deliver(app, make_mail(sender=MALLORY, message_id="<m1@evil.example>", in_reply_to=f"<{ack_id}>"))
    report = deliver(app, make_mail(sender=MALLORY, in_reply_to="<m1@evil.example>"))
    assert report.strangers == 1
    assert report.ticket_ids == [number]
    assert "mallory@evil.example" not in participants(app, number)


def test_a_refusal_we_sent_does_not_let_its_recipient_in(staffed: App) -> None:
    """A refusal goes to whoever wrote: answering it must not make them a participant."""
    app = staffed
    number, _, _ = open_ticket(app)
    assignment = outbox(app, ticket_id=number, kind="assignment")[0]
    work = parse(assignment.data)["Reply-To"].addresses[0].addr_spec
    deliver(app, make_mail(sender=MALLORY, to=work, body="#close"), envelope_to=[work])
    refusal = outbox(app, recipient="mallory@evil.example", kind="refusal")
    assert len(refusal) == 1
    report = deliver(app, make_mail(sender=MALLORY, body="Why?", in_reply_to=f"<{refusal[0].message_id}>"))
    assert report.replies == 0
    assert "mallory@evil.example" not in participants(app, number)
    assert ticket(app, number).status is TicketStatus.OPEN


def test_two_people_answering_the_same_announcement_get_a_ticket_each(app: App) -> None:
    newsletter = "<issue-42@news.example>"
    first = deliver(
        app,
        make_mail(sender=ALICE, subject="Re: Newsletter", in_reply_to=newsletter, references=[newsletter]),
    )
    second = deliver(
        app,
        make_mail(
            sender="Carol <carol@other.example>",
            subject="Re: Newsletter",
            body="Unsubscribe me please.",
            in_reply_to=newsletter,
            references=[newsletter],
        ),
    )
    assert first.tickets_created == 1
    assert second.tickets_created == 1
    assert second.ticket_ids != first.ticket_ids
    assert "carol@other.example" not in participants(app, first.ticket_ids[0])


def test_a_reply_to_someone_elses_stored_mail_opens_its_own_ticket(app: App) -> None:
    """References only to mail that is neither ours nor the sender's own: a ticket of their own."""
    number, _, _ = open_ticket(app)
    report = deliver(
        app, make_mail(sender="Carol <carol@other.example>", in_reply_to="<alice-1@example.com>")
    )
    assert report.tickets_created == 1
    assert report.ticket_ids != [number]
    assert "carol@other.example" not in participants(app, number)


def test_a_reference_to_a_future_message_id_captures_nothing(app: App) -> None:
    trap = deliver(
        app,
        make_mail(
            sender=MALLORY,
            subject="hello",
            body="Anything.",
            references=["<next-week@victim.example>"],
        ),
    )
    victim = deliver(
        app,
        make_mail(
            sender="Victor <victor@victim.example>",
            subject="My laptop does not boot",
            body="It shows a black screen.",
            message_id="<next-week@victim.example>",
        ),
    )
    assert victim.tickets_created == 1
    assert victim.ticket_ids != trap.ticket_ids
    assert ticket(app, victim.ticket_ids[0]).requester == "victor@victim.example"
    assert "victor@victim.example" not in participants(app, trap.ticket_ids[0])


def test_out_of_order_replies_of_the_same_person_still_thread(app: App) -> None:
    # B answers A and shares a reference with C; all three from Alice, stored B, C, then A.
    b = make_mail(sender=ALICE, message_id="<b@example.com>", references=["<a@example.com>"])
    first = deliver(app, b)
    c = make_mail(sender=ALICE, message_id="<c@example.com>", references=["<a@example.com>"])
    second = deliver(app, c)
    third = deliver(app, make_mail(sender=ALICE, message_id="<a@example.com>", subject="the original"))
    assert first.tickets_created == 1
    assert second.replies == 1
    assert third.replies == 1
    assert second.ticket_ids == third.ticket_ids == first.ticket_ids


def test_a_cc_participant_replying_to_the_requesters_mail_joins(app: App) -> None:
    report = deliver(
        app, make_mail(sender=ALICE, message_id="<alice-1@example.com>", cc="Dave <dave@example.com>")
    )
    number = report.ticket_ids[0]
    reply = deliver(
        app,
        make_mail(sender="Dave <dave@example.com>", body="Same here.", in_reply_to="<alice-1@example.com>"),
    )
    assert reply.replies == 1
    assert reply.ticket_ids == [number]
    assert participants(app, number)["dave@example.com"] is True


def test_a_strangers_auto_reply_is_kept_without_a_word_to_anyone(staffed: App) -> None:
    app = staffed
    number, ack_id, _ = open_ticket(app)
    before = len(outbox(app))
    report = deliver(
        app,
        make_mail(
            sender=MALLORY,
            subject="Out of office",
            body="I am away until Monday.",
            in_reply_to=f"<{ack_id}>",
            headers={"Auto-Submitted": "auto-replied"},
        ),
    )
    assert report.strangers == 1
    assert outbox(app)[before:] == []
    assert "mallory@evil.example" not in participants(app, number)
    assert kinds_on(app, number)[-1] == MessageKind.STRANGER
