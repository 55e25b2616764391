"""The daemon's supervision: claims of dead sibling processes, and the election of one reader per part."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import Engine, select, text

from helpdesk.app import App
from helpdesk.daemon import Daemon
from models.base import utcnow
from models.db import DatabaseConfig, create_db_engine
from models.election import elected
from models.raw_message import RawMessage, RawStatus
from tests.conftest import deliver
from tests.loopback import wait_until
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
    app = make_app(intake={"claim_lease": "1h"})
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


@contextmanager
def running_part(part: Callable[[threading.Event], None]) -> Iterator[threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=part, args=(stop,), daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(30)
        assert not thread.is_alive()


def recorder(runs: list[str], who: str) -> Callable[[threading.Event], None]:
    """A part that notes who runs it, and runs until told to stop."""

    def run(stop: threading.Event) -> None:
        runs.append(who)
        stop.wait()
        runs.append(f"{who} stopped")

    return run


def test_one_process_runs_an_elected_part_and_the_other_takes_over_when_it_loses_its_lock(
    pg_url: str,
) -> None:
    engines: list[Engine] = [create_db_engine(DatabaseConfig(url=pg_url)) for _ in range(2)]
    runs: list[str] = []
    first = elected(engines[0], "imap:support", recorder(runs, "first"), retry=0.2, heartbeat=0.2)
    second = elected(engines[1], "imap:support", recorder(runs, "second"), retry=0.2, heartbeat=0.2)
    try:
        with running_part(first):
            assert wait_until(lambda: runs == ["first"], 10)
            with running_part(second):
                wait_until(lambda: False, 1.0)  # the second tries a few times meanwhile
                assert runs == ["first"]
                # Standing by costs no connection: a process waiting for many parts keeps its pool.
                assert engines[1].pool.checkedout() == 0  # type: ignore[attr-defined]
                # The first loses its database connection, and with it the lock (as if it died).
                with engines[1].connect() as admin:
                    admin.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_locks"
                            " WHERE locktype = 'advisory' AND granted AND pid <> pg_backend_pid()"
                        )
                    )
                    admin.commit()
                assert wait_until(lambda: {"first stopped", "second"} <= set(runs), 10), runs
                # The first stands by now; its broken lock connection is not left in the pool.
                assert wait_until(lambda: engines[0].pool.checkedout() == 0, 10)  # type: ignore[attr-defined]
                wait_until(lambda: False, 1.0)
                assert runs.count("first") == 1 and runs.count("second") == 1, runs
    finally:
        for engine in engines:
            engine.dispose()
