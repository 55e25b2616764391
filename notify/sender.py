"""The sender: delivers due outbox rows to a maildir or an SMTP relay, with retries.

Rows are claimed with a lease (`claimed_until`) so several sender processes can share one
PostgreSQL outbox (`FOR UPDATE SKIP LOCKED`) and a crashed sender's rows are picked up again.
Replies are read as RFC 5321 section 4.2.1 says: 4yz and lost connections are transient and
retried with exponential backoff until the row's deadline; 5yz is permanent and marks the row
failed at once.

A relay cannot hold the desk's mail. Each SMTP transaction has a deadline
(`transaction_timeout`) besides the timeout of each read: a relay that drips `250-` lines is cut
off when the deadline passes, and the mail is retried like any transient failure. `run` delivers
on `connections` connections at once, each claiming one row at a time, so a slow transaction
holds only its own mail. Delivery is at least once: a relay that took a mail and lost the
connection before its answer gets it again on the retry, with the same Message-ID.

A mail that finally fails (a 5yz, or the retry deadline passed) is handed to `on_failed` inside
the transaction that marks it failed: the composition root makes that an event on its ticket and
a mail to the people working it, exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import smtplib
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.claims import holder_name
from models.outbox import OutboxMessage, OutboxStatus
from notify.config import MailIdentity, OutgoingConfig, SmtpOutConfig
from notify.errors import OutgoingConfigError, PermanentError, TransactionTimeout, TransientError
from notify.tokens import bounce_token

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12 on

log = logging.getLogger("helpdesk.notify.sender")

CLAIM_LEASE = timedelta(minutes=5)
# A row's lease outlasts its transaction by this much, so no other sender takes it meanwhile.
LEASE_MARGIN = timedelta(minutes=1)
# QUIT after the last mail of a run: a polite goodbye, not worth waiting long for.
QUIT_TIMEOUT = 5.0
# How long `run` waits for its connections to finish their transactions once stopped.
STOP_GRACE = 5.0
# Of a relay's reply, this much is kept in the row's last_error.
RELAY_WORDS_MAX = 1000


class Transport(Protocol):
    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None: ...

    def close(self) -> None: ...


class MaildirTransport:
    """The embedded default: each outgoing mail becomes a file in a maildir for people to read.

    A file is named after its content's hash, so delivering a mail again lands on the same file.
    That happens when the process dies after writing the file and before recording the row as
    sent: the row is sent again, and the requester must not find two acknowledgments.
    """

    DIR_MODE = 0o700  # whatever the umask: the mails carry reply addresses signed for one technician

    def __init__(self, path: Path) -> None:
        self._path = path

    def _private_dirs(self) -> None:
        for directory in (self._path, self._path / "tmp", self._path / "new", self._path / "cur"):
            if not directory.is_dir():
                directory.mkdir(mode=self.DIR_MODE, parents=True, exist_ok=True)
                os.chmod(directory, self.DIR_MODE)

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        name = f"{hashlib.sha256(data).hexdigest()[:40]}.helpdesk"
        try:
            self._private_dirs()
            # A reader moves what it has seen to cur/, adding ":2,<flags>" to the name.
            if (self._path / "new" / name).exists() or any((self._path / "cur").glob(name + ":*")):
                return
            # Return-Path records the envelope sender as a final delivery would (RFC 5321 4.4).
            content = b"Return-Path: <" + envelope_from.encode() + b">\n" + data.replace(b"\r\n", b"\n")
            # Written in tmp/ and renamed into new/, so a reader never sees half a mail.
            # mkstemp creates the file 0600 under a name no other writer has.
            fd, tmp = tempfile.mkstemp(prefix=f"{name}.{os.getpid()}.", dir=self._path / "tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(content)
                os.replace(tmp, self._path / "new" / name)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise TransientError(f"cannot write to maildir {self._path}: {exc}") from exc

    def close(self) -> None:
        return None


def relay_words(text: bytes | str) -> str:
    """A relay's reply text as one printable line (it reaches the log, a ticket and staff mail)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    lines = ("".join(c if c.isprintable() else "?" for c in line) for line in text.splitlines())
    return " / ".join(lines)[:RELAY_WORDS_MAX]


