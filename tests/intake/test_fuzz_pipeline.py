"""Property: any bytes at all are parsed (or refused with ParseError), classified and threaded within a
time bound, and what leaves the parser is safe to store (issue 8). `python -m bench.fuzz_pipeline`
runs the same check for minutes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from sqlalchemy.orm import Session, sessionmaker

from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from tests.mail_strategies import add_known_ticket, mail_bytes, through_the_pipeline

# Seconds one example may take, parsing, classification and threading together. A stage with a
# quadratic worst case needs far more on the ~200 KB lines the strategies make.
TIME_BOUND_MS = 3000


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sessionmaker[Session]]:
    path = tmp_path_factory.mktemp("fuzz") / "helpdesk.db"
    engine = create_db_engine(DatabaseConfig(url=f"sqlite:///{Path(path)}", sqlite_synchronous="OFF"))
    migrate(engine)
    factory = session_factory(engine)
    with factory() as session:
        add_known_ticket(session)
    yield factory
    engine.dispose()


@pytest.mark.timeout(600)
@settings(
    max_examples=1000,
    deadline=TIME_BOUND_MS,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)
@given(data=mail_bytes)
def test_any_mail_is_parsed_classified_and_threaded_in_bounded_time(
    sessions: sessionmaker[Session], data: bytes
) -> None:
    with sessions() as session:
        through_the_pipeline(data, session)
