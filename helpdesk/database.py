"""The desk's database opened for a command that only reads: the schema checked, read-only sessions.

A listing needs an engine and a session, not the daemon's parts: building the whole app for it
loaded the pipeline, the templates and the rules, most of the time `helpdesk tickets list` took.
SQLAlchemy itself is loaded by the functions that use it, not by importing this module: the
piped ingest checks the schema with the DBAPI alone and raises the same `NotInitialised`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from helpdesk.settings import Settings, redact_url

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session, sessionmaker


class NotInitialised(RuntimeError):
    """The database schema is missing or older than this version: `helpdesk init` migrates it."""

    @classmethod
    def of(cls, settings: Settings) -> NotInitialised:
        """The refusal for the desk's database, as every command words it."""
        return cls(
            f"the database at {redact_url(settings.database.url)} is not initialised or not up to date; "
            "run `helpdesk init`"
        )


class DatabaseUnreachable(RuntimeError):
    """The database server cannot be reached (down, refusing, wrong credentials): try again later."""

    @classmethod
    def of(cls, settings: Settings, exc: BaseException) -> DatabaseUnreachable:
        reason = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["no reason given"])[0]
        return cls(f"cannot reach the database at {redact_url(settings.database.url)}: {reason[:300]}")


def checked_engine(settings: Settings) -> Engine:
    """An engine on the desk's database, refused with `NotInitialised` when the schema is not
    current and with `DatabaseUnreachable` when the server cannot be reached (which is not the
    same thing: `helpdesk init` cannot help there)."""
    from sqlalchemy.exc import DBAPIError

    from models.db import create_db_engine, schema_is_current

    engine = create_db_engine(settings.database)
    try:
        current = schema_is_current(engine)
    except DBAPIError as exc:
        engine.dispose()
        raise DatabaseUnreachable.of(settings, exc) from exc
    if not current:
        engine.dispose()
        raise NotInitialised.of(settings)
    return engine


@contextmanager
def readers(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Read-only sessions on the desk's database (no write lock on SQLite), for one command."""
    from models.db import read_only, session_factory

    engine = checked_engine(settings)
    try:
        yield session_factory(read_only(engine))
    finally:
        engine.dispose()
