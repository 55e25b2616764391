"""The worker: claims stored mails from the raw queue and runs the pipeline on each.

A batch is claimed with a lease (`claimed_until`), `FOR UPDATE SKIP LOCKED` on PostgreSQL so
several workers never take the same row; on SQLite one worker runs. Each mail then runs in a
transaction of its own: the ticket change, its events and its outgoing mail commit together,
or the mail is quarantined (`failed`) with the reason and the worker moves on. A mail whose
processing kills the worker process is re-claimed when its lease runs out, and quarantined after
`max_attempts` so that one poison mail never stalls the queue.

Each mail is parsed before its transaction begins, in a child process within the processing
budget (`intake.isolation`): no transaction, and on SQLite no write lock, is held while a mail's
content is read, so the listeners store mail whatever the worker is reading, and a mail too slow
to read is quarantined as such while the worker goes on.

Several workers on one PostgreSQL stay as correct as one: a conversation's mails are claimed
one after another in arrival order (models/thread_keys.py); a group's rows are locked when its
transaction begins, so rows given back from a daemon taken for dead are never worked twice; a
deadlock, serialization failure or lost connection reruns the group after a backoff, never
quarantining a mail (if the database stays away, the rows are handed back and the error raised).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.orm import Session, defer, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from intake.config import IntakeConfig
from intake.isolation import Foresight, ParsePool, describe
from intake.parse_ahead import RAMP, InProcessParser, Prepared, parse_group, parser_for, select_group
from intake.pipeline import Pipeline
from models import tables
from models.base import utcnow
from models.db import read_only, session_factory
from models.leases import (
    RAW_QUEUE,
    backoff_delay,
    bound_idle_transaction,
    finish_threads,
    holder_name,
    transient_reason,
)
from models.mail import ParsedEmail
from models.raw_message import RawMessage, RawOutcome, RawStatus

log = logging.getLogger("helpdesk.worker")

# A group hit by transient database errors runs again this many times, waiting RETRY_INITIAL
# doubled each time up to RETRY_MAX seconds, then goes back to the queue.
MAX_TRANSIENT_RETRIES = 8
RETRY_INITIAL = 0.05
RETRY_MAX = 2.0
# A group's transaction idle this long (the process paused) is ended by PostgreSQL, so its rows
# can go to another worker; far above one mail's work between two statements.
IDLE_IN_TRANSACTION = 15.0

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

    def absorb(self, other: WorkReport) -> None:
        """Add what `other` (one committed group) counted."""
        for name in (
            "processed",
            "tickets_created",
            "replies",
            "strangers",
            "automatic",
            "bounces",
            "quarantined",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.ticket_ids.extend(other.ticket_ids)

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


def lock_claimed(session: Session, raw_ids: list[int]) -> list[RawMessage]:
    """The claimed rows of a group, locked for its transaction, in raw-id order (their bytes were
    read for parsing already, so they are loaded only if a stage asks)."""
    return list(
        session.scalars(
            select(RawMessage)
            .options(defer(RawMessage.data))
            .where(RawMessage.id.in_(raw_ids))
            .order_by(RawMessage.id)
            .with_for_update(of=RawMessage)
        )
    )


class Worker:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        pipeline: Pipeline,
        config: IntakeConfig,
        clock: Callable[[], datetime] = utcnow,
        on_committed: Callable[[], None] | None = None,
        parser: ParsePool | InProcessParser | None = None,
        foresight: Foresight | None = None,
    ) -> None:
        self._sessions = sessions
        self._pipeline = pipeline
        self._config = config
        self._clock = clock
        self._on_committed = on_committed
        self.parser = parser if parser is not None else parser_for(config, foresight=foresight)
        # Mail is read for parsing without the write lock (SQLite) that a writing session takes.
        bind = sessions.kw.get("bind")
        self._readers = session_factory(read_only(bind)) if isinstance(bind, Engine) else sessions
        self.name = holder_name()
        self._lease = timedelta(seconds=config.claim_lease_seconds)
        self.wake = threading.Event()
        self.transient: Counter[str] = Counter()  # transient database errors retried, by kind

    def close(self) -> None:
        """Stop the parser's child process."""
        self.parser.close()

    def claim(self, limit: int) -> list[int]:
        now = self._clock()
        with self._sessions() as session:
            ids = RAW_QUEUE.claim(
                session, holder=self.name, now=now, lease=self._lease, limit=limit, count_attempt=True
            )
            session.commit()
        return ids

    def process_claimed(self, raw_ids: list[int], report: WorkReport) -> None:
        """Run the pipeline on claimed mails: parse a group, then run it in one transaction.

        A savepoint per mail keeps each mail's changes all-or-nothing; committing a group at a time
        saves a disk flush per mail. A group is parsed before its transaction begins, its mails side
        by side in the parser's processes, while the previous group is written: the writes stay in
        this thread, in raw-id order, and the parsing uses the other CPUs. Groups grow from one mail
        per parser process (`RAMP`); a group ends when it is full, or at a mail that was already
        being processed when a worker died: that one is handled alone, committed before and after,
        so a poison mail only ever takes itself down. Each commit renews the lease of the rest.
        """
        pending = list(raw_ids)
        first = self.parser.size if isinstance(self.parser, ParsePool) else 1
        group = self._select(pending, first)
        parse_group(self.parser, group)
        while group:
            following = self._select(pending, max(first, RAMP * len(group)))
            reader = threading.Thread(
                target=parse_group, args=(self.parser, following), name="helpdesk-parse"
            )
            reader.start()
            try:
                # The following group is claimed too: its lease is renewed, or it is handed back.
                rest = [item.raw_id for item in following] + pending
                self._write(group, rest, report)
            finally:
                reader.join()
            group = following

    def _select(self, pending: list[int], limit: int) -> list[Prepared]:
        with self._readers() as session:
            return select_group(session, pending, self.name, self._config, limit)

    def _write(self, group: list[Prepared], pending: list[int], report: WorkReport) -> None:
        """Run a parsed group in one transaction, again after a backoff when the database had a
        transient fault (never quarantining a mail for it); counted in `report` once committed."""
        if not group:
            return
        failures = 0
        while True:
            done = WorkReport()
            try:
                self._write_once(group, pending, done)
            except Exception as exc:
                reason = transient_reason(exc)
                if reason is None:
                    raise
                failures += 1
                self.transient[reason] += 1
                ids = ",".join(str(item.raw_id) for item in group)
                log.warning(
                    "RETRY raw=%s after a %s (attempt %d): %s", ids, reason, failures, _first_line(exc)
                )
                if failures >= MAX_TRANSIENT_RETRIES:
                    self._give_back([item.raw_id for item in group] + pending)
                    pending.clear()
                    raise  # the caller waits before it claims again (`run`), or gives up (ingest)
                time.sleep(backoff_delay(failures, RETRY_INITIAL, RETRY_MAX))
                continue
            report.absorb(done)
            return

    def _give_back(self, raw_ids: list[int]) -> None:
        """The database keeps failing: hand the rows back, so that any worker takes them later."""
        try:
            with self._sessions() as session:
                count = RAW_QUEUE.give_back(session, raw_ids, holder=self.name, uncount=True)
                session.commit()
        except Exception as exc:  # still away: the lease or the heartbeat gives them back
            log.warning("cannot hand back %d stored mails: %s", len(raw_ids), _first_line(exc))
            return
        log.warning("GAVE BACK %d stored mails after repeated database faults", count)

    def _write_once(self, group: list[Prepared], pending: list[int], report: WorkReport) -> None:
        """Run the pipeline on a parsed group in one transaction; renew the lease of what is left."""
        with self._sessions() as session:
            bound_idle_transaction(session, IDLE_IN_TRANSACTION)
            # Locked first: rows given back meanwhile (we were taken for dead) are not ours to work.
            rows = {raw.id: raw for raw in lock_claimed(session, [item.raw_id for item in group])}
            finished: list[int] = []
            for item in group:
                raw = rows.get(item.raw_id)
                if raw is None or raw.status is not RawStatus.PROCESSING or raw.claimed_by != self.name:
                    continue
                finished.append(raw.id)
                if item.data is not None:  # read already: a stage that wants the bytes is not another query
                    set_committed_value(raw, "data", item.data)
                if item.failure is not None:
                    log.warning("QUARANTINED raw=%d: %s", raw.id, item.failure)
                    self._quarantine(raw, item.failure, self._clock())
                    report.add(None, None)
                    continue
                outcome, ticket_id = self._run_one(session, raw, item.mail)
                report.add(outcome, ticket_id)
            finish_threads(session, finished)
            if pending:
                RAW_QUEUE.renew(session, pending, holder=self.name, until=self._clock() + self._lease)
            self._commit(session)

    def _commit(self, session: Session) -> None:
        session.commit()
        if self._on_committed is not None:
            self._on_committed()

    def _run_one(
        self, session: Session, raw: RawMessage, mail: ParsedEmail | None
    ) -> tuple[RawOutcome | None, int | None]:
        now = self._clock()
        raw_id = raw.id
        if raw.attempts > self._config.max_attempts:
            error = f"processing was interrupted {raw.attempts - 1} times (the worker died on this mail)"
            self._quarantine(raw, error, now)
            return None, None
        savepoint = session.begin_nested()
        try:
            result = self._pipeline.run(session, raw, now, mail)
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
            if transient_reason(exc) is not None:
                raise  # the whole group runs again: nothing about this mail is wrong
            savepoint.rollback()
            reason = describe(exc)
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
        try:
            self.parser.start()  # ready before the first mail comes
        except OSError as exc:
            log.error("WORKER cannot start the parser process yet: %s", exc)
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


def _first_line(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {(str(exc).splitlines() or [''])[0]}"
