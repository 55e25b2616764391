"""A piped `helpdesk ingest` beside a running daemon: it stores, wakes the daemon and exits; the
daemon processes and acknowledges the mail at once. With no live daemon (stopped, or killed and
its heartbeat row left behind) ingest processes the mail itself, as it always did.

Real processes on both databases: `helpdesk serve` and `helpdesk ingest` as children, the mail on
ingest's standard input as an MTA's pipe gives it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from intake.pipe_store import PipeStore
from models.db import DatabaseConfig, session_factory
from models.heartbeat import DaemonRow, database_now, live_daemons
from tests.conftest import REPO_ROOT
from tests.intake.daemon_harness import DaemonDesk, DeskFactory, Served
from tests.loopback import wait_until
from tests.mail import SUPPORT, make_mail

# What the issue promises between ingest's exit and the acknowledgment in the maildir.
ACK_WITHIN = 1.0
# What a hand-off must not load: processing's modules, the heavy part of a piped ingest.
PROCESSING_MODULES = ("intake.pipeline", "intake.worker", "sklearn", "jinja2", "helpdesk.app")


def ingest(desk: DaemonDesk, data: bytes, *options: str) -> tuple[dict[str, Any], float]:
    """Pipe one mail to `helpdesk ingest` as an MTA does; its JSON counts (with the modules it
    imported, under "imported") and when it exited."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "PYTHONPROFILEIMPORTTIME": "1"}
    command = [sys.executable, "-m", "helpdesk.cli", "--config", str(desk.config), "ingest", "--json"]
    done = subprocess.run(
        [*command, *options, "--sender", "walkin@example.com", "--recipient", SUPPORT],
        input=data,
        env=env,
        cwd=desk.root,
        capture_output=True,
        timeout=120,
        check=False,
    )
    exited = time.monotonic()
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    counts: dict[str, Any] = json.loads(done.stdout)
    counts["imported"] = {
        line.rpartition("|")[2].strip() for line in done.stderr.decode().splitlines() if "|" in line
    }
    return counts, exited


def beating(desk: DaemonDesk, served: Served) -> None:
    """Until the daemon's heartbeat row is written (its parts start right after the listener)."""

    def written() -> bool:
        with desk.sessions() as session:
            return session.get(DaemonRow, served.holder) is not None

    assert wait_until(written, 30, 0.05), "the daemon never wrote its heartbeat row"


@pytest.mark.slow
def test_a_piped_mail_is_handed_to_the_daemon_and_acknowledged_within_a_second(
    make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url)
    served = desk.serve()
    served.wait_ready()
    beating(desk, served)
    # The first, the ones after it, and one piped with --no-process (as deploy/mta.md runs it).
    for number, options in enumerate([(), (), ("--no-process",)]):
        counts, exited = ingest(desk, make_mail(message_id=f"<handed-{number}@example.com>"), *options)
        assert counts["stored"] == 1
        assert counts["handed_to_daemon"] is True
        assert counts["tickets_created"] == 0  # not processed here
        loaded = {m for m in counts["imported"] if m.split(".")[0] in {"sklearn", "jinja2"}}
        loaded |= counts["imported"] & set(PROCESSING_MODULES)
        assert not loaded, f"the hand-off loaded {sorted(loaded)}"
        assert "intake.pipe_store" in counts["imported"]  # the import log was read
        # Stored with the DBAPI alone (intake/pipe_store.py): no SQLAlchemy, no mapped table.
        heavy = {m for m in counts["imported"] if m.split(".")[0] == "sqlalchemy" or m == "models.base"}
        assert not heavy, f"the hand-off loaded {sorted(heavy)[:5]}"
        assert wait_until(lambda n=number: len(desk.sent_files()) > n, 30, 0.01)  # type: ignore[misc]
        late = time.monotonic() - exited
        assert late < ACK_WITHIN, f"mail {number}: acknowledged {late:.2f} s after ingest exited"
    outcome = desk.wait_settled(tickets=3, acks=3)
    outcome.assert_each_once([f"handed-{n}@example.com" for n in range(3)])
    assert served.stop() == 0


@pytest.mark.slow
def test_with_the_daemon_stopped_ingest_processes_the_mail_itself(
    make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url)
    served = desk.serve()
    served.wait_ready()
    beating(desk, served)
    assert served.stop() == 0
    counts, _ = ingest(desk, make_mail(message_id="<alone@example.com>"))
    assert counts["handed_to_daemon"] is False
    assert counts["tickets_created"] == 1
    assert len(desk.sent_files()) == 1  # acknowledged by ingest itself


@pytest.mark.slow
def test_a_killed_daemons_fresh_heartbeat_is_not_taken_for_a_live_daemon(
    make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url)
    served = desk.serve()
    served.wait_ready()
    beating(desk, served)
    served.kill()  # SIGKILL: its row stays, beaten a moment ago
    with desk.sessions() as session:
        assert session.get(DaemonRow, served.holder) is not None
    counts, _ = ingest(desk, make_mail(message_id="<orphan@example.com>"))
    assert counts["handed_to_daemon"] is False
    assert counts["tickets_created"] == 1


def test_a_daemon_on_another_host_is_live_while_it_beats_and_not_after(
    make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url)
    sessions = session_factory(desk.engine)
    with sessions() as session:
        now = database_now(session)
        for holder, silent in (("elsewhere:41", 1), ("elsewhere:42", 30)):
            session.add(
                DaemonRow(
                    holder=holder,
                    host="elsewhere",
                    pid=int(holder.rpartition(":")[2]),
                    started_at=now - timedelta(minutes=5),
                    beat_at=now - timedelta(seconds=silent),
                )
            )
        session.commit()
        assert session.scalar(select(func.count()).select_from(DaemonRow)) == 2
        assert live_daemons(session) == ["elsewhere:41"]  # one silent 30 s is dead or paused
    store = PipeStore.open(DatabaseConfig(desk.db_url))
    assert store is not None
    with store:  # the piped ingest's look, by the same rule
        assert store.live_daemons() == ["elsewhere:41"]
