"""A sender that stood still past its heartbeat (paused, starved) and whose outbox row was given to
another daemon neither delivers it again nor records it: the daemon that took the row does."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import select

from helpdesk.app import App
from models.leases import OUTBOX
from models.outbox import OutboxMessage, OutboxStatus
from notify.sender import Sender, SendReport
from notify.transports import Transport, make_transport
from tests.conftest import deliver
from tests.mail import SmtpSink, make_mail


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    with SmtpSink() as server:
        yield server


@pytest.fixture
def smtp_app(make_app: Callable[..., App], sink: SmtpSink) -> App:
    return make_app(outgoing={"url": f"smtp://127.0.0.1:{sink.port}?tls=none", "retry_for": "1h"})


def other_daemon(app: App) -> Sender:
    """The sender of another `helpdesk serve` on the same database."""
    sender = Sender(app.sessions, app.settings.outgoing, identity=app.settings.identity)
    sender._name = "other-host:4242"
    return sender


def given_away(app: App, sender: Sender) -> None:
    """What the heartbeat of the others does to a silent daemon's rows."""
    with app.sessions() as session:
        assert OUTBOX.release(session, [sender._name]) == 1
        session.commit()


def row(app: App) -> OutboxMessage:
    with app.sessions() as session:
        return session.scalars(select(OutboxMessage)).one()


def test_a_claim_given_away_while_the_sender_stood_still_is_not_sent_again(
    smtp_app: App, sink: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    deliver(smtp_app, make_mail(message_id="<ask@example.com>"))
    paused = smtp_app.sender
    claimed = paused.claim()
    assert claimed is not None
    given_away(smtp_app, paused)
    assert other_daemon(smtp_app).deliver_due().sent == 1
    monkeypatch.setattr("notify.sender.RECHECK_AFTER", 0.0)  # it stood still longer than that
    transport = make_transport(smtp_app.settings.outgoing)
    try:
        paused._deliver(transport, claimed, SendReport(), then_claim=False)
    finally:
        transport.close()
    time.sleep(0.3)
    assert len(sink.received) == 1
    after = row(smtp_app)
    assert (after.status, after.attempts) == (OutboxStatus.SENT, 1)


class StandsStillWhileSending:
    """The relay takes the mail, then the process stands still past its heartbeat and another
    daemon takes the row over and delivers it, before this one records anything."""

    def __init__(self, app: App, sender: Sender) -> None:
        self.real: Transport = make_transport(app.settings.outgoing)
        self.app, self.sender = app, sender

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        self.real.send(envelope_from, recipients, data)
        given_away(self.app, self.sender)
        assert other_daemon(self.app).deliver_due().sent == 1

    def close(self) -> None:
        self.real.close()


def test_a_row_taken_over_mid_delivery_is_recorded_once_and_its_retry_is_recognisable(
    smtp_app: App, sink: SmtpSink
) -> None:
    deliver(smtp_app, make_mail(message_id="<ask@example.com>"))
    paused = smtp_app.sender
    claimed = paused.claim()
    assert claimed is not None
    transport = StandsStillWhileSending(smtp_app, paused)
    try:
        paused._deliver(transport, claimed, SendReport(), then_claim=False)
    finally:
        transport.close()
    after = row(smtp_app)
    assert (after.status, after.attempts, after.claimed_by) == (OutboxStatus.SENT, 1, None)
    got = sink.wait_for(2)
    # Delivered at least once over SMTP, as RFC 5321 allows; the second copy carries the same
    # Message-ID, so the receiving side can tell it is the same mail.
    assert len({m.message["Message-ID"] for m in got}) == 1
