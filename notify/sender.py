"""The sender: delivers due outbox rows to a maildir or an SMTP relay, with retries.

Rows are claimed with a lease (`claimed_until`) so several sender processes can share one
PostgreSQL outbox (`FOR UPDATE SKIP LOCKED`) and a crashed sender's rows are picked up again.
Replies are read as RFC 5321 section 4.2.1 says: 4yz and lost connections are transient and
retried with exponential backoff until the row's deadline; 5yz is permanent and marks the row
failed at once.

A relay cannot hold the desk's mail: each SMTP transaction has a deadline (transports.py), and
one cut off is retried like any transient failure. A sender that was paused past its heartbeat
(models/heartbeat.py) finds its row taken over and records nothing: the other records it. `run` delivers
on `connections` connections at once, each claiming one row at a time, so a slow transaction
holds only its own mail. Delivery is at least once: a relay that took a mail and lost the
connection before its answer gets it again on the retry, with the same Message-ID.

A mail that finally fails (a 5yz, or the retry deadline passed) is handed to `on_failed` inside
the transaction that marks it failed: the composition root makes that an event on its ticket and
a mail to the people working it, exactly once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.leases import OUTBOX, STEADY_JITTER, backoff_delay, bound_idle_transaction, holder_name
from models.outbox import OutboxMessage, OutboxStatus
from notify.config import MailIdentity, OutgoingConfig
from notify.errors import PermanentError, TransientError
from notify.tokens import bounce_token
from notify.transports import Transport, make_transport

if TYPE_CHECKING:
    pass  # collections.abc.Buffer from Python 3.12 on

log = logging.getLogger("helpdesk.notify.sender")

CLAIM_LEASE = timedelta(minutes=5)
# A row's lease outlasts its transaction by this much, so no other sender takes it meanwhile.
LEASE_MARGIN = timedelta(minutes=1)
# How long `run` waits for its connections to finish their transactions once stopped.
STOP_GRACE = 5.0
# A claim older than this when its mail is about to go (the process was paused, or the machine
# starved) is checked first: the heartbeat may have given the row to another sender meanwhile.
RECHECK_AFTER = 2.0
# Rows a maildir connection claims and records in one transaction each (one commit per batch, not
# per mail): writing a file never hangs. A relay's rows are claimed one at a time instead, so none
# waits leased behind a slow transaction while another sender could take it.
MAILDIR_BATCH = 50
# A transaction of the sender idling this long (the process paused) is ended by PostgreSQL, so
# the rows it locked can be given to another sender (models/leases.py).
IDLE_IN_TRANSACTION = 15.0


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        return self.sent + self.retried + self.failed


# Called in the transaction that marks a row failed: (session, the row, now).
FailureHandler = Callable[[Session, OutboxMessage, datetime], None]


@dataclass(frozen=True)
class Claimed:
    """An outbox row claimed for one attempt, with what its transaction needs."""

    id: int
    envelope_from: str  # the signed per-mail return address (VERP) for our own mail
    recipients: list[str]
    data: bytes
    at: float = field(default_factory=time.monotonic)  # when it was claimed
    about: tuple[int | None, str, str] = (None, "", "")  # ticket, kind, recipient: for the log


class Sender:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: OutgoingConfig,
        transport_factory: Callable[[], Transport] | None = None,
        clock: Callable[[], datetime] = utcnow,
        identity: MailIdentity | None = None,
        on_failed: FailureHandler | None = None,
    ) -> None:
        self._sessions = sessions
        self._identity = identity
        self._config = config
        self._transport_factory = transport_factory or (lambda: make_transport(config))
        self._clock = clock
        self._name = holder_name()
        self.on_failed = on_failed
        self.wake = threading.Event()
        transaction = timedelta(seconds=config.smtp.transaction_timeout if config.smtp else 0)
        self._lease = max(CLAIM_LEASE, transaction + LEASE_MARGIN)
        self.batch = 1 if config.smtp else MAILDIR_BATCH

    def _claim_next(self, session: Session, now: datetime, limit: int = 1) -> list[Claimed]:
        """Claim up to `limit` due rows in `session`'s transaction (a row whose lease ran out counts)."""
        ids = OUTBOX.claim(session, holder=self._name, now=now, lease=self._lease, limit=limit)
        if not ids:
            return []
        o = OutboxMessage
        rows = session.execute(
            select(o.id, o.envelope_from, o.envelope_to, o.data, o.ticket_id, o.kind, o.recipient)
            .where(o.id.in_(ids))
            .order_by(o.id)
        )
        claimed: list[Claimed] = []
        for row in rows:
            envelope_from = row.envelope_from
            if self._identity is not None and envelope_from == self._identity.address:
                # VERP (a signed plus-address per outgoing mail): a bounce names the row it is about.
                envelope_from = self._identity.plus_address(bounce_token(self._identity.secret, row.id))
            about = (row.ticket_id, row.kind, row.recipient)
            claimed.append(Claimed(row.id, envelope_from, list(row.envelope_to), row.data, about=about))
        return claimed

    def claim(self) -> Claimed | None:
        """Claim the next due row, in a transaction of its own."""
        claimed = self.claim_many(1)
        return claimed[0] if claimed else None

    def claim_many(self, limit: int) -> list[Claimed]:
        """Claim up to `limit` due rows, in a transaction of their own."""
        with self._sessions() as session:
            claimed = self._claim_next(session, self._clock(), limit)
            session.commit()
        return claimed

    def deliver_due(self, limit: int = 100) -> SendReport:
        """Send what is due now over one connection (for `ingest` and tests); returns what happened.

        Rows are claimed `batch` at a time (one at a time for a relay), each batch just before its
        transaction, so none waits leased behind a slow one while another sender could have taken it.
        """
        report = SendReport()
        transport: Transport | None = None
        claimed = self.claim_many(min(self.batch, limit))
        try:
            while claimed:
                if transport is None:
                    transport = self._transport_factory()
                room = limit - report.handled - len(claimed)
                claimed = self._deliver_many(transport, claimed, report, then_claim=min(self.batch, room))
        finally:
            if transport is not None:
                transport.close()
        return report

    def _deliver(
        self, transport: Transport, claimed: Claimed, report: SendReport, *, then_claim: bool
    ) -> Claimed | None:
        """Send one claimed row and record how it went; in the same transaction, claim the next
        row when `then_claim` (one transaction per mail, however many mails)."""
        following = self._deliver_many(transport, [claimed], report, then_claim=1 if then_claim else 0)
        return following[0] if following else None

    def _deliver_many(
        self, transport: Transport, batch: list[Claimed], report: SendReport, *, then_claim: int
    ) -> list[Claimed]:
        """Send claimed rows one after another and record how each went in one transaction, which
        also claims up to `then_claim` next rows."""
        outcomes: list[tuple[Claimed, str | None, bool]] = []
        for claimed in batch:
            if time.monotonic() - claimed.at > RECHECK_AFTER and not self._still_ours(claimed.id):
                log.warning(
                    "SEND outbox=%d was given to another sender while this one stood still", claimed.id
                )
                continue
            outcomes.append((claimed, *self._send(transport, claimed)))
        now = self._clock()
        failed = False
        with self._sessions() as session:
            bound_idle_transaction(session, IDLE_IN_TRANSACTION)
            # What went is recorded in one statement (the transaction holds SQLite's one write lock,
            # which the worker waits for); the rest row by row, with its retry or failure.
            self._record_sent(
                session, [claimed for claimed, error, _ in outcomes if error is None], now, report
            )
            for claimed, error, permanent in outcomes:
                if error is None:
                    continue
                row = session.get(OutboxMessage, claimed.id, with_for_update=True)
                if row is not None and (
                    row.status is not OutboxStatus.SENDING or row.claimed_by != self._name
                ):
                    # We were taken for dead (paused past our heartbeat) and another sender has the
                    # row: it records the outcome; the mail went out with the same Message-ID either way.
                    log.warning(
                        "SEND outbox=%d was taken over by %s; leaving it", row.id, row.claimed_by or "nobody"
                    )
                    row = None
                if row is not None:
                    failed = self._record(session, row, error, permanent, now, report) or failed
            following = self._claim_next(session, now, then_claim) if then_claim > 0 else []
            session.commit()
        if failed:
            self.wake.set()  # the failure notice it queued
        return following

    def _record_sent(self, session: Session, sent: list[Claimed], now: datetime, report: SendReport) -> None:
        """Mark the rows that went as sent, those still ours (the others were taken over meanwhile:
        their new holder records them; the mail went out with the same Message-ID either way)."""
        if not sent:
            return
        marked = session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id.in_([claimed.id for claimed in sent]),
                OutboxMessage.status == OutboxStatus.SENDING,
                OutboxMessage.claimed_by == self._name,
            )
            .values(
                status=OutboxStatus.SENT,
                sent_at=now,
                last_error=None,
                attempts=OutboxMessage.attempts + 1,
                claimed_until=None,
                claimed_by=None,
            )
            .returning(OutboxMessage.id)
            .execution_options(synchronize_session=False)
        )
        done = set(marked.scalars())
        for claimed in sent:
            if claimed.id in done:
                report.sent += 1
                log.info("SENT outbox=%d ticket=#%s kind=%s to=%s", claimed.id, *claimed.about)
            else:
                log.warning("SEND outbox=%d was taken over by another sender; leaving it", claimed.id)

    def _send(self, transport: Transport, claimed: Claimed) -> tuple[str | None, bool]:
        """Hand one mail to the transport: (the error, or None when it went; whether it is permanent)."""
        try:
            transport.send(claimed.envelope_from, claimed.recipients, claimed.data)
        except PermanentError as exc:
            return str(exc), True
        except TransientError as exc:
            return str(exc), False
        except Exception as exc:  # a transport bug must not lose the row: retry like a 4xx
            log.exception("SEND outbox=%d raised", claimed.id)
            return f"{exc.__class__.__name__}: {exc}", False
        return None, False

    def _still_ours(self, outbox_id: int) -> bool:
        with self._sessions() as session:
            row = session.get(OutboxMessage, outbox_id)
            return row is not None and row.status is OutboxStatus.SENDING and row.claimed_by == self._name

    def _record(
        self,
        session: Session,
        row: OutboxMessage,
        error: str | None,
        permanent: bool,
        now: datetime,
        report: SendReport,
    ) -> bool:
        """Write the outcome of an attempt on `row`; True when it finally failed and was told."""
        row.attempts += 1
        row.claimed_until = None
        row.claimed_by = None
        if error is None:
            row.status = OutboxStatus.SENT
            row.sent_at = now
            row.last_error = None
            report.sent += 1
            log.info(
                "SENT outbox=%d ticket=#%s kind=%s to=%s", row.id, row.ticket_id, row.kind, row.recipient
            )
            return False
        report.errors.append(error)
        if permanent or now >= row.deadline:
            row.status = OutboxStatus.FAILED
            row.last_error = error if permanent else f"gave up after {row.attempts} attempts: {error}"
            report.failed += 1
            log.warning(
                "SEND FAILED outbox=%d ticket=#%s to=%s: %s", row.id, row.ticket_id, row.recipient, error
            )
            return self._tell_failed(session, row, now)
        # Jitter, so a relay coming back is not hit all at once; each wait still longer than the last.
        delay = backoff_delay(
            row.attempts, self._config.backoff_initial, self._config.backoff_max, jitter=STEADY_JITTER
        )
        row.status = OutboxStatus.PENDING
        row.next_attempt_at = min(now + timedelta(seconds=delay), row.deadline)
        row.last_error = error
        report.retried += 1
        log.info("SEND RETRY outbox=%d in %.0fs (attempt %d): %s", row.id, delay, row.attempts, error)
        return False

    def _tell_failed(self, session: Session, row: OutboxMessage, now: datetime) -> bool:
        """Hand a finally failed row to `on_failed`, in this transaction; a fault there is logged, and
        the row is failed all the same (a bug in a notice must not keep a mail being resent)."""
        if self.on_failed is None:
            return False
        try:
            with session.begin_nested():
                self.on_failed(session, row, now)
        except Exception:
            log.exception("SEND FAILED outbox=%d: recording the failure on its ticket failed", row.id)
            return False
        return True

    def run(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        """Deliver until `stop` is set, on `connections` connections; `wake` (the pipeline queued
        mail) sends an idle connection looking at once, and one looks every `idle_seconds` anyway."""
        count = max(1, self._config.connections)
        bells = [threading.Event() for _ in range(count)]
        busy = [False] * count
        threads = [
            threading.Thread(
                target=self._connection,
                args=(number, stop, bells, busy, idle_seconds),
                name=f"helpdesk-sender-{number}",
                daemon=True,
            )
            for number in range(count)
        ]
        for thread in threads:
            thread.start()
        try:
            while not stop.is_set():
                _ring_idle(bells, busy)
                self.wake.wait(idle_seconds)
                self.wake.clear()
        finally:
            for bell in bells:
                bell.set()
            deadline = time.monotonic() + STOP_GRACE
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _connection(
        self,
        number: int,
        stop: threading.Event,
        bells: list[threading.Event],
        busy: list[bool],
        idle_seconds: float,
    ) -> None:
        """One connection: when rung, deliver rows one by one until none is due, then hang up."""
        while not stop.is_set():
            bells[number].wait()
            bells[number].clear()
            transport: Transport | None = None
            busy[number] = True
            try:
                claimed = self.claim_many(self.batch)
                while claimed:
                    _ring_idle(bells, busy)  # more may be due: another connection looks too
                    if transport is None:
                        transport = self._transport_factory()
                    following = 0 if stop.is_set() else self.batch
                    claimed = self._deliver_many(transport, claimed, SendReport(), then_claim=following)
            except Exception:
                log.exception("SENDER connection %d failed; retrying", number)
                stop.wait(idle_seconds)
            finally:
                busy[number] = False
                if transport is not None:
                    transport.close()


def _ring_idle(bells: list[threading.Event], busy: list[bool]) -> None:
    """Send the first connection that is not in a transaction looking for due mail."""
    for bell, working in zip(bells, busy, strict=True):
        if not working:
            bell.set()
            return
