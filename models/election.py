"""Run a part in exactly one process at a time, elected with PostgreSQL advisory locks.

Past one machine, several `helpdesk serve` processes share one database. SMTP listeners,
workers and senders can all run everywhere (rows are claimed with SKIP LOCKED), but an IMAP
mailbox must be read by one poller and the SLA timer must tick in one place. Each such part
takes a session-level advisory lock named after it (`pg_try_advisory_lock`) on a connection it
keeps open: if the process dies, PostgreSQL drops the connection and the lock, and another
process takes over at its next try. A process that is paused (SIGSTOP, a frozen VM) keeps its
connection open but silent: the server closes it after `IDLE_SESSION_SECONDS` without a
heartbeat (PostgreSQL 14 and later), so the lock passes on within seconds then too, and the
paused process stops the part when it wakes up and finds its connection gone. On SQLite there is
one process, so the part simply runs.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("helpdesk.election")

RETRY_SECONDS = 5.0
HEARTBEAT_SECONDS = 5.0
# The lock's connection idle this long (its process paused) is closed by the server; several
# heartbeats, so a busy process is never taken for a paused one.
IDLE_SESSION_SECONDS = 20.0


def lock_key(name: str) -> int:
    """A stable signed 64-bit key for a part's name."""
    return int.from_bytes(hashlib.sha256(f"helpdesk:{name}".encode()).digest()[:8], "big", signed=True)


def elected(
    engine: Engine,
    name: str,
    run: Callable[[threading.Event], None],
    *,
    retry: float = RETRY_SECONDS,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> Callable[[threading.Event], None]:
    """`run` wrapped so that, on PostgreSQL, only the process holding the lock for `name` runs it."""
    if engine.dialect.name != "postgresql":
        return run
    key = lock_key(name)

    def part(stop: threading.Event) -> None:
        announced_waiting = False
        while not stop.is_set():
            try:
                with engine.connect() as conn:
                    _close_when_silent(conn, max(IDLE_SESSION_SECONDS, 3 * heartbeat))
                    got = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
                    conn.commit()
                    if got:
                        announced_waiting = False
                        log.info("ELECTION %s won: running it here", name)
                        _run_while_held(conn, name, run, stop, heartbeat)
                        _unlock(conn, key)
                    if not conn.invalidated:
                        _close_when_silent(conn, 0)  # back in the pool, it may idle as long as it likes
                        conn.commit()
            except SQLAlchemyError as exc:
                log.warning("ELECTION %s: database trouble (%s); retrying", name, exc.__class__.__name__)
                stop.wait(retry)
                continue
            if not got:
                # Waiting outside the `with`: a process standing by for several parts must not
                # keep a pooled connection per part just to sleep.
                if not announced_waiting:
                    log.info("ELECTION %s held by another process; standing by", name)
                    announced_waiting = True
                stop.wait(retry)

    return part


def _close_when_silent(conn: Connection, seconds: float) -> None:
    """Have the server close this connection (and drop its locks) after `seconds` of silence."""
    if (conn.dialect.server_version_info or (0,)) >= (14,):
        conn.execute(text(f"SET idle_session_timeout = {int(seconds * 1000)}"))  # 0: never


def _unlock(conn: Connection, key: int) -> None:
    """Give the lock back; if that fails, close the connection, which drops the lock with it.

    The connection goes back to the pool afterwards, and a session-level lock left on it would
    stay held by whatever borrows it next: no process, this one included, could win again.
    """
    try:
        conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        conn.commit()
    except SQLAlchemyError:
        conn.invalidate()


def _run_while_held(
    conn: Connection,
    name: str,
    run: Callable[[threading.Event], None],
    stop: threading.Event,
    heartbeat: float,
) -> None:
    """Run the part in a thread while our lock connection stays alive; stop it when it does not."""
    inner = threading.Event()
    worker = threading.Thread(target=run, args=(inner,), name=f"elected-{name}", daemon=True)
    worker.start()
    try:
        while worker.is_alive() and not stop.wait(heartbeat):
            try:
                conn.execute(text("SELECT 1"))
                conn.commit()
            except SQLAlchemyError:
                log.warning(
                    "ELECTION %s lost its database connection (and so its lock); stopping it here", name
                )
                break
    finally:
        inner.set()
        worker.join(30)
