"""Automatic mail never gets an automatic answer, and no address gets more than the hourly limit."""

from __future__ import annotations

from sqlalchemy import func, select

from helpdesk.app import App
from models.outbox import OutboxMessage
from models.raw_message import RawMessage
from models.ticket import Ticket
from notify.tokens import bounce_token
from tests.conftest import Clock, deliver
from tests.mail import make_mail, parse


def outbox_count(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(OutboxMessage)) or 0


def test_autoresponder_answering_our_ack_gets_no_answer(app: App) -> None:
    first = deliver(app, make_mail(sender="bob@example.com"))
    assert outbox_count(app) == 1
    with app.sessions() as s:
        ack = s.scalars(select(OutboxMessage)).one()
        ack_mail = parse(ack.data)
    assert ack_mail["Auto-Submitted"] == "auto-replied"
    # Bob's out-of-office answers our acknowledgment.
    ooo = make_mail(
        sender="bob@example.com",
        subject=f"Automatic reply: {ack_mail['Subject']}",
        body="I am out of the office until Monday.",
        in_reply_to=ack_mail["Message-ID"],
        headers={"Auto-Submitted": "auto-replied"},
    )
    report = deliver(app, ooo)
    assert report.automatic == 1
    assert report.ticket_ids == first.ticket_ids  # it joined the ticket, as a record
    assert outbox_count(app) == 1  # and nobody answered it


def test_dumb_autoresponder_without_headers_is_stopped_by_the_hourly_limit(app: App, clock: Clock) -> None:
    # A responder that sets no header at all and always writes a new mail: each looks like a human's.
    for i in range(50):
        deliver(app, make_mail(sender="robot@example.com", subject=f"Your message {i}", body=f"Received {i}"))
        clock.advance(seconds=60)
    with app.sessions() as s:
        sent = s.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.recipient == "robot@example.com")
        )
        tickets = s.scalar(select(func.count()).select_from(Ticket))
    assert tickets == 50  # every mail is kept
    assert sent == 5  # but only five automatic answers went back within the hour


def test_limit_applies_per_hour(make_app: object, app: App, clock: Clock) -> None:
    for i in range(6):
        deliver(app, make_mail(sender="carol@example.com", subject=f"question {i}"))
    clock.advance(hours=1, seconds=1)
    deliver(app, make_mail(sender="carol@example.com", subject="question after an hour"))
    with app.sessions() as s:
        sent = s.scalar(select(func.count()).select_from(OutboxMessage))
    assert sent == 6


def test_bulk_mail_opens_a_ticket_without_an_answer(app: App) -> None:
    report = deliver(
        app, make_mail(sender="news@vendor.example", headers={"List-Id": "<news.vendor.example>"})
    )
    assert report.tickets_created == 1
    assert outbox_count(app) == 0
    with app.sessions() as s:
        ticket = s.get(Ticket, report.ticket_ids[0])
        assert ticket is not None
        assert "bulk" in ticket.tags


def test_unthreaded_out_of_office_is_recorded_not_ticketed(app: App) -> None:
    report = deliver(
        app, make_mail(sender="dave@example.com", subject="Out of Office: travelling", body="Back next week.")
    )
    assert report.automatic == 1
    assert report.tickets_created == 0
    with app.sessions() as s:
        raw = s.scalars(select(RawMessage)).one()
        assert raw.outcome == "automatic"
        assert raw.detail is not None
        assert "subject" in raw.detail


def test_our_own_mail_coming_back_is_ignored(app: App) -> None:
    deliver(app, make_mail(sender="erin@example.com"))
    with app.sessions() as s:
        ack = s.scalars(select(OutboxMessage)).one()
    report = deliver(app, ack.data)  # e.g. a forwarding rule sent our ack back to support@
    assert report.automatic == 1
    assert outbox_count(app) == 1


