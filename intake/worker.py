"""The worker: claims stored mails from the raw queue and runs the pipeline on each.

A batch is claimed with a lease (`claimed_until`), `FOR UPDATE SKIP LOCKED` on PostgreSQL so
several workers never take the same row; on SQLite one worker runs. Each mail then runs in a
transaction of its own: the ticket change, its events and its outgoing mail commit together,
or the mail is quarantined (`failed`) with the reason and the worker moves on. A mail whose
processing kills the worker process is re-claimed when its lease runs out, and quarantined after
`max_attempts` so that one poison mail never stalls the queue.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.config import IntakeConfig
from intake.pipeline import Pipeline
from models import tables
from models.base import utcnow
from models.claims import holder_name
from models.raw_message import RawMessage, RawOutcome, RawStatus

log = logging.getLogger("helpdesk.worker")

_raw = tables.raw_messages
_MARK_PROCESSED = (
    update(_raw)
    .where(_raw.c.id == bindparam("raw_id"))
    .values(
        status=RawStatus.PROCESSED,
        outcome=bindparam("outcome"),
        detail=bindparam("detail"),
        ticket_id=bindparam("ticket_id"),
        processed_at=bindparam("processed_at"),
        claimed_until=None,
        error=None,
    )
)


@dataclass
class WorkReport:
    processed: int = 0
    tickets_created: int = 0
    replies: int = 0
    strangers: int = 0  # notes from people not on the ticket they wrote to
    automatic: int = 0
    bounces: int = 0
    quarantined: int = 0
    ticket_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"tickets created {self.tickets_created}, replies {self.replies}, strangers {self.strangers}, "
            f"automatic {self.automatic + self.bounces}, quarantined {self.quarantined}"
        )

    def add(self, outcome: RawOutcome | None, ticket_id: int | None) -> None:
        self.processed += 1
        if outcome is RawOutcome.TICKET:
            self.tickets_created += 1
        elif outcome is RawOutcome.REPLY:
            self.replies += 1
        elif outcome is RawOutcome.STRANGER:
            self.strangers += 1
        elif outcome is RawOutcome.AUTOMATIC:
            self.automatic += 1
        elif outcome is RawOutcome.BOUNCE:
            self.bounces += 1
        elif outcome is None:
            self.quarantined += 1
        if ticket_id is not None:
            self.ticket_ids.append(ticket_id)


def _describe(exc: BaseException) -> str:
    """The reason an admin reads in `helpdesk quarantine show`: the error and where it happened."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno})" if frames else ""
    return f"{exc.__class__.__name__}: {exc}{where}"


