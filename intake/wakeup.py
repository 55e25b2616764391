"""The wake-up between a short-lived `helpdesk ingest` and the daemon serving the same database.

A piped `helpdesk ingest` that finds a live daemon (a fresh heartbeat row, models/heartbeat.py
`live_daemons`) stores the mail, commits, announces it here and exits; the daemon's `Wakeup`
part hears the announcement and sets the worker's wake event, so the mail is processed at once
instead of at the worker's next idle look.

- PostgreSQL: `NOTIFY helpdesk_raw` (sent with `pg_notify` right after the store's commit), heard
  on a connection of the daemon's own that `LISTEN`s; the server delivers it in milliseconds.
- SQLite has no notifications between processes. Ingest touches a file next to the database
  (`<database>.wakeup`) and the daemon looks at its modification time every `POLL_EVERY`: a stat
  is a few microseconds, needs no connection (so no lock on the database and no write to it),
  works across users and restarts with nothing to clean up, and a missed touch costs at most the
  worker's own idle look (1 s). A Unix socket would wake without the poll, but leaves a stale
  socket file behind a killed daemon and a sender that blocks or fails when nobody listens.

Announcing never fails the delivery: the mail is committed before, and the daemon's worker looks
for stored mail every second whatever it is told.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

log = logging.getLogger("helpdesk.wakeup")

# The PostgreSQL channel a stored mail is announced on.
CHANNEL = "helpdesk_raw"
# What announces it (sent after the store's commit: a notification is delivered at commit).
NOTIFY = "SELECT pg_notify(:channel, '')"
# How often the daemon looks at the SQLite wake-up file's modification time.
POLL_EVERY = 0.05
# How long the PostgreSQL listener waits for a notification before looking at `stop` again.
LISTEN_TIMEOUT = 0.5
# After a lost LISTEN connection, the pause before connecting again.
RECONNECT_PAUSE = 2.0
WAKEUP_SUFFIX = ".wakeup"
PRIVATE_FILE = 0o600


def wakeup_file(engine: Engine) -> Path | None:
    """The file next to a SQLite database that ingest touches; None for PostgreSQL or in memory."""
    if engine.dialect.name != "sqlite":
        return None
    return wakeup_file_of(engine.url.database)


def wakeup_file_of(database: str | None) -> Path | None:
    """The wake-up file of the SQLite database file `database`; None for an in-memory database."""
    if not database or database == ":memory:":
        return None
    return Path(database).with_name(Path(database).name + WAKEUP_SUFFIX)


def announce(engine: Engine) -> None:
    """Tell a daemon on `engine`'s database that stored mail waits (after the store's commit)."""
    path = wakeup_file(engine)
    if path is not None:
        touch(path)
        return
    if engine.dialect.name == "postgresql":
        from sqlalchemy import text

        with engine.connect() as connection:
            connection.execute(text(NOTIFY), {"channel": CHANNEL})
            connection.commit()


def touch(path: Path) -> None:
    """Move `path`'s modification time to now, creating it (private, empty) if need be."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE)
    try:
        os.utime(fd)
    finally:
        os.close(fd)


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0


class Wakeup:
    """The daemon's part that hears ingest's announcements and calls `on_wake` for each."""

    def __init__(
        self, engine: Engine, on_wake: Callable[[], None], *, poll_every: float = POLL_EVERY
    ) -> None:
        self._engine = engine
        self._on_wake = on_wake
        self._poll_every = poll_every

    def run(self, stop: threading.Event) -> None:
        """Listen until `stop`: LISTEN on PostgreSQL, the wake-up file's mtime on SQLite."""
        path = wakeup_file(self._engine)
        if path is not None:
            self._watch(path, stop)
        elif self._engine.dialect.name == "postgresql":
            while not stop.is_set():
                try:
                    self._listen(stop)
                except Exception as exc:  # the server went away: connect again, mail waits stored
                    log.warning("WAKEUP cannot listen: %s: %s", exc.__class__.__name__, _first_line(exc))
                    stop.wait(RECONNECT_PAUSE)
        else:
            stop.wait()

    def _watch(self, path: Path, stop: threading.Event) -> None:
        seen = _mtime(path)
        while not stop.wait(self._poll_every):
            now = _mtime(path)
            if now != seen:
                seen = now
                self._on_wake()

    def _listen(self, stop: threading.Event) -> None:
        # A connection of its own, not the pool's: it stays in LISTEN for the daemon's life.
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        connection: Any = self._engine.dialect.connect(*cargs, **cparams)
        try:
            connection.autocommit = True
            connection.execute(f"LISTEN {CHANNEL}")
            # psycopg hands each notification it reads to its handlers, whatever statement read it.
            connection.add_notify_handler(lambda _notify: self._on_wake())
            log.info("WAKEUP listening on %s", CHANNEL)
            self._on_wake()  # whatever was announced while nobody listened
            while not stop.is_set():
                ready, _, _ = select.select([connection.fileno()], [], [], LISTEN_TIMEOUT)
                if ready:
                    connection.execute("SELECT 1")  # reads what arrived, handing out its notifications
        finally:
            connection.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [""])[0]
