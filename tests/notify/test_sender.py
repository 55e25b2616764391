"""The sender against a real SMTP server on loopback: delivery, retries for 4xx, failure for 5xx."""

from __future__ import annotations

import mailbox
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.app import App
from models.outbox import OutboxMessage, OutboxStatus
from notify.transports import MaildirTransport
from tests.conftest import Clock, deliver
from tests.mail import SmtpSink, make_mail, parse


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def smtp_app(make_app: Callable[..., App], sink: SmtpSink) -> App:
    return make_app(outgoing={"url": f"smtp://127.0.0.1:{sink.port}?tls=none", "retry_for": "1h"})


def outbox(app: App) -> OutboxMessage:
    with app.sessions() as s:
        return s.scalars(select(OutboxMessage)).one()


def test_ack_is_delivered_over_smtp_into_the_thread(smtp_app: App, sink: SmtpSink) -> None:
    deliver(smtp_app, make_mail(message_id="<ask@example.com>"))
    report = smtp_app.sender.deliver_due()
    assert report.sent == 1
    got = sink.wait_for(1)[0]
    assert got.rcpt_tos == ["alice@example.com"]
    assert got.mail_from.startswith("support+b")  # VERP: a bounce names the outbox row
    assert got.message["In-Reply-To"] == "<ask@example.com>"
    assert outbox(smtp_app).status is OutboxStatus.SENT


def test_4xx_is_retried_with_backoff_then_delivered(smtp_app: App, sink: SmtpSink, clock: Clock) -> None:
    answers = iter(["451 4.7.1 Greylisted, try again later", "421 4.3.2 Busy", "250 OK"])
    sink.handler.reply = lambda: next(answers)
    deliver(smtp_app, make_mail())
    first = smtp_app.sender.deliver_due()
    assert first.retried == 1
    row = outbox(smtp_app)
    assert row.status is OutboxStatus.PENDING
    assert row.attempts == 1
    assert row.last_error is not None
    assert "451" in row.last_error
    assert row.next_attempt_at > clock.now
    assert smtp_app.sender.deliver_due().sent == 0  # not due yet
    clock.advance(minutes=2)
    assert smtp_app.sender.deliver_due().retried == 1
    clock.advance(minutes=5)
    assert smtp_app.sender.deliver_due().sent == 1
    assert len(sink.received) == 1
    assert outbox(smtp_app).attempts == 3


def test_5xx_fails_at_once(smtp_app: App, sink: SmtpSink) -> None:
    sink.handler.reply = lambda: "554 5.7.1 Rejected by policy"
    deliver(smtp_app, make_mail())
    report = smtp_app.sender.deliver_due()
    assert report.failed == 1
    row = outbox(smtp_app)
    assert row.status is OutboxStatus.FAILED
    assert row.last_error is not None
    assert "554" in row.last_error


def test_connection_refused_is_retried_until_the_deadline(make_app: Callable[..., App], clock: Clock) -> None:
    from tests.loopback import free_port

    app = make_app(outgoing={"url": f"smtp://127.0.0.1:{free_port()}?tls=none", "retry_for": "10m"})
    deliver(app, make_mail())
    assert app.sender.deliver_due().retried == 1
    for _ in range(5):
        clock.advance(minutes=4)
        app.sender.deliver_due()
    row = outbox(app)
    assert row.status is OutboxStatus.FAILED
    assert row.last_error is not None
    assert "gave up" in row.last_error


def test_crashed_sender_lease_is_taken_over(smtp_app: App, sink: SmtpSink, clock: Clock) -> None:
    deliver(smtp_app, make_mail())
    claimed = smtp_app.sender.claim()  # a sender claims the row and dies
    assert claimed is not None
    assert smtp_app.sender.deliver_due().sent == 0  # still leased
    clock.advance(minutes=6)
    # The lease outlasts the longest transaction (transaction_timeout, 10 minutes) and a margin.
    assert smtp_app.sender.deliver_due().sent == 0
    clock.advance(minutes=6)
    assert smtp_app.sender.deliver_due().sent == 1


def test_maildir_delivery_again_after_a_crash_leaves_one_file(tmp_path: Path) -> None:
    # The process can die after the file is written and before the row is recorded as sent;
    # the row is then sent again, and must not become a second acknowledgment.
    transport = MaildirTransport(tmp_path / "sent")
    data = make_mail(message_id="<once@example.com>")
    transport.send("support@example.test", ["alice@example.com"], data)
    transport.send("support@example.test", ["alice@example.com"], data)
    (delivered,) = (tmp_path / "sent" / "new").iterdir()
    assert parse(delivered.read_bytes())["Message-ID"] == "<once@example.com>"
    assert not list((tmp_path / "sent" / "tmp").iterdir())
    # Also once a reader has moved it to cur/ and marked it seen.
    delivered.rename(tmp_path / "sent" / "cur" / f"{delivered.name}:2,S")
    transport.send("support@example.test", ["alice@example.com"], data)
    assert not list((tmp_path / "sent" / "new").iterdir())
    transport.send("support@example.test", ["alice@example.com"], make_mail())
    assert len(list((tmp_path / "sent" / "new").iterdir())) == 1
    assert len(mailbox.Maildir(str(tmp_path / "sent"), create=False)) == 2