def test_bounce_of_our_ack_attaches_to_the_ticket(app: App) -> None:
    first = deliver(app, make_mail(sender="gone@example.com"))
    with app.sessions() as s:
        ack = s.scalars(select(OutboxMessage)).one()
        verp = app.settings.identity.plus_address(
            bounce_token("test-secret", ack.id)
        )  # as the sender sends it
    dsn = (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        b"To: " + verp.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn1@mx.example.com>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        b"Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <" + ack.message_id.encode() + b">\r\nSubject: x\r\n"
        b"--B--\r\n"
    )
    report = deliver(app, dsn, envelope_to=[verp])
    assert report.bounces == 1
    assert report.ticket_ids == first.ticket_ids
    with app.sessions() as s:
        row = s.get(OutboxMessage, ack.id)
        assert row is not None
        assert row.status.value == "bounced"
        ticket = s.get(Ticket, first.ticket_ids[0])
        assert ticket is not None
        failed = [e for e in ticket.events if e.kind == "delivery_failed"]
        assert failed
        assert "5.1.1" in failed[0].reason
    assert outbox_count(app) == 1


def delivery_report(to: str, original_message_id: str, recipient: str) -> bytes:
    """A DSN (RFC 3464) as an MTA writes it, naming the mail it reports on."""
    return (
        b"From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        b"To: " + to.encode() + b"\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"Message-ID: <dsn-" + recipient.encode() + b">\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nThe mail could not be delivered.\r\n"
        b"--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.example.com\r\n\r\n"
        b"Final-Recipient: rfc822; " + recipient.encode() + b"\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
        b"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        b"Message-ID: <" + original_message_id.encode() + b">\r\nSubject: x\r\n"
        b"--B--\r\n"
    )


def test_a_report_to_the_plain_address_naming_our_mail_is_kept_but_changes_no_mail(app: App) -> None:
    # Anyone who saw an acknowledgment's Message-ID can write a "bounce" for it; only a report
    # to that mail's signed return address (VERP) may mark it bounced.
    first = deliver(app, make_mail(sender="victim@example.com"))
    assert app.sender.deliver_due().sent == 1
    with app.sessions() as s:
        ack = s.scalars(select(OutboxMessage)).one()
    forged = delivery_report("support@example.test", ack.message_id, "victim@example.com")
    report = deliver(app, forged, envelope_to=["support@example.test"])
    assert report.bounces == 1
    assert report.ticket_ids == first.ticket_ids  # kept on the ticket, as information
    with app.sessions() as s:
        row = s.get(OutboxMessage, ack.id)
        assert row is not None
        assert row.status.value == "sent"
        ticket = s.get(Ticket, first.ticket_ids[0])
        assert ticket is not None
        kinds = [e.kind for e in ticket.events]
        assert "delivery_failed" not in kinds
        (noted,) = [e for e in ticket.events if e.kind == "delivery_report"]
        assert "not sent to a signed return address" in noted.reason
        assert noted.data["names_outbox"] == ack.id and noted.data["outbox_id"] is None
        assert [m.kind for m in ticket.messages].count("bounce") == 1
    assert outbox_count(app) == 1  # nobody was told anything


def test_a_report_to_a_forged_return_address_changes_no_mail(app: App) -> None:
    first = deliver(app, make_mail(sender="victim@example.com"))
    assert app.sender.deliver_due().sent == 1
    with app.sessions() as s:
        ack = s.scalars(select(OutboxMessage)).one()
    genuine = bounce_token("test-secret", ack.id)
    forged_token = genuine[:-2] + ("aa" if not genuine.endswith("aa") else "bb")
    verp = app.settings.identity.plus_address(forged_token)
    deliver(app, delivery_report(verp, ack.message_id, "victim@example.com"), envelope_to=[verp])
    with app.sessions() as s:
        row = s.get(OutboxMessage, ack.id)
        assert row is not None and row.status.value == "sent"
    assert first.ticket_ids
