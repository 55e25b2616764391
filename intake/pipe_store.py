"""A piped mail stored with the DBAPI alone: `helpdesk ingest` run by an MTA, one process per mail.

Beside a running daemon, a piped ingest only stores the mail, commits, wakes the daemon and exits;
loading SQLAlchemy and mapping every table cost it more than all the rest together, and the MTA
waits on it. So this store talks to the database with the DBAPI the engine would use (the
standard library's sqlite3, psycopg 3 for PostgreSQL), and writes the row `RawStore` writes
(intake/raw_queue.py): the same values from intake/raw_keys.py, the same deduplication (a
duplicate is not stored again; a reused Message-ID with other content is kept under a
content-qualified key), and on PostgreSQL the same advisory locks on the mail's thread keys,
taken in sorted order before the insert, waiting at most STORE_LOCK_WAIT_SECONDS. It asks for a
live daemon by the rule of models/heartbeat.py `live_daemons` and wakes it as intake/wakeup.py
`announce` does.

It only serves what it reads with certainty: a plain SQLite file that exists, or PostgreSQL
through psycopg. For any other URL, or a database it cannot open, `PipeStore.open` returns None
and the caller takes the full path, which gives the same answer or the same error as before.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from intake.errors import StoreError
from intake.raw_keys import (
    STORE_LOCK_WAIT_SECONDS,
    Incoming,
    StoreResult,
    dedupe_key_for,
    header_message_id,
    lock_words,
    reused_id_key,
    row_values,
    same_content,
    split_message,
    thread_keys_to_lock,
)
from intake.wakeup import CHANNEL, touch, wakeup_file_of
from models.config import DatabaseConfig
from models.dbapi import Database
from models.liveness import HEARTBEAT_TIMEOUT, dead_local_holders

log = logging.getLogger("helpdesk.intake.raw_queue")

JSON_COLUMNS = ("envelope_to",)
DATETIME_COLUMNS = ("received_at", "processed_at")
_SAVEPOINT = "raw_insert"


class PipeStore:
    """One DBAPI connection to the desk's database (models/dbapi.py), for one piped mail."""

    def __init__(self, database: Database) -> None:
        self._db = database
        self.backend = database.backend

    @classmethod
    def open(cls, config: DatabaseConfig) -> PipeStore | None:
        """A connection to the database of `config`; None when this store does not serve it."""
        database = Database.open(config)
        return cls(database) if database is not None else None

    def __enter__(self) -> PipeStore:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def schema_revision(self) -> str | None:
        """The database's Alembic revision; None for an empty database (as models/db.py reads it)."""
        return self._db.revision()

    def store(self, mail: Incoming) -> StoreResult:
        """Store and commit one mail, as `RawStore.store` does. Raises StoreError when it cannot."""
        try:
            self._db.begin_write()
            result = self._store_in(mail)
            self._end(commit=True)
        except self._db.errors as exc:
            self._rollback_quietly()
            raise StoreError(f"cannot store mail: {exc.__class__.__name__}: {exc}") from exc
        return result

    def live_daemons(self, timeout: float = HEARTBEAT_TIMEOUT) -> list[str]:
        """The daemons serving the database now, by models/heartbeat.py `live_daemons`' rule."""
        # The database server's clock on PostgreSQL (models/heartbeat.py `database_now`).
        postgres = self.backend == "postgresql"
        now: datetime = self._query("SELECT now()", ())[0][0] if postgres else datetime.now(UTC)
        since = self._db.datetime(now - timedelta(seconds=timeout))
        fresh = [
            str(r[0])
            for r in self._query(f"SELECT holder FROM daemons WHERE beat_at >= {self._db.mark}", (since,))
        ]
        self._end(commit=False)
        dead = set(dead_local_holders(fresh))
        return [holder for holder in fresh if holder not in dead]

    def announce(self) -> None:
        """Tell a daemon that stored mail waits, as intake/wakeup.py `announce` does."""
        path = wakeup_file_of(self._db.file)
        if path is not None:
            touch(path)
        elif self.backend == "postgresql":
            self._query("SELECT pg_notify(%s, '')", (CHANNEL,))
            self._end(commit=True)

    # The statements.

    def _store_in(self, mail: Incoming) -> StoreResult:
        header_block, _ = split_message(mail.data)
        try:
            message_id = header_message_id(header_block)
        except Exception:  # a header block so broken the stdlib parser gives up: keep the mail anyway
            log.warning("STORE could not read headers of a %d-byte mail from %s", len(mail.data), mail.source)
            message_id = None
        key = dedupe_key_for(message_id, mail.data)
        thread_keys: list[int] = []
        if mail.refused is None and self.backend == "postgresql":
            thread_keys = self._lock_thread_keys(header_block, mail.envelope_to)
        raw_id = self._insert(mail, key, message_id)
        if raw_id is not None and thread_keys:
            self._execute_many(
                f'INSERT INTO raw_thread_keys (raw_id, "key") VALUES ({self._db.mark}, {self._db.mark})',
                [(raw_id, k) for k in thread_keys],
            )
        if raw_id is None:
            existing = self._existing(mail.source_key, key)
            if existing is not None and message_id and not same_content(existing[2], existing[1], mail.data):
                # Same Message-ID, different mail: keep it under a content-qualified key.
                key = reused_id_key(message_id, mail.data)
                raw_id = self._insert(mail, key, message_id)
                if raw_id is not None:
                    log.warning(
                        "STORED raw=%d reusing Message-ID <%s> with other content", raw_id, message_id
                    )
            if raw_id is None:
                dup = self._existing(mail.source_key, key)
                log.info(
                    "DUPLICATE of raw=%s from %s message-id=<%s>", dup and dup[0], mail.source, message_id
                )
                return StoreResult(raw_id=dup[0] if dup else None, duplicate=True)
        log.debug("STORED raw=%d source=%s size=%d", raw_id, mail.source, len(mail.data))
        return StoreResult(raw_id=raw_id, duplicate=False)

    def _insert(self, mail: Incoming, dedupe_key: str, message_id: str | None) -> int | None:
        """Insert in a savepoint; None when a unique key says we already have it."""
        values = {
            name: self._column_value(name, value)
            for name, value in row_values(mail, dedupe_key, message_id, datetime.now(UTC)).items()
        }
        columns = ", ".join(values)
        marks = ", ".join(self._db.mark for _ in values)
        statement = f"INSERT INTO raw_messages ({columns}) VALUES ({marks})"
        cursor = self._db.connection.cursor()
        cursor.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            if self.backend == "sqlite":
                cursor.execute(statement, tuple(values.values()))
                raw_id = cursor.lastrowid
            else:
                cursor.execute(statement + " RETURNING id", tuple(values.values()))
                raw_id = cursor.fetchone()[0]
        except self._db.integrity_error:
            cursor.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            return None
        cursor.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
        return int(raw_id) if raw_id is not None else None

    def _lock_thread_keys(self, header_block: bytes, envelope_to: Sequence[str]) -> list[int]:
        """The mail's thread keys, each locked until the transaction ends (intake/raw_queue.py
        `RawStore._lock_thread_keys` says why), in sorted order so two stores cannot deadlock."""
        keys = thread_keys_to_lock(header_block, envelope_to)
        if keys is None:
            return []
        cursor = self._db.connection.cursor()
        cursor.execute(f"SET LOCAL lock_timeout = {STORE_LOCK_WAIT_SECONDS * 1000}")
        for key in sorted(keys):
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", lock_words(key))
        return keys

    def _existing(self, source_key: str | None, dedupe_key: str) -> tuple[int, str | None, bytes] | None:
        """The stored row (id, source_key, data) with `source_key`, else the one with `dedupe_key`."""
        select = "SELECT id, source_key, data FROM raw_messages WHERE {} = " + self._db.mark + " LIMIT 1"
        if source_key is not None:
            rows = self._query(select.format("source_key"), (source_key,))
            if rows:
                return int(rows[0][0]), rows[0][1], bytes(rows[0][2])
        rows = self._query(select.format("dedupe_key"), (dedupe_key,))
        return (int(rows[0][0]), rows[0][1], bytes(rows[0][2])) if rows else None

    # The DBAPI.

    def _column_value(self, name: str, value: object) -> object:
        """A row value as the column stores it (as SQLAlchemy's column types bind it)."""
        if isinstance(value, enum.Enum):
            return value.value  # psycopg would write an enum's name
        if name in JSON_COLUMNS:
            return json.dumps(value)
        if name in DATETIME_COLUMNS and isinstance(value, datetime):
            return self._db.datetime(value)
        return value

    def _end(self, *, commit: bool) -> None:
        self._db.end(commit=commit)

    def _rollback_quietly(self) -> None:
        try:
            self._end(commit=False)
        except self._db.errors:
            pass  # the connection is closed next: the server ends the transaction

    def _query(self, statement: str, params: Sequence[object]) -> list[Any]:
        return self._db.query(statement, params)

    def _execute_many(self, statement: str, rows: list[tuple[object, ...]]) -> None:
        self._db.connection.cursor().executemany(statement, rows)
