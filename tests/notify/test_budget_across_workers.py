"""The per-address limit on automatic mail holds when several workers answer one address at once.

Each worker decides inside its own transaction, which the others cannot see before it commits:
counted from the outbox alone, two workers with four acknowledgments each to one address both
passed all four. On PostgreSQL each address has a counter taken in a short transaction of its own.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from notify import budget as budget_module
from notify.budget import Budgets
from notify.config import LimitsConfig

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
STOPPED_FOR = 20.0


@pytest.fixture
def pg_sessions(pg_url: str) -> Iterator[sessionmaker[Session]]:
    engine: Engine = create_db_engine(DatabaseConfig(url=pg_url))
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


@pytest.mark.parametrize("authenticated", [False, True])
def test_two_workers_in_open_transactions_share_one_per_address_limit(
    pg_sessions: sessionmaker[Session], authenticated: bool
) -> None:
    limits = LimitsConfig(authenticated_per_address_per_hour=5)
    budgets = Budgets(limits=limits, per_address=5)
    with pg_sessions() as first, pg_sessions() as second:
        decisions = []
        for session in (first, second, first, second, first, second, first, second):
            decision = budgets.automatic(session, "Anna@Example.com", NOW, authenticated=authenticated)
            decisions.append(decision)
        assert sum(d.allowed for d in decisions) == 5
        assert {d.limit for d in decisions if not d.allowed} == {"address"}
        first.commit()
        second.commit()
    with pg_sessions() as session:
        report = budgets.report(session, NOW)
    assert report.suppressed_address == 3


def test_a_worker_paused_inside_its_budget_transaction_holds_the_others_for_seconds_only(
    pg_sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A daemon stopped (SIGSTOP, a frozen VM) between taking a budget's lock and committing held
    every other daemon's acknowledgments for as long as it was stopped: the budget's short
    transaction had no idle limit. The server now ends it within seconds."""
    budgets = Budgets(limits=LimitsConfig(), per_address=5)
    paused = threading.Event()
    original = budget_module._check_and_count

    def stops_once(*args: Any, **kwargs: Any) -> str | None:
        result = original(*args, **kwargs)
        if threading.current_thread().name == "stopped":
            paused.set()
            time.sleep(STOPPED_FOR)  # the lock is held, the connection idle in its transaction
        return result

    monkeypatch.setattr(budget_module, "_check_and_count", stops_once)

    def stopped_worker() -> None:
        with pg_sessions() as session, contextlib.suppress(DBAPIError):
            budgets.automatic(session, "anna@example.com", NOW, authenticated=False)

    stopped = threading.Thread(target=stopped_worker, name="stopped", daemon=True)
    stopped.start()
    assert paused.wait(10)
    started = time.monotonic()
    with pg_sessions() as session:
        decision = budgets.automatic(session, "bob@example.com", NOW, authenticated=False)
        session.commit()
    waited = time.monotonic() - started
    assert decision.allowed
    assert waited < STOPPED_FOR / 2, f"held for {waited:.1f} s by a stopped worker"
    stopped.join(STOPPED_FOR + 5)
