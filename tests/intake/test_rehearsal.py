"""The rehearsal at start runs a made-up request through the pipeline and leaves nothing behind:
no row in any table, no count against a budget, no ticket number used up (PostgreSQL's
sequences are not rolled back), and the first real mail after it is ticket #1."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from helpdesk.app import App
from helpdesk.daemon import Daemon
from intake.rehearsal import rehearse
from models import tables
from models.ticket import Ticket
from tests.conftest import Clock, deliver
from tests.mail import make_mail

COUNTED = (
    tables.raw_messages,
    tables.raw_thread_keys,
    tables.tickets,
    tables.messages,
    tables.participants,
    tables.ticket_events,
    tables.outbox,
    tables.mail_budget,
    tables.message_refs,
)


def counts(session: Session) -> dict[str, int]:
    return {t.name: int(session.scalar(select(func.count()).select_from(t)) or 0) for t in COUNTED}


def test_a_rehearsal_leaves_nothing_and_the_first_ticket_is_number_one(
    make_app: Callable[..., App], clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    with app.sessions() as s:
        before = counts(s)
    caplog.set_level(logging.INFO, logger="helpdesk")
    for _ in range(2):  # a second start rehearses again, still leaving nothing
        assert rehearse(app.worker, app.store, app.settings.identity.address, clock())
    assert sum("REHEARSED a request at start" in r.getMessage() for r in caplog.records) == 2
    # The rehearsal's own OPENED/ACK lines are not in the log: they did not happen.
    assert not [r for r in caplog.records if "rehearsal@helpdesk.invalid" in r.getMessage()]
    with app.sessions() as s:
        assert counts(s) == before
    report = deliver(app, make_mail(sender="first@example.com", message_id="<first@example.com>"))
    assert report.processed == 1
    with app.sessions() as s:
        assert list(s.scalars(select(Ticket.id))) == [1]
        after = counts(s)
    assert after["outbox"] == 1 and after["tickets"] == 1


def test_the_daemon_rehearses_when_it_warms_up(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app()
    caplog.set_level(logging.INFO, logger="helpdesk")
    Daemon(app).warm_up()
    assert any("REHEARSED a request at start" in r.getMessage() for r in caplog.records)
    with app.sessions() as s:
        assert all(n == 0 for n in counts(s).values())
