"""A transient database error (deadlock, serialization failure, lost connection) is retried with
backoff and never quarantines the mail it happened to; the mail's own faults still do."""

from __future__ import annotations

import psycopg.errors
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from helpdesk.app import App
from intake.pipeline import STAGES, Context, Services, Stage
from models.outbox import OutboxMessage
from models.raw_message import RawMessage, RawStatus
from tests.conftest import deliver
from tests.mail import make_mail


def failing_first(times: int, error: Exception) -> Stage:
    """A stage that raises `error` on its first `times` runs, as the database would mid-transaction."""
    left = [times]

    def run(ctx: Context, services: Services) -> None:
        ctx.session.execute(select(func.count()).select_from(RawMessage))  # the transaction is open
        if left[0] > 0:
            left[0] -= 1
            raise error

    return Stage("flaky", "raises a database error", run)


def database_error(cls: type[psycopg.errors.Error], message: str) -> OperationalError:
    return OperationalError("UPDATE tickets SET updated_at=...", {}, cls(message))


@pytest.mark.parametrize(
    ("cls", "kind"),
    [
        (psycopg.errors.DeadlockDetected, "deadlock"),
        (psycopg.errors.SerializationFailure, "serialization failure"),
        (psycopg.errors.AdminShutdown, "lost connection"),
    ],
)
def test_a_transient_error_is_retried_and_the_mail_processed_once(
    app: App, cls: type[psycopg.errors.Error], kind: str
) -> None:
    app.pipeline.stages = (failing_first(2, database_error(cls, kind)), *STAGES)
    report = deliver(
        app, make_mail(message_id="<flaky@example.com>"), make_mail(message_id="<calm@example.com>")
    )
    assert (report.processed, report.quarantined, report.tickets_created) == (2, 0, 2)
    assert app.worker.transient[kind] == 2
    with app.sessions() as session:
        statuses = list(session.scalars(select(RawMessage.status)))
        acks = session.scalar(
            select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "ack")
        )
    assert statuses == [RawStatus.PROCESSED, RawStatus.PROCESSED]
    assert acks == 2  # the rolled-back attempts left nothing behind


def test_a_database_that_stays_away_gets_the_mail_handed_back_not_quarantined(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = database_error(psycopg.errors.DeadlockDetected, "deadlock detected")
    app.pipeline.stages = (failing_first(1000, error), *STAGES)
    monkeypatch.setattr("intake.worker.RETRY_MAX", 0.001)
    with pytest.raises(OperationalError):
        deliver(app, make_mail(message_id="<stuck@example.com>"))
    with app.sessions() as session:
        row = session.scalars(select(RawMessage)).one()
    assert (row.status, row.attempts, row.claimed_by) == (RawStatus.RECEIVED, 0, None)
    app.pipeline.stages = STAGES
    assert deliver(app).tickets_created == 1


def test_a_fault_of_the_mail_itself_still_quarantines_it(app: App) -> None:
    app.pipeline.stages = (failing_first(1, ValueError("this mail breaks a stage")), *STAGES)
    report = deliver(app, make_mail(message_id="<broken@example.com>"))
    assert report.quarantined == 1
    assert app.worker.transient.total() == 0
