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
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from intake.config import IntakeConfig
from intake.pipeline import Pipeline
from models.base import utcnow
from models.claims import holder_name
from models.raw_message import RawMessage, RawOutcome, RawStatus

log = logging.getLogger("helpdesk.worker")


@dataclass
class WorkReport:
    processed: int = 0
    tickets_created: int = 0
    replies: int = 0
    automatic: int = 0
    bounces: int = 0
    quarantined: int = 0
    ticket_ids: list[int] = field(default_factory=list)

    def add(self, outcome: RawOutcome | None, ticket_id: int | None) -> None:
        self.processed += 1
        if outcome is RawOutcome.TICKET:
            self.tickets_created += 1
        elif outcome is RawOutcome.REPLY:
            self.replies += 1
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

    def process_one(self, raw_id: int) -> tuple[RawOutcome | None, int | None]:
        """Run the pipeline on one claimed mail; (outcome, ticket) or (None, None) when quarantined."""
        now = self._clock()
        with self._sessions() as session:
            raw = session.get(RawMessage, raw_id)
            if raw is None or raw.status is not RawStatus.PROCESSING or raw.claimed_by != self.name:
                return RawOutcome.DUPLICATE, None
            if raw.attempts > self._config.max_attempts:
                error = f"processing was interrupted {raw.attempts - 1} times (the worker died on this mail)"
                self._quarantine(session, raw, error, now)
                return None, None
            try:
                result = self._pipeline.run(session, raw, now)
                raw.status = RawStatus.PROCESSED
                raw.outcome = result.outcome.value
                raw.detail = result.detail[:2000]
                raw.ticket_id = result.ticket_id
                raw.processed_at = now
                raw.claimed_until = None
                raw.error = None
                session.commit()
            except Exception as exc:
                session.rollback()
                reason = _describe(exc)
                log.warning("QUARANTINED raw=%d from %s: %s", raw_id, raw.source, reason)
                log.debug("quarantine traceback", exc_info=True)
                raw = session.get(RawMessage, raw_id)
                if raw is not None:
                    self._quarantine(session, raw, reason, now)
                return None, None
        if self._on_committed is not None:
            self._on_committed()
        return result.outcome, result.ticket_id

    def _quarantine(self, session: Session, raw: RawMessage, reason: str, now: datetime) -> None:
        raw.status = RawStatus.FAILED
        raw.error = reason[:4000]
        raw.processed_at = now
        raw.claimed_until = None
        session.commit()

    def process_available(self, limit: int | None = None) -> WorkReport:
        """Process queued mail until the queue is empty (or `limit` mails were done)."""
        report = WorkReport()
        while limit is None or report.processed < limit:
            batch = (
                self._config.worker_batch
                if limit is None
                else min(self._config.worker_batch, limit - report.processed)
            )
            ids = self.claim(batch)
            if not ids:
                break
            for raw_id in ids:
                outcome, ticket_id = self.process_one(raw_id)
                report.add(outcome, ticket_id)
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
            self.wake.wait(idle_seconds)
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
