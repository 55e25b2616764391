"""Claims with a lease: how the worker takes stored mail and the sender takes outgoing mail.

Both queues (the raw queue, `raw_messages`, and the outbox) move a row from a waiting status to
a held one, naming the process that holds it (`claimed_by`, host:pid) and until when
(`claimed_until`). Claiming locks the rows with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so any
number of processes share a queue and never take the same row; on SQLite the writer's
`BEGIN IMMEDIATE` serialises claims. A held row whose lease ran out is due again: its holder
died or hung, and another takes it over. `renew` keeps the lease of rows still being worked on;
`release` hands rows back (a dead holder's, see models/claims.py).

Retries wait with exponential backoff and jitter (`backoff_delay`): the sender between
attempts at a mail, the IMAP poller between reconnects.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage, RawStatus

# Each wait is 50-100 % of the doubled one: many clients coming back (pollers reconnecting after
# a server restart) spread out instead of arriving together.
SPREAD_JITTER = (0.5, 1.0)
# Each wait is 80-120 % of the doubled one: spread a little, and still longer than the one before.
STEADY_JITTER = (0.8, 1.2)
# Past this many doublings the wait is the cap anyway; the exponent stays small.
MAX_DOUBLINGS = 30


def holder_name() -> str:
    """How this process names itself in `claimed_by` (and in a mailbox's `holder`): host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


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


@dataclass(frozen=True)
class LeasedQueue:
    """A table whose rows are claimed: `waiting` -> `held` (with a lease and a holder) -> done."""

    name: str
    model: Any  # a mapped class with id, status, attempts, claimed_by and claimed_until
    waiting: Any  # the status of a row that waits to be claimed
    held: Any  # the status of a claimed row
    # A waiting row is due when this column (a time) is reached; None: as soon as it waits.
    due_at: InstrumentedAttribute[datetime] | None = None

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
        ids = list(session.scalars(query.with_for_update(skip_locked=True)))
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
        """Give the rows that `holders` hold back to the queue, due at once; how many."""
        model = self.model
        result = session.execute(
            update(model)
            .where(model.status == self.held, model.claimed_by.in_(holders))
            .values(status=self.waiting, claimed_by=None, claimed_until=None)
        )
        return int(getattr(result, "rowcount", 0) or 0)


RAW_QUEUE = LeasedQueue("raw queue", RawMessage, RawStatus.RECEIVED, RawStatus.PROCESSING)
OUTBOX = LeasedQueue(
    "outbox", OutboxMessage, OutboxStatus.PENDING, OutboxStatus.SENDING, due_at=OutboxMessage.next_attempt_at
)
