"""Claims with a lease: how the worker takes stored mail and the sender takes outgoing mail.

Both queues (the raw queue, `raw_messages`, and the outbox) move a row from a waiting status to
a held one, naming the process that holds it (`claimed_by`, host:pid) and until when
(`claimed_until`). Claiming locks the rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any
number of processes share a queue and never take the same row; on SQLite the writer's
`BEGIN IMMEDIATE` serialises claims. A held row whose lease ran out is due again: its holder
died or hung, and another takes it over. `renew` keeps the lease of rows still being worked on;
`release` hands rows back (a dead holder's, see models/claims.py).

Retries wait with exponential backoff and jitter (`backoff_delay`): the sender between
attempts at a mail, the IMAP poller between reconnects, the worker after a transient database
error (`transient_reason`: a deadlock, a serialization failure, a lost connection), which is
retried and never quarantines the mail it happened to.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, delete, exists, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased

from models.liveness import holder_name as holder_name
from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage, RawStatus
from models.thread_keys import ThreadKey

# Each wait is 50-100 % of the doubled one: many clients coming back (pollers reconnecting after
# a server restart) spread out instead of arriving together.
SPREAD_JITTER = (0.5, 1.0)
# Each wait is 80-120 % of the doubled one: spread a little, and still longer than the one before.
STEADY_JITTER = (0.8, 1.2)
# Past this many doublings the wait is the cap anyway; the exponent stays small.
MAX_DOUBLINGS = 30

# SQLSTATEs (PostgreSQL appendix A) of errors that say nothing about the mail: try again.
DEADLOCK_DETECTED = "40P01"
SERIALIZATION_FAILURE = "40001"
LOCK_NOT_AVAILABLE = "55P03"
ADMIN_SHUTDOWN = "57P01"
IDLE_IN_TRANSACTION_TIMEOUT = "25P03"
CANNOT_CONNECT_NOW = "57P03"
CONNECTION_EXCEPTION_CLASS = "08"
_TRANSIENT_STATES = {
    DEADLOCK_DETECTED: "deadlock",
    SERIALIZATION_FAILURE: "serialization failure",
    LOCK_NOT_AVAILABLE: "lock not available",
    ADMIN_SHUTDOWN: "lost connection",
    IDLE_IN_TRANSACTION_TIMEOUT: "lost connection",
    CANNOT_CONNECT_NOW: "lost connection",
}


def backoff_delay(
    failures: int,
    initial: float,
    maximum: float,
    rng: random.Random | None = None,
    *,
    jitter: tuple[float, float] = SPREAD_JITTER,
) -> float:
    """Seconds to wait after the n-th failure in a row: `initial` doubled per failure, capped at
    `maximum`, then scaled by a random factor within `jitter`."""
    base = min(maximum, initial * 2 ** min(max(failures, 1) - 1, MAX_DOUBLINGS))
    return float(base * (rng or random).uniform(*jitter))


def bound_idle_transaction(session: Session | Connection, seconds: float) -> None:
    """On PostgreSQL, have the server end this transaction (of a session, or of a bare
    connection) if it idles longer than `seconds`.

    A process paused (SIGSTOP, a frozen VM) in the middle of a transaction keeps its row locks
    for as long as it is paused, and rows it locked cannot be given back to others (the
    heartbeat's release skips locked rows). Its transaction is ended instead; when the process
    goes on, its next statement fails like a lost connection and is retried.
    """
    dialect = session.dialect if isinstance(session, Connection) else session.get_bind().dialect
    if dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL idle_in_transaction_session_timeout = {int(seconds * 1000)}"))


def transient_reason(exc: BaseException) -> str | None:
    """What transient database trouble `exc` is ("deadlock", "serialization failure", "lost
    connection"), or None when it may be the mail's own fault.

    Only PostgreSQL says which (its SQLSTATE); SQLite's single writer neither deadlocks nor loses
    a connection, and its errors keep quarantining the mail as before.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError):
            if current.connection_invalidated:
                return "lost connection"
            state = getattr(current.orig, "sqlstate", None)
            if isinstance(state, str):
                if state in _TRANSIENT_STATES:
                    return _TRANSIENT_STATES[state]
                if state.startswith(CONNECTION_EXCEPTION_CLASS):
                    return "lost connection"
            elif type(current.orig).__module__.startswith("psycopg") and type(current.orig).__name__ in (
                "OperationalError",
                "InterfaceError",
            ):
                return "lost connection"  # the server went away: no SQLSTATE to read
        current = current.__cause__ or current.__context__
    return None


@dataclass(frozen=True)
class LeasedQueue:
    """A table whose rows are claimed: `waiting` -> `held` (with a lease and a holder) -> done."""

    name: str
    model: Any  # a mapped class with id, status, attempts, claimed_by and claimed_until
    waiting: Any  # the status of a row that waits to be claimed
    held: Any  # the status of a claimed row
    # A waiting row is due when this column (a time) is reached; None: as soon as it waits.
    due_at: InstrumentedAttribute[datetime] | None = None
    # The raw queue on PostgreSQL: a row is due only when no earlier row of its conversation is
    # unfinished (models/thread_keys.py), so related mail is worked in arrival order.
    in_thread_order: bool = False

    def _due(self, now: datetime) -> ColumnElement[bool]:
        model = self.model
        waiting: ColumnElement[bool] = model.status == self.waiting
        if self.due_at is not None:
            waiting = waiting & (self.due_at <= now)
        expired: ColumnElement[bool] = (model.status == self.held) & (model.claimed_until < now)
        return waiting | expired

    def claim(
        self,
        session: Session,
        *,
        holder: str,
        now: datetime,
        lease: timedelta,
        limit: int,
        count_attempt: bool = False,
    ) -> list[int]:
        """Claim up to `limit` due rows (oldest first) in `session`'s transaction; their ids.

        `count_attempt` adds one to each row's `attempts` (the worker counts claims, so a mail
        that kills every worker that takes it is noticed; the sender counts deliveries instead).
        The caller commits.
        """
        model = self.model
        order = (self.due_at, model.id) if self.due_at is not None else (model.id,)
        query = select(model.id).where(self._due(now)).order_by(*order).limit(limit)
        if self.in_thread_order and session.get_bind().dialect.name == "postgresql":
            query = query.where(~_EARLIER_IN_THREAD)
        ids = list(session.scalars(query.with_for_update(skip_locked=True, of=model)))
        if ids:
            values: dict[str, Any] = {"status": self.held, "claimed_by": holder, "claimed_until": now + lease}
            if count_attempt:
                values["attempts"] = model.attempts + 1
            session.execute(update(model).where(model.id.in_(ids)).values(**values))
        return ids

    def renew(self, session: Session, ids: Collection[int], *, holder: str, until: datetime) -> None:
        """Extend the lease of the rows among `ids` that `holder` still holds."""
        model = self.model
        session.execute(
            update(model)
            .where(model.id.in_(ids), model.status == self.held, model.claimed_by == holder)
            .values(claimed_until=until)
        )

    def holders(self, session: Session) -> set[str | None]:
        """Who holds rows of this queue now."""
        model = self.model
        return set(session.scalars(select(model.claimed_by).where(model.status == self.held).distinct()))

    def release(self, session: Session, holders: Collection[str]) -> int:
        """Give the rows that `holders` hold back to the queue, due at once; how many.

        A row locked by a holder's open transaction (a paused process in the middle of finishing
        it) is skipped, never waited for: that transaction decides it when it goes on or dies.
        """
        model = self.model
        held = (
            select(model.id)
            .where(model.status == self.held, model.claimed_by.in_(holders))
            .with_for_update(skip_locked=True)
        )
        ids = list(session.scalars(held))
        if not ids:
            return 0
        result = session.execute(
            update(model)
            .where(model.id.in_(ids), model.status == self.held, model.claimed_by.in_(holders))
            .values(status=self.waiting, claimed_by=None, claimed_until=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    def give_back(self, session: Session, ids: Collection[int], *, holder: str, uncount: bool = False) -> int:
        """Hand `holder`'s rows among `ids` back to the queue now (a transient fault stopped their
        work); `uncount` takes back the attempt their claim counted, for it never ran."""
        model = self.model
        values: dict[str, Any] = {"status": self.waiting, "claimed_by": None, "claimed_until": None}
        if uncount:
            values["attempts"] = model.attempts - 1
        result = session.execute(
            update(model)
            .where(model.id.in_(ids), model.status == self.held, model.claimed_by == holder)
            .values(**values)
        )
        return int(getattr(result, "rowcount", 0) or 0)


_mine = aliased(ThreadKey)
_earlier = aliased(ThreadKey)
# An unfinished mail that arrived before this one shares one of its thread keys (finished mail
# has no keys left).
_EARLIER_IN_THREAD = exists(
    select(_earlier.id)
    .join(_mine, (_mine.key == _earlier.key) & (_earlier.raw_id < _mine.raw_id))
    .where(_mine.raw_id == RawMessage.id)
)


def finish_threads(session: Session, raw_ids: Collection[int]) -> None:
    """Drop the thread keys of finished mails (processed or quarantined), in their transaction."""
    if raw_ids and session.get_bind().dialect.name == "postgresql":
        session.execute(delete(ThreadKey).where(ThreadKey.raw_id.in_(list(raw_ids))))


RAW_QUEUE = LeasedQueue(
    "raw queue", RawMessage, RawStatus.RECEIVED, RawStatus.PROCESSING, in_thread_order=True
)
OUTBOX = LeasedQueue(
    "outbox", OutboxMessage, OutboxStatus.PENDING, OutboxStatus.SENDING, due_at=OutboxMessage.next_attempt_at
)
