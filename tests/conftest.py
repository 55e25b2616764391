"""Shared fixtures: a migrated database per test and a configured desk (App) on top of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from helpdesk.app import App, build_app
from helpdesk.settings import Settings, build_settings
from intake.worker import WorkReport
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory

pytest_plugins = ["tests.servers.fixtures"]

REPO_ROOT = Path(__file__).resolve().parent.parent


BACKENDS = ("sqlite", "postgresql")


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that touches the database runs on both: SQLite (embedded) and PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'helpdesk.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked sqlite_only exercise SQLite itself (its file, its locks): no PostgreSQL copy."""
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_pg = callspec is not None and callspec.params.get("db_url") == "postgresql"
        (drop if on_pg and item.get_closest_marker("sqlite_only") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = create_db_engine(DatabaseConfig(url=db_url, sqlite_synchronous="NORMAL"))
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


class Clock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


def desk_settings(tmp_path: Path, db_url: str, **sections: dict[str, Any]) -> Settings:
    table: dict[str, Any] = {
        "mail": {"address": "support@example.test", "secret": "test-secret", "instance": "helpdesk-test"},
        "database": {"url": db_url, "sqlite_synchronous": "NORMAL"},
        "outgoing": {"url": "maildir:sent"},
        "web": {"listen": ""},  # a test that wants the dashboard gives it a free port
    }
    for name, values in sections.items():
        table[name] = {**table.get(name, {}), **values}
    return build_settings(table, tmp_path, None)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def make_app(tmp_path: Path, db_url: str, clock: Clock) -> Iterator[Callable[..., App]]:
    apps: list[App] = []

    def factory(**sections: dict[str, Any]) -> App:
        settings = desk_settings(tmp_path, db_url, **sections)
        engine = create_db_engine(settings.database)
        migrate(engine)
        engine.dispose()
        app = build_app(settings, clock=clock)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.close()


@pytest.fixture
def app(make_app: Callable[..., App]) -> App:
    return make_app()


def deliver(
    app: App, *mails: bytes, source: str = "smtp", envelope_to: list[str] | None = None
) -> WorkReport:
    """Store mails as the SMTP listener would, then run the worker over the queue."""
    for data in mails:
        app.store.store(data, source=source, envelope_to=envelope_to or ["support@example.test"])
    return app.worker.process_available()
