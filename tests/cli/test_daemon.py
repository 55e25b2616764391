"""The daemon's supervision: claims of dead sibling processes, and the election of one reader per part."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import select

from helpdesk.app import App
from helpdesk.daemon import Daemon
from models.base import utcnow
from models.raw_message import RawMessage, RawStatus
from tests.conftest import deliver
from tests.mail import make_mail


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_claims_of_a_killed_sibling_on_this_host_are_released_without_waiting_out_the_lease(
    make_app: Callable[..., App],
) -> None:
    # Two `helpdesk serve` on one database and host: when one is killed, the other gives its
    # claimed mail back at its next supervision round, not when the five-minute lease runs out.
    app = make_app(intake={"claim_lease_seconds": 3600})
    app.store.store(make_mail(message_id="<held@example.com>"), source="smtp")
    with app.sessions() as session:
        raw = session.scalars(select(RawMessage)).one()
        raw.status = RawStatus.PROCESSING
        raw.claimed_by = f"{socket.gethostname()}:{dead_pid()}"
        raw.claimed_until = utcnow() + timedelta(hours=1)
        session.commit()
    daemon = Daemon(app)
    daemon.supervise_once()
    with app.sessions() as session:
        assert session.scalars(select(RawMessage.status)).one() is RawStatus.RECEIVED
    assert deliver(app).tickets_created == 1
