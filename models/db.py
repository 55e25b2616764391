"""The engine and session factory, and schema migration (Alembic) for SQLite and PostgreSQL.

SQLite is the embedded default: WAL so readers never block the writer, a busy timeout so
threads wait for each other instead of failing, and `BEGIN IMMEDIATE` so a transaction takes
the write lock up front (a deferred transaction that upgrades later can deadlock and fail).

Faults of the file are survived without a restart. A connection SQLite opens while its file
cannot be written (read-only file or file system) is read-only for good, even after the file is
writable again; kept in the pool, it answered every later write with "attempt to write a
readonly database", and the SMTP listener 451 until the daemon was restarted. So an error that
says the file or the disk is at fault (read-only, I/O error, disk full, cannot open, corrupt)
discards the connection and recycles the pool, and a connection opened while the file could not
be written serves one checkout only: the next transaction opens fresh connections, which work as
soon as the fault is gone. PostgreSQL connections are checked before each use
(`pool_pre_ping`), which is how the pool gets over a server that was stopped and started.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from models.config import DatabaseConfig as DatabaseConfig
from models.errors import DatabaseConfigError, WriterBusy
from models.revision import MIGRATIONS as MIGRATIONS
from models.revision import head_revision as head_revision

if TYPE_CHECKING:
    from alembic.config import Config

log = logging.getLogger("helpdesk.db")

READ_ONLY_OPTION = "helpdesk_read_only"
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# SQLite primary result codes (https://www.sqlite.org/rescode.html) that blame the file or the
# disk, not the statement: a connection that met one is not used again.
SQLITE_FILE_FAULTS = {
    8: "SQLITE_READONLY",
    10: "SQLITE_IOERR",
    11: "SQLITE_CORRUPT",
    13: "SQLITE_FULL",
    14: "SQLITE_CANTOPEN",
}


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def create_db_engine(config: DatabaseConfig) -> Engine:
    url = make_url(config.url)
    kwargs: dict[str, Any] = {"echo": config.echo, "future": True}
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            create_private_file(Path(url.database))
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": config.sqlite_busy_timeout_ms / 1000}
        engine = create_engine(url, **kwargs)
        _configure_sqlite(engine, config)
        return engine
    kwargs["pool_size"] = config.pool_size
    kwargs["pool_pre_ping"] = True
    return create_engine(url, **kwargs)


def create_private_file(path: Path) -> None:
    """Create the database file 0600 (and missing directories 0700) before SQLite does.

    SQLite would create it with the process umask; it gives its -wal, -shm and -journal files
    the database file's own mode, so one file made private keeps all of them private.
    """
    missing = [p for p in (path.parent, *path.parent.parents) if not p.exists()]
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(directory, PRIVATE_DIR)  # mkdir's mode passes through the umask
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)


def _configure_sqlite(engine: Engine, config: DatabaseConfig) -> None:
    synchronous = config.sqlite_synchronous.upper()
    if synchronous not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
        raise DatabaseConfigError(
            f"sqlite_synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous!r}"
        )

    path = engine.url.database if engine.url.database not in (None, "", ":memory:") else None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, record: Any) -> None:
        # SQLite opens a file it may not write read-only, silently, and such a connection stays
        # read-only after the file is fixed: note it, so that it serves this checkout only.
        # access(2) asks the kernel, which knows read-only mounts and immutable files (root too).
        record.info["opened_read_only"] = path is not None and not os.access(path, os.W_OK)
        # Let SQLAlchemy drive transactions: pysqlite's own implicit BEGIN is turned off.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(config.sqlite_busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    # SQLite has one writer at a time. Threads of this process queue for it on a lock here
    # instead of in SQLite's busy handler, which sleeps in steps of up to 100 ms and so lets a
    # waiting SMTP session idle long after the writer before it has finished.
    writer = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # Readers (see `read_only`) keep SQLite's deferred BEGIN so they never wait for the writer.
        if connection.get_execution_options().get(READ_ONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
            return
        if not writer.acquire(timeout=config.sqlite_busy_timeout_ms / 1000):
            raise WriterBusy("another writer of this process held the database too long")
        connection.info["holds_writer"] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            _release(connection)
            raise

    def _release(connection: Any) -> None:
        try:
            info = connection.info
        except Exception:  # invalidated: the pool's invalidate event released it
            return
        if info.pop("holds_writer", False):
            writer.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        code = getattr(context.original_exception, "sqlite_errorcode", None)
        if code is not None and code & 0xFF in SQLITE_FILE_FAULTS:
            # Not a broken statement: the file or the disk. Drop this connection and the pool's
            # others (they may have been opened read-only during the fault) instead of reusing them.
            context.is_disconnect = True
            context.invalidate_pool_on_disconnect = True
            log.warning(
                "DATABASE file fault %s: %s; its connections will be opened afresh",
                SQLITE_FILE_FAULTS[code & 0xFF],
                context.original_exception,
            )

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        if record.info.get("opened_read_only"):
            record.invalidate()  # the next checkout opens the file afresh, writable if it is by then

    @event.listens_for(engine, "invalidate")
    def _on_invalidate(_dbapi_connection: Any, record: Any, _exc: Any) -> None:
        # A connection dropped in the middle of a transaction never sees its rollback event, and
        # the pool clears its info when it reconnects: give the writer's turn back here.
        if record.info.pop("holds_writer", False):
            writer.release()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def read_only(engine: Engine) -> Engine:
    """The same engine, for sessions that only read (CLI listings): no write lock on SQLite."""
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision; None for an empty database. A database that cannot be
    reached (a server that is down, refused credentials) raises: it is not an empty one."""
    with read_only(engine).connect() as conn:
        try:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):  # no alembic_version table: an empty database
            return None


def migrate(engine: Engine) -> tuple[str | None, str | None]:
    """Bring the schema to the newest revision; return (before, after). Safe to run twice."""
    from alembic import command

    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    after = current_revision(engine)
    if before != after:
        log.info("MIGRATED schema %s -> %s", before or "empty", after)
    return before, after


def schema_is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
