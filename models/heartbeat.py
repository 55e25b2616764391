"""Liveness shared through the database: a heartbeat row per daemon, and the claims of the dead.

Every `helpdesk serve` writes its row (`daemons`: host:pid, host, pid, when it started, its last
beat) every few seconds. A daemon whose beat is older than the timeout is dead or paused, on
whatever host it ran: any other daemon gives back the stored mail and outgoing mail it held
(models/leases.py `release`), within seconds instead of a whole lease, and removes its row. A
paused daemon that wakes up finds its rows taken and leaves them (the worker and the sender check
that they still hold a row before they act on it).
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Integer, String, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from models.base import Base, utcnow
from models.claims import dead_local_holders
from models.leases import OUTBOX, RAW_QUEUE
from models.liveness import HEARTBEAT_EVERY as HEARTBEAT_EVERY
from models.liveness import HEARTBEAT_TIMEOUT as HEARTBEAT_TIMEOUT
from models.mailbox_state import MailboxState

log = logging.getLogger("helpdesk.heartbeat")

# A daemon silent this long is forgotten (its row deleted); until then status lists it as silent.
FORGET_AFTER = timedelta(hours=1)


class DaemonRow(Base):
    """One running `helpdesk serve` and its last sign of life."""

    __tablename__ = "daemons"

    holder: Mapped[str] = mapped_column(String(200), primary_key=True)  # host:pid, as in claimed_by
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    beat_at: Mapped[datetime]


@dataclass(frozen=True)
class Released:
    """What the heartbeat round gave back: the dead holders and their rows."""

    holders: tuple[str, ...] = ()
    raw: int = 0
    outbox: int = 0


def database_now(session: Session) -> datetime:
    """The database server's clock on PostgreSQL (daemons on several hosts compare their beats
    on one clock, whatever their own say); this process's on SQLite, where there is one host."""
    if session.get_bind().dialect.name == "postgresql":
        now = session.scalar(select(func.now()))
        if isinstance(now, datetime):
            return now
    return utcnow()


def beat(session: Session, holder: str, now: datetime, started_at: datetime) -> None:
    """Write (or refresh) this daemon's heartbeat row in `session`'s transaction."""
    host, _, pid = holder.rpartition(":")
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(DaemonRow).values(
        holder=holder,
        host=host or socket.gethostname(),
        pid=int(pid or 0),
        started_at=started_at,
        beat_at=now,
    )
    session.execute(statement.on_conflict_do_update(index_elements=[DaemonRow.holder], set_={"beat_at": now}))


def forget(session: Session, holder: str) -> None:
    """Remove this daemon's row (a graceful stop)."""
    session.execute(delete(DaemonRow).where(DaemonRow.holder == holder))


def release_stale(session: Session, now: datetime, timeout: timedelta, me: str) -> Released:
    """Give back what daemons silent for longer than `timeout` hold.

    Their rows stay (`helpdesk status` lists them as silent) and are looked at every round: a
    row the silent daemon's open transaction still locked is given back once the server ends that
    transaction. A row silent for FORGET_AFTER is deleted. Only daemons with a heartbeat row
    count: a short-lived `helpdesk ingest` has none, and its claims are left to its lease (or to
    a sibling on its host, models/claims.py).
    """
    stale = list(
        session.scalars(
            select(DaemonRow.holder).where(DaemonRow.beat_at < now - timeout, DaemonRow.holder != me)
        )
    )
    if not stale:
        return Released()
    raw = RAW_QUEUE.release(session, stale)
    outbox = OUTBOX.release(session, stale)
    session.execute(delete(DaemonRow).where(DaemonRow.beat_at < now - FORGET_AFTER, DaemonRow.holder != me))
    return Released(tuple(stale), raw, outbox)


def refresh(session: Session, holder: str, now: datetime) -> bool:
    """Move this daemon's beat on; False when its row is gone (others took it for dead)."""
    result = session.execute(update(DaemonRow).where(DaemonRow.holder == holder).values(beat_at=now))
    return bool(getattr(result, "rowcount", 0))


