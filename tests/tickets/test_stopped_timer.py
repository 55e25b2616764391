"""A daemon stopped in the middle of the SLA timer's transaction on a ticket (SIGSTOP, a frozen
VM) must not hold that ticket from the other daemons for as long as it is stopped: the worker
that files a reply to it would wait, and with it every mail behind that reply. PostgreSQL ends
the idle transaction within seconds. (SQLite has one writer and one process: nothing to share.)"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from helpdesk.app import App
from models.ticket import Ticket
from tests.conftest import deliver
from tests.mail import make_mail
from tickets import sla_timer
from tickets.sla_timer import SlaReport, SlaTimer

STOPPED_FOR = 15.0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_stopped_sla_timer_holds_a_ticket_for_seconds_only(
    make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sla_timer, "IDLE_IN_TRANSACTION", 2.0)  # the test need not wait 15 s
    app = make_app()
    deliver(app, make_mail(sender="anna@example.com", message_id="<sla@example.com>"))
    stopped = threading.Event()
    original = SlaTimer._check_ticket

    def stops_inside(
        self: SlaTimer, session: Session, ticket: Ticket, now: datetime, report: SlaReport
    ) -> Any:
        original(self, session, ticket, now, report)
        session.execute(update(Ticket).where(Ticket.id == ticket.id).values(updated_at=now))
        stopped.set()
        time.sleep(STOPPED_FOR)  # the ticket's row locked, the connection idle in its transaction

    monkeypatch.setattr(SlaTimer, "_check_ticket", stops_inside)
    timer = threading.Thread(target=app.sla_timer.check, daemon=True)
    timer.start()
    assert stopped.wait(20)
    started = time.monotonic()
    with app.sessions() as session:  # another daemon's worker filing a reply on the ticket
        session.execute(update(Ticket).where(Ticket.id == 1).values(subject="Printer (updated)"))
        session.commit()
    waited = time.monotonic() - started
    assert waited < STOPPED_FOR / 3, f"the ticket was held {waited:.1f} s by a stopped timer"
    timer.join(STOPPED_FOR + 10)
