"""The per-address limit on automatic mail holds when several workers answer one address at once.

Each worker decides inside its own transaction, which the others cannot see before it commits:
counted from the outbox alone, two workers with four acknowledgments each to one address both
passed all four. On PostgreSQL each address has a counter taken in a short transaction of its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from notify.budget import Budgets
from notify.config import LimitsConfig

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


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