class _Deadline:
    """The end of the current transaction, shared by a connection's reads and writes."""

    def __init__(self, per_read: float) -> None:
        self.per_read = per_read  # the timeout of one read or write
        self.at: float | None = None

    def timeout(self) -> float:
        """The socket timeout for the next read or write: never past the deadline."""
        if self.at is None:
            return self.per_read
        left = self.at - time.monotonic()
        if left <= 0:
            raise TransactionTimeout("the transaction deadline passed")
        return min(self.per_read, left)


class _DeadlineReader:
    """smtplib's reply reader, with the socket timeout cut to the transaction's deadline per line."""

    def __init__(self, raw: IO[bytes], sock: socket.socket, deadline: _Deadline) -> None:
        self._raw, self._sock, self._deadline = raw, sock, deadline

    def readline(self, limit: int = -1) -> bytes:
        self._sock.settimeout(self._deadline.timeout())
        return self._raw.readline(limit)

    def close(self) -> None:
        self._raw.close()


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib.SMTP whose every read and write ends by `deadline.at` (a relay may answer slowly,
    but not forever: the per-read timeout alone lets a relay that drips lines hold us for good)."""

    def __init__(self, deadline: _Deadline, *args: Any, **kwargs: Any) -> None:
        self.deadline = deadline  # before smtplib connects, in its __init__
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(host, port, self.deadline.timeout())  # type: ignore[misc, no-any-return]

    def send(self, s: str | Buffer) -> None:
        if self.sock is not None:
            self.sock.settimeout(self.deadline.timeout())
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:
            self.file = _DeadlineReader(self.sock.makefile("rb"), self.sock, self.deadline)
        return super().getreply()


class _DeadlineSMTP_SSL(_DeadlineSMTP, smtplib.SMTP_SSL):
    pass


class SmtpTransport:
    """An SMTP relay; one connection is reused for consecutive mails, each its own transaction."""

    def __init__(self, config: SmtpOutConfig) -> None:
        self._config = config
        self._conn: _DeadlineSMTP | None = None
        self._deadline = _Deadline(config.timeout)

    def _connect(self) -> _DeadlineSMTP:
        cfg = self._config
        context = ssl.create_default_context()
        if not cfg.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: _DeadlineSMTP
        if cfg.tls == "ssl":
            conn = _DeadlineSMTP_SSL(self._deadline, cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            conn = _DeadlineSMTP(self._deadline, cfg.host, cfg.port, timeout=cfg.timeout)
        conn.ehlo()
        if cfg.tls == "starttls":
            if conn.has_extn("starttls"):
                conn.starttls(context=context)
                conn.ehlo()
            elif cfg.user:
                conn.quit()
                raise TransientError(
                    f"{cfg.host}:{cfg.port} does not offer STARTTLS; not sending a password in clear"
                )
        if cfg.user:
            try:
                conn.login(cfg.user, cfg.password or "")
            except smtplib.SMTPAuthenticationError as exc:
                # Our credentials, not the mail: a 535 must not fail every mail for good.
                conn.close()
                raise TransientError(
                    f"{cfg.host}:{cfg.port} refused our login: {exc.smtp_code} {relay_words(exc.smtp_error)}"
                ) from exc
        return conn

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        ends = self._deadline.at = time.monotonic() + self._config.transaction_timeout
        try:
            return self._send(envelope_from, recipients, data)
        except TransientError as exc:
            if time.monotonic() >= ends:
                raise TransientError(
                    f"transaction not over after {self._config.transaction_timeout:g} s "
                    f"(transaction_timeout): {exc}"
                ) from exc
            raise
        finally:
            self._deadline.at = None

    def _send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            refused = self._conn.sendmail(envelope_from, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self.close()
            message = "; ".join(
                f"{rcpt}: {code} {relay_words(text)}" for rcpt, (code, text) in exc.recipients.items()
            )
            if all(400 <= c < 500 for c in codes):
                raise TransientError(message) from exc
            raise PermanentError(message) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            text = f"{exc.smtp_code} {relay_words(exc.smtp_error)}"
            if 400 <= exc.smtp_code < 500:
                raise TransientError(text) from exc
            if exc.smtp_code >= 500:
                raise PermanentError(text) from exc
            raise TransientError(text) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._abandon()  # the connection is broken or out of step: no QUIT
            raise TransientError(f"{exc.__class__.__name__}: {exc}") from exc
        if refused:
            # Some recipients took it; the refused ones are reported and not retried per row.
            log.warning("SENT with refusals %s", refused)

    def _abandon(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def close(self) -> None:
        if self._conn is not None:
            self._deadline.at = time.monotonic() + QUIT_TIMEOUT
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                self._conn.close()
            self._deadline.at = None
            self._conn = None


def make_transport(config: OutgoingConfig) -> Transport:
    if config.smtp is not None:
        return SmtpTransport(config.smtp)
    if config.maildir is not None:
        return MaildirTransport(config.maildir)
    raise OutgoingConfigError("outgoing mail has neither a maildir nor an SMTP relay configured")


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

    def _claim_next(self, session: Session, now: datetime) -> Claimed | None:
        """Claim the next due row in `session`'s transaction (a row whose lease ran out counts)."""
        due = (
            select(OutboxMessage)
            .where(
                ((OutboxMessage.status == OutboxStatus.PENDING) & (OutboxMessage.next_attempt_at <= now))
                | ((OutboxMessage.status == OutboxStatus.SENDING) & (OutboxMessage.claimed_until < now))
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        row = session.scalars(due).first()
        if row is None:
            return None
        row.status = OutboxStatus.SENDING
        row.claimed_by = self._name
        row.claimed_until = now + self._lease
        envelope_from = row.envelope_from
        if self._identity is not None and envelope_from == self._identity.address:
            # VERP (a signed plus-address per outgoing mail): a bounce names the row it is about.
            envelope_from = self._identity.plus_address(bounce_token(self._identity.secret, row.id))
        return Claimed(row.id, envelope_from, list(row.envelope_to), row.data)

    def claim(self) -> Claimed | None:
        """Claim the next due row, in a transaction of its own."""
        with self._sessions() as session:
            claimed = self._claim_next(session, self._clock())
            session.commit()
        return claimed

    def deliver_due(self, limit: int = 100) -> SendReport:
        """Send what is due now over one connection (for `ingest` and tests); returns what happened.

        Rows are claimed one at a time, each just before its transaction, so none waits leased
        behind a slow one while another sender could have taken it.
        """
        report = SendReport()
        transport: Transport | None = None
        claimed = self.claim() if limit > 0 else None
        try:
            while claimed is not None:
                if transport is None:
                    transport = self._transport_factory()
                claimed = self._deliver(transport, claimed, report, then_claim=report.handled + 1 < limit)
        finally:
            if transport is not None:
                transport.close()
        return report

    def _deliver(
        self, transport: Transport, claimed: Claimed, report: SendReport, *, then_claim: bool
    ) -> Claimed | None:
        """Send one claimed row and record how it went; in the same transaction, claim the next
        row when `then_claim` (one transaction per mail, however many mails)."""
        error: str | None = None
        permanent = False
        try:
            transport.send(claimed.envelope_from, claimed.recipients, claimed.data)
        except PermanentError as exc:
            error, permanent = str(exc), True
        except TransientError as exc:
            error = str(exc)
        except Exception as exc:  # a transport bug must not lose the row: retry like a 4xx
            error = f"{exc.__class__.__name__}: {exc}"
            log.exception("SEND outbox=%d raised", claimed.id)
        now = self._clock()
        failed = False
        with self._sessions() as session:
            row = session.get(OutboxMessage, claimed.id)
            if row is not None:
                failed = self._record(session, row, error, permanent, now, report)
            following = self._claim_next(session, now) if then_claim else None
            session.commit()
        if failed:
            self.wake.set()  # the failure notice it queued
        return following

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
        delay = min(self._config.backoff_initial * (2 ** (row.attempts - 1)), self._config.backoff_max)
        delay *= random.uniform(0.8, 1.2)  # jitter, so a relay coming back is not hit all at once
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
                claimed = self.claim()
                while claimed is not None:
                    _ring_idle(bells, busy)  # more may be due: another connection looks too
                    if transport is None:
                        transport = self._transport_factory()
                    claimed = self._deliver(transport, claimed, SendReport(), then_claim=not stop.is_set())
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
