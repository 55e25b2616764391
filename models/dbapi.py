"""The desk's database through the DBAPI alone (sqlite3, psycopg 3), for the paths that must start fast.

A piped mail and the read commands (`tickets list`, `tickets show`, `quarantine list`) spend most
of their life loading SQLAlchemy and mapping every table when they run one or two statements.
This module opens the connection the engine would open (models/db.py: WAL, the synchronous
level, the busy timeout, foreign keys on SQLite; psycopg with the URL's parts on PostgreSQL) and
returns rows with the Python values the mapped columns give (`COLUMN_KINDS`: aware UTC datetimes,
JSON decoded, booleans, the enums), so the same code renders them.

It serves only what it reads with certainty: an existing SQLite file by a plain URL, or
PostgreSQL through psycopg. `Database.open` returns None for anything else, or for a server it
cannot reach, and the caller takes the SQLAlchemy path, which answers or fails as it always did.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace, TracebackType
from typing import Any

from models.config import DatabaseConfig
from models.kinds import MailboxConnState, OutboxStatus, Priority, RawStatus, TicketStatus
from models.urls import parse_url

SQLITE_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")
# How SQLAlchemy writes a datetime into SQLite (its DATETIME storage format, naive UTC here as
# models/base.py `UTCDateTime` gives it): the strings compare in time order.
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"

# The columns whose stored value is not the Python value, by table, as the mapped classes type
# them (tests/models/test_dbapi.py holds this against the metadata).
DATETIME, JSON, BOOL = "datetime", "json", "bool"
ENUMS: Mapping[str, Callable[[Any], Any]] = {
    "TicketStatus": TicketStatus,
    "Priority": Priority,
    "RawStatus": RawStatus,
    "OutboxStatus": OutboxStatus,
    "MailboxConnState": MailboxConnState,
}
COLUMN_KINDS: Mapping[str, Mapping[str, str]] = {
    "tickets": {
        "status": "TicketStatus",
        "priority": "Priority",
        "assigned_at": DATETIME,
        "tags": JSON,
        "routing": JSON,
        "created_at": DATETIME,
        "updated_at": DATETIME,
        "first_response_at": DATETIME,
        "resolved_at": DATETIME,
        "closed_at": DATETIME,
        "sla_done": JSON,
    },
    "messages": {
        "references": JSON,
        "to_addrs": JSON,
        "cc_addrs": JSON,
        "internal": BOOL,
        "sent_at": DATETIME,
        "created_at": DATETIME,
    },
    "attachments": {},
    "participants": {"notify": BOOL},
    "ticket_events": {"at": DATETIME, "data": JSON},
    "satisfaction": {"at": DATETIME},
    "outbox": {},  # only the delivery's columns are read (`DELIVERY_KINDS`)
    "raw_messages": {
        "received_at": DATETIME,
        "envelope_to": JSON,
        "backfill": BOOL,
        "sender_auth": JSON,
        "status": "RawStatus",
        "claimed_until": DATETIME,
        "processed_at": DATETIME,
    },
    "daemons": {"started_at": DATETIME, "beat_at": DATETIME},
    "mailbox_states": {
        "added_at": DATETIME,
        "state": "MailboxConnState",
        "state_since": DATETIME,
        "idle_supported": BOOL,
        "last_error_at": DATETIME,
        "next_attempt_at": DATETIME,
        "last_connected_at": DATETIME,
        "last_success_at": DATETIME,
        "updated_at": DATETIME,
    },
}
DELIVERY_KINDS: Mapping[str, str] = {"status": "OutboxStatus", "sent_at": DATETIME}


class Database:
    """One DBAPI connection to the desk's database."""

    def __init__(self, connection: Any, backend: str, database_file: str | None) -> None:
        self.connection = connection
        self.backend = backend
        self.file = database_file
        self.mark = "?" if backend == "sqlite" else "%s"  # the driver's parameter marker
        if backend == "sqlite":
            self.integrity_error: type[Exception] = sqlite3.IntegrityError
            self.errors: tuple[type[Exception], ...] = (sqlite3.Error,)
        else:
            import psycopg

            self.integrity_error = psycopg.IntegrityError
            self.errors = (psycopg.Error,)

    @classmethod
    def open(cls, config: DatabaseConfig) -> Database | None:
        """A connection to the database of `config`; None when this module does not serve it."""
        parts = parse_url(config.url)
        if parts is None:
            return None
        if parts.backend == "sqlite" and parts.driver in ("", "pysqlite") and not parts.query:
            path = parts.sqlite_file
            synchronous = config.sqlite_synchronous.upper()
            if path is None or not os.path.isfile(path) or synchronous not in SQLITE_SYNCHRONOUS:
                return None
            try:
                opened = _sqlite(path, synchronous, config.sqlite_busy_timeout_ms)
            except sqlite3.Error:
                return None  # the SQLAlchemy path tells why
            return cls(opened, "sqlite", path)
        if parts.backend == "postgresql" and parts.driver == "psycopg":
            keys = [key for key, _ in parts.query]
            if len(keys) != len(set(keys)):  # several hosts: SQLAlchemy's reading
                return None
            import psycopg

            options: dict[str, Any] = {
                name: value
                for name, value in (
                    ("user", parts.username),
                    ("password", parts.password),
                    ("host", parts.host),
                    ("port", parts.port),
                    ("dbname", parts.database),
                )
                if value
            }
            options.update(parts.query)
            try:
                connection = psycopg.connect(**options)
            except psycopg.Error:
                return None  # the SQLAlchemy path tells why
            return cls(connection, "postgresql", None)
        return None

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.connection.close()

    def revision(self) -> str | None:
        """The schema's Alembic revision; None for an empty database (as models/db.py reads it)."""
        try:
            rows = self.query("SELECT version_num FROM alembic_version")
        except self.errors:
            self.end(commit=False)
            return None
        self.end(commit=False)
        return str(rows[0][0]) if rows else None

    def query(self, statement: str, params: Sequence[object] = ()) -> list[Any]:
        """The rows of `statement` as the driver gives them (`?` or `%s`: see `mark`)."""
        cursor = self.connection.cursor()
        cursor.execute(statement, tuple(params))
        return list(cursor.fetchall())

    def records(
        self,
        table: str,
        statement: str,
        params: Sequence[object] = (),
        kinds: Mapping[str, str] | None = None,
    ) -> list[Any]:
        """The rows of `statement` on `table`, each an object with an attribute per column and the
        values the mapped class would hold."""
        cursor = self.connection.cursor()
        cursor.execute(statement, tuple(params))
        names = [column[0] for column in cursor.description]
        convert = COLUMN_KINDS[table] if kinds is None else kinds
        return [
            SimpleNamespace(**{n: self.value(convert.get(n), v) for n, v in zip(names, row, strict=True)})
            for row in cursor.fetchall()
        ]

    def marks(self, count: int) -> str:
        """`count` parameter markers for an IN list."""
        return ", ".join([self.mark] * count)

    def value(self, kind: str | None, value: Any) -> Any:
        """A stored value as the mapped column hands it back."""
        if value is None or kind is None:
            return value
        if kind == DATETIME:
            if isinstance(value, str):  # SQLite keeps naive UTC text
                return datetime.fromisoformat(value).replace(tzinfo=UTC)
            return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if kind == JSON:
            return json.loads(value) if isinstance(value, str | bytes) else value
        if kind == BOOL:
            return bool(value)
        return ENUMS[kind](value)

    def datetime(self, value: datetime) -> object:
        """An aware datetime as a UTC column takes it (models/base.py `UTCDateTime`)."""
        if self.backend == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None).strftime(SQLITE_DATETIME)
        return value.astimezone(UTC)

    def begin_read(self) -> None:
        """Start a reading transaction: one snapshot for every statement of a command, and on
        SQLite no write lock (a deferred BEGIN, as models/db.py `read_only`)."""
        if self.backend == "sqlite":
            self.connection.execute("BEGIN")

    def begin_write(self) -> None:
        """Start a writing transaction (on SQLite with the write lock up front, as models/db.py does)."""
        if self.backend == "sqlite":
            self.connection.execute("BEGIN IMMEDIATE")

    def end(self, *, commit: bool) -> None:
        if self.backend == "sqlite" and not self.connection.in_transaction:
            return
        if commit:
            self.connection.commit()
        else:
            self.connection.rollback()


def _sqlite(path: str, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection set up as models/db.py sets up the engine's, with transactions begun by hand."""
    connection = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute(f"PRAGMA synchronous={synchronous}")
    connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    connection.execute("PRAGMA foreign_keys=ON")
    return connection
