"""The sender against relays that misbehave (tests/notify/fake_relay.py): dripping, dropping, refusing.

A relay that drips `250-` lines holds one transaction until `transaction_timeout`, and holds no
other mail meanwhile (`connections`); a relay that cuts the connection gets the mail again (at
least once: never under two Message-IDs); 5yz fails a mail at once, 4yz is retried with backoff.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from helpdesk.app import App
from models.outbox import OutboxMessage, OutboxStatus
from tests.conftest import Clock, deliver
from tests.loopback import wait_until
from tests.mail import make_mail
from tests.notify.fake_relay import FakeRelay, Misbehaviour


def rows(app: App) -> list[OutboxMessage]:
    with app.sessions() as session:
        return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))


def row_to(app: App, recipient: str) -> OutboxMessage:
    return next(row for row in rows(app) if row.recipient == recipient)


@contextmanager
def sending(app: App) -> Iterator[float]:
    """The sender's run loop in a thread (as `helpdesk serve` runs it); yields when it started."""
    stop = threading.Event()
    thread = threading.Thread(target=app.sender.run, args=(stop,), daemon=True)
    started = time.monotonic()
    thread.start()
    try:
        yield started
    finally:
        stop.set()
        app.sender.wake.set()
        thread.join(15)


def test_a_dripping_relay_holds_its_own_mail_until_the_deadline_and_no_other(
    make_app: Callable[..., App],
) -> None:
    with FakeRelay(Misbehaviour(drip_for="slow@example.com")) as relay:
        app = make_app(
            outgoing={"url": relay.url, "retry_for": "1h", "transaction_timeout": "2s", "connections": 2}
        )
        # The acknowledgment to slow@ is first in the queue; its RCPT is answered with 250- forever.
        deliver(app, make_mail(sender="slow@example.com"), make_mail(sender="fast@example.com"))
        with sending(app) as started:
            taken = relay.wait_for(1, timeout=10)
            other_after = taken[0].at - started if taken else None
            cut = wait_until(
                lambda: row_to(app, "slow@example.com").status is OutboxStatus.PENDING, timeout=10
            )
            cut_after = time.monotonic() - started
    assert other_after is not None, "the other mail was never delivered while the relay dripped"
    assert [t.rcpt_tos for t in taken] == [["fast@example.com"]]
    assert other_after < 1.5, f"the other mail waited {other_after:.1f} s"
    assert relay.drips >= 5
    assert cut, "the dripping transaction was never given up"
    assert 2.0 <= cut_after < 5.0, f"given up after {cut_after:.1f} s"
    slow = row_to(app, "slow@example.com")
    assert slow.attempts == 1 and slow.last_error is not None
    assert "transaction_timeout" in slow.last_error
    assert row_to(app, "fast@example.com").status is OutboxStatus.SENT


def test_a_relay_that_cuts_the_connection_mid_data_gets_the_mail_once_on_the_retry(
    make_app: Callable[..., App], clock: Clock
) -> None:
    with FakeRelay(Misbehaviour(drop="mid-data")) as relay:
        app = make_app(outgoing={"url": relay.url, "retry_for": "1h"})
        deliver(app, make_mail(sender="anna@example.com"))
        assert app.sender.deliver_due().retried == 1
        assert relay.received == []
        (row,) = rows(app)
        assert row.status is OutboxStatus.PENDING and row.last_error is not None
        clock.advance(minutes=2)
        assert app.sender.deliver_due().sent == 1
    (taken,) = relay.received
    assert taken.message_id == f"<{row.message_id}>"
    assert rows(app)[0].status is OutboxStatus.SENT


def test_a_relay_that_takes_a_mail_and_loses_the_answer_sees_it_again_with_the_same_message_id(
    make_app: Callable[..., App], clock: Clock
) -> None:
    # At least once: the relay queued the mail and the connection died before its 250. The
    # retry delivers it again; the requester's mail client sees one Message-ID twice, never two.
    with FakeRelay(Misbehaviour(drop="after-data")) as relay:
        app = make_app(outgoing={"url": relay.url, "retry_for": "1h"})
        deliver(app, make_mail(sender="anna@example.com"))
        assert app.sender.deliver_due().retried == 1
        clock.advance(minutes=2)
        assert app.sender.deliver_due().sent == 1
    (row,) = rows(app)
    assert len(relay.received) == 2
    assert {t.message_id for t in relay.received} == {f"<{row.message_id}>"}
    assert row.status is OutboxStatus.SENT and row.attempts == 2


def test_a_refusing_relay_fails_5xx_at_once_and_retries_4xx_with_growing_waits(
    make_app: Callable[..., App], clock: Clock
) -> None:
    refusals = {
        "gone@example.com": ["550 5.1.1 <gone@example.com>: no such user"],
        "busy@example.com": ["451 4.3.0 try again later"] * 3,
    }
    with FakeRelay(Misbehaviour(rcpt_replies=refusals)) as relay:
        app = make_app(outgoing={"url": relay.url, "retry_for": "1d"})
        deliver(app, make_mail(sender="gone@example.com"), make_mail(sender="busy@example.com"))
        report = app.sender.deliver_due()
        assert (report.failed, report.retried) == (1, 1)
        gone = row_to(app, "gone@example.com")
        assert gone.status is OutboxStatus.FAILED and gone.attempts == 1
        assert gone.last_error is not None and "550 5.1.1" in gone.last_error
        waits = []
        for _ in range(3):
            busy = row_to(app, "busy@example.com")
            assert busy.status is OutboxStatus.PENDING and "451" in (busy.last_error or "")
            waits.append((busy.next_attempt_at - clock.now).total_seconds())
            clock.now = busy.next_attempt_at
            app.sender.deliver_due()
    assert waits[1] > waits[0] * 1.3 and waits[2] > waits[1] * 1.3, waits  # backoff_initial doubling
    assert row_to(app, "busy@example.com").status is OutboxStatus.SENT
    assert [t.rcpt_tos for t in relay.received] == [["busy@example.com"]]


@pytest.mark.parametrize("tls", ["none"])
def test_connections_setting_and_deadline_are_read_from_outgoing(
    make_app: Callable[..., App], tls: str
) -> None:
    app = make_app(
        outgoing={"url": f"smtp://relay.test:25?tls={tls}", "transaction_timeout": "90s", "connections": 7}
    )
    assert app.settings.outgoing.connections == 7
    assert app.settings.outgoing.smtp is not None
    assert app.settings.outgoing.smtp.transaction_timeout == 90.0
