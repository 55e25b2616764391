"""Shared fixtures: a migrated database per test (SQLite here; PostgreSQL where the suite asks for it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from models.db import DatabaseConfig, create_db_engine, migrate, session_factory

pytest_plugins = ["tests.servers.fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'helpdesk.db'}"


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(DatabaseConfig(url=db_url, sqlite_synchronous="NORMAL"))
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)
