"""A maildir sender claims and records its rows in batches (one transaction per batch, not per mail);
a row of a batch taken over meanwhile by another sender is left to it, the others are recorded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import event, select, update

from helpdesk.app import App
from models.leases import OUTBOX
from models.outbox import OutboxMessage, OutboxStatus
from notify.sender import MAILDIR_BATCH, Sender, SendReport
from notify.transports import make_transport
from tests.conftest import deliver
from tests.mail import make_mail


def statuses(app: App) -> dict[int, tuple[OutboxStatus, int, str | None]]:
    with app.sessions() as session:
        return {
            row.id: (row.status, row.attempts, row.claimed_by)
            for row in session.scalars(select(OutboxMessage).order_by(OutboxMessage.id))
        }


def test_a_maildir_sender_records_its_rows_a_batch_per_transaction(make_app: Callable[..., App]) -> None:
    app = make_app()
    # Each from a domain of its own: the hourly budget per domain holds 30 acknowledgments.
    mails = [make_mail(sender=f"user@d{n}.example.com", subject=f"question {n}") for n in range(60)]
    assert deliver(app, *mails).tickets_created == 60
    assert app.sender.batch == MAILDIR_BATCH
    commits: list[Any] = []

    def committed(connection: Any) -> None:
        commits.append(connection)

    event.listen(app.engine, "commit", committed)
    report = app.sender.deliver_due(limit=1000)
    event.remove(app.engine, "commit", committed)
    assert report.sent == 60
    assert len(commits) == 3  # a claim, then each batch of at most 50 recorded with the next claim
    assert {status for status, _, _ in statuses(app).values()} == {OutboxStatus.SENT}
    maildir = app.settings.outgoing.maildir
    assert maildir is not None and len(list((maildir / "new").iterdir())) == 60


def test_a_row_of_a_batch_taken_over_meanwhile_is_left_to_its_new_sender(
    make_app: Callable[..., App],
) -> None:
    app = make_app()
    deliver(app, *(make_mail(sender=f"user{n}@example.com") for n in range(3)))
    paused = app.sender
    batch = paused.claim_many(3)
    assert len(batch) == 3
    taken = batch[1].id
    other = Sender(app.sessions, app.settings.outgoing, identity=app.settings.identity)
    other._name = "other-host:4242"
    with app.sessions() as session:  # its lease ran out and the other sender claimed it
        session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == taken)
            .values(status=OutboxStatus.PENDING, claimed_by=None, claimed_until=None)
        )
        assert OUTBOX.claim(
            session, holder=other._name, now=app.worker._clock(), lease=paused._lease, limit=1
        ) == [taken]
        session.commit()
    report = SendReport()
    transport = make_transport(app.settings.outgoing)
    try:
        assert paused._deliver_many(transport, batch, report, then_claim=0) == []
    finally:
        transport.close()
    assert report.sent == 2
    after = statuses(app)
    assert after[taken] == (OutboxStatus.SENDING, 0, "other-host:4242")  # the other records it
    assert [after[c.id][:2] for c in batch if c.id != taken] == [(OutboxStatus.SENT, 1)] * 2