class Worker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        config: IntakeConfig,
        clock: Callable[[], datetime] = utcnow,
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        self._sessions = sessions
        self._pipeline = pipeline
        self._config = config
        self._clock = clock
        self._on_committed = on_committed
        self.name = holder_name()
        self.wake = threading.Event()

    def claim(self, limit: int) -> list[int]:
        now = self._clock()
        lease = now + timedelta(seconds=self._config.claim_lease_seconds)
        with self._sessions() as session:
            query = (
                select(RawMessage.id)
                .where(
                    or_(
                        RawMessage.status == RawStatus.RECEIVED,
                        (RawMessage.status == RawStatus.PROCESSING) & (RawMessage.claimed_until < now),
                    )
                )
                .order_by(RawMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list(session.scalars(query))
            if ids:
                session.execute(
                    update(RawMessage)
                    .where(RawMessage.id.in_(ids))
                    .values(
                        status=RawStatus.PROCESSING,
                        claimed_by=self.name,
                        claimed_until=lease,
                        attempts=RawMessage.attempts + 1,
                    )
                )
            session.commit()
        return ids

    def process_claimed(self, raw_ids: list[int], report: WorkReport) -> None:
        """Run the pipeline on claimed mails, each in a savepoint of its own, committing in groups.

        A savepoint per mail keeps each mail's changes all-or-nothing; committing a group at a time
        saves a disk flush per mail. A mail that was already being processed when a worker died is
        handled alone, committed before and after, so a poison mail only ever takes itself down.
        """
        with self._sessions() as session:
            since_commit = 0
            last_commit = time.monotonic()
            rows = session.scalars(
                select(RawMessage).where(RawMessage.id.in_(raw_ids)).order_by(RawMessage.id)
            )
            for raw in list(rows):
                if raw.status is not RawStatus.PROCESSING or raw.claimed_by != self.name:
                    continue
                suspect = raw.attempts > 1
                if suspect and since_commit:
                    self._commit(session)
                    since_commit = 0
                outcome, ticket_id = self._run_one(session, raw)
                report.add(outcome, ticket_id)
                since_commit += 1
                group_full = since_commit >= self._config.commit_every
                if suspect or group_full or time.monotonic() - last_commit > self._config.commit_interval:
                    self._commit(session)
                    since_commit = 0
                    last_commit = time.monotonic()
            if since_commit:
                self._commit(session)

    def _commit(self, session: Session) -> None:
        session.commit()
        if self._on_committed is not None:
            self._on_committed()

    def _run_one(self, session: Session, raw: RawMessage) -> tuple[RawOutcome | None, int | None]:
        now = self._clock()
        raw_id = raw.id
        if raw.attempts > self._config.max_attempts:
            error = f"processing was interrupted {raw.attempts - 1} times (the worker died on this mail)"
            self._quarantine(raw, error, now)
            return None, None
        savepoint = session.begin_nested()
        try:
            result = self._pipeline.run(session, raw, now)
            session.connection().execute(
                _MARK_PROCESSED,
                {
                    "raw_id": raw_id,
                    "outcome": result.outcome.value,
                    "detail": result.detail[:2000],
                    "ticket_id": result.ticket_id,
                    "processed_at": now,
                },
            )
            savepoint.commit()
        except Exception as exc:
            savepoint.rollback()
            reason = _describe(exc)
            log.warning("QUARANTINED raw=%d: %s", raw_id, reason)
            log.debug("quarantine traceback", exc_info=True)
            again = session.get(RawMessage, raw_id)
            if again is not None:
                self._quarantine(again, reason, now)
            return None, None
        return result.outcome, result.ticket_id

    def _quarantine(self, raw: RawMessage, reason: str, now: datetime) -> None:
        raw.status = RawStatus.FAILED
        raw.error = reason[:4000]
        raw.processed_at = now
        raw.claimed_until = None

    def process_available(self, limit: int | None = None) -> WorkReport:
        """Process queued mail until the queue is empty (or `limit` mails were done)."""
        report = WorkReport()
        while limit is None or report.processed < limit:
            batch = self._config.worker_batch
            if limit is not None:
                batch = min(batch, limit - report.processed)
            ids = self.claim(batch)
            if not ids:
                break
            self.process_claimed(ids, report)
        return report

    def run(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        """Process until `stop` is set; `wake` (set by the store) cuts the idle wait short."""
        while not stop.is_set():
            try:
                report = self.process_available(limit=self._config.worker_batch)
            except Exception:
                log.exception("WORKER loop failed; retrying")
                report = WorkReport()
                stop.wait(idle_seconds)
            if report.processed:
                continue
            if self.wake.wait(idle_seconds):
                # Mail is arriving: let a few more land so they share one claim and one commit.
                stop.wait(self._config.gather_seconds)
            self.wake.clear()


def requeue(sessions: sessionmaker[Session], raw_ids: list[int] | None = None) -> int:
    """Put quarantined mails back in the queue (`helpdesk quarantine retry`); returns how many."""
    with sessions() as session:
        query = update(RawMessage).where(RawMessage.status == RawStatus.FAILED)
        if raw_ids is not None:
            query = query.where(RawMessage.id.in_(raw_ids))
        result = session.execute(
            query.values(status=RawStatus.RECEIVED, attempts=0, claimed_by=None, claimed_until=None)
        )
        session.commit()
        return int(getattr(result, "rowcount", 0) or 0)