def live_daemons(session: Session, timeout: float = HEARTBEAT_TIMEOUT) -> list[str]:
    """The daemons serving the database now: a beat within `timeout` on the database's clock, and
    on this host a process that still exists (a daemon killed a moment ago has a fresh row)."""
    now = database_now(session)
    fresh = list(
        session.scalars(select(DaemonRow.holder).where(DaemonRow.beat_at >= now - timedelta(seconds=timeout)))
    )
    dead = set(dead_local_holders(fresh))
    return [holder for holder in fresh if holder not in dead]


class Heartbeat:
    """A daemon's heartbeat: its row kept fresh every `every` seconds, and each round the claims of
    daemons silent for `timeout` given back (`on_released` is told, to wake the worker and sender)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        holder: str,
        *,
        every: float = HEARTBEAT_EVERY,
        timeout: float = HEARTBEAT_TIMEOUT,
        clock: Callable[[], datetime] | None = None,
        on_released: Callable[[Released], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self.holder = holder
        self.every = every
        self.timeout = timedelta(seconds=timeout)
        self._clock = clock
        self._on_released = on_released
        self.started_at = clock() if clock is not None else utcnow()

    def once(self) -> Released:
        """One round: beat, then give back what the silent hold."""
        with self._sessions() as session:
            now = self._clock() if self._clock is not None else database_now(session)
            beat(session, self.holder, now, self.started_at)
            session.commit()
            released = release_stale(session, now, self.timeout, self.holder)
            session.commit()
        if released.raw or released.outbox:
            log.warning(
                "RELEASED %d stored mails and %d outgoing mails held by %s (no heartbeat for %.0f s)",
                released.raw,
                released.outbox,
                ", ".join(released.holders),
                self.timeout.total_seconds(),
            )
            if self._on_released is not None:
                self._on_released(released)
        return released

    def run(self, stop: threading.Event) -> None:
        """Beat until `stop`; then remove the row, so a stopped daemon is not listed as silent."""
        while True:
            try:
                self.once()
            except SQLAlchemyError as exc:
                log.warning(
                    "HEARTBEAT failed: %s: %s", exc.__class__.__name__, (str(exc).splitlines() or [""])[0]
                )
            if stop.wait(self.every):
                break
        try:
            with self._sessions() as session:
                forget(session, self.holder)
                session.commit()
        except SQLAlchemyError:
            pass  # the others take our row for a dead daemon's, and find nothing to release


@dataclass(frozen=True)
class DaemonStatus:
    """One daemon sharing the database, as `helpdesk status` lists it."""

    holder: str
    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    silent: bool  # no beat for longer than the timeout: dead or paused, about to be released
    raw_held: int  # stored mails it is working on
    outbox_held: int  # outgoing mails it is delivering
    mailboxes: tuple[str, ...]  # IMAP mailboxes it polls


def daemon_statuses(
    session: Session, now: datetime, timeout: float = HEARTBEAT_TIMEOUT
) -> list[DaemonStatus]:
    """The daemons that share the database, oldest first, with what each holds."""
    rows = session.scalars(select(DaemonRow).order_by(DaemonRow.started_at, DaemonRow.holder)).all()
    if not rows:
        return []
    held: dict[str, dict[str | None, int]] = {}
    for queue in (RAW_QUEUE, OUTBOX):
        model = queue.model
        counts = session.execute(
            select(model.claimed_by, func.count())
            .where(model.status == queue.held, model.claimed_by.is_not(None))
            .group_by(model.claimed_by)
        )
        held[queue.name] = {holder: int(count) for holder, count in counts}
    polled: dict[str, list[str]] = {}
    for name, holder in session.execute(
        select(MailboxState.name, MailboxState.holder).where(MailboxState.holder.is_not(None))
    ):
        polled.setdefault(str(holder), []).append(name)
    return [
        DaemonStatus(
            holder=row.holder,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            beat_at=row.beat_at,
            silent=row.beat_at < now - timedelta(seconds=timeout),
            raw_held=int(held[RAW_QUEUE.name].get(row.holder, 0)),
            outbox_held=int(held[OUTBOX.name].get(row.holder, 0)),
            mailboxes=tuple(sorted(polled.get(row.holder, ()))),
        )
        for row in rows
    ]
