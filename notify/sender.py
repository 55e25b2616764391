"""The sender: delivers due outbox rows to a maildir or an SMTP relay, with retries.

Rows are claimed with a lease (`claimed_until`) so several sender processes can share one
PostgreSQL outbox (`FOR UPDATE SKIP LOCKED`) and a crashed sender's rows are picked up again.
Replies are read as RFC 5321 section 4.2.1 says: 4yz and lost connections are transient and
retried with exponential backoff until the row's deadline; 5yz is permanent and marks the row
failed at once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import smtplib
import ssl
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.claims import holder_name
from models.outbox import OutboxMessage, OutboxStatus
from notify.config import MailIdentity, OutgoingConfig, SmtpOutConfig
from notify.tokens import bounce_token

log = logging.getLogger("helpdesk.notify.sender")

CLAIM_LEASE = timedelta(minutes=5)


class TransientError(Exception):
    """Try again later (4yz reply, connection trouble)."""


class PermanentError(Exception):
    """Do not try again (5yz reply)."""


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


class SmtpTransport:
    """An SMTP relay; one connection is reused for a batch of mails."""

    def __init__(self, config: SmtpOutConfig) -> None:
        self._config = config
        self._conn: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        cfg = self._config
        context = ssl.create_default_context()
        if not cfg.verify_tls:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        conn: smtplib.SMTP
        if cfg.tls == "ssl":
            conn = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
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
            conn.login(cfg.user, cfg.password or "")
        return conn

    def send(self, envelope_from: str, recipients: list[str], data: bytes) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            refused = self._conn.sendmail(envelope_from, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            self.close()
            message = "; ".join(f"{rcpt}: {code} {text!r}" for rcpt, (code, text) in exc.recipients.items())
            if all(400 <= c < 500 for c in codes):
                raise TransientError(message) from exc
            raise PermanentError(message) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            text = f"{exc.smtp_code} {exc.smtp_error!r}"
            if 400 <= exc.smtp_code < 500:
                raise TransientError(text) from exc
            if exc.smtp_code >= 500:
                raise PermanentError(text) from exc
            raise TransientError(text) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TransientError(f"{exc.__class__.__name__}: {exc}") from exc
        if refused:
            # Some recipients took it; the refused ones are reported and not retried per row.
            log.warning("SENT with refusals %s", refused)

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.quit()
            except (smtplib.SMTPException, OSError):
                pass
            self._conn = None


def make_transport(config: OutgoingConfig) -> Transport:
    if config.smtp is not None:
        return SmtpTransport(config.smtp)
    if config.maildir is not None:
        return MaildirTransport(config.maildir)
    raise ValueError("outgoing mail has neither a maildir nor an SMTP relay configured")


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Sender:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        config: OutgoingConfig,
        transport_factory: Callable[[], Transport] | None = None,
        clock: Callable[[], datetime] = utcnow,
        identity: MailIdentity | None = None,
    ) -> None:
        self._sessions = sessions
        self._identity = identity
        self._config = config
        self._transport_factory = transport_factory or (lambda: make_transport(config))
        self._clock = clock
        self._name = holder_name()
        self.wake = threading.Event()

    def _claim(self, limit: int) -> list[int]:
        now = self._clock()
        with self._sessions() as session:
            due = (
                select(OutboxMessage.id)
                .where(
                    ((OutboxMessage.status == OutboxStatus.PENDING) & (OutboxMessage.next_attempt_at <= now))
                    | ((OutboxMessage.status == OutboxStatus.SENDING) & (OutboxMessage.claimed_until < now))
                )
                .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            ids = list(session.scalars(due))
            if ids:
                session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id.in_(ids))
                    .values(
                        status=OutboxStatus.SENDING, claimed_by=self._name, claimed_until=now + CLAIM_LEASE
                    )
                )
            session.commit()
            return ids

    def deliver_due(self, limit: int = 100) -> SendReport:
        """Send what is due now; returns what happened."""
        report = SendReport()
        ids = self._claim(limit)
        if not ids:
            return report
        transport = self._transport_factory()
        try:
            for row_id in ids:
                self._deliver_one(transport, row_id, report)
        finally:
            transport.close()
        return report

    def _deliver_one(self, transport: Transport, row_id: int, report: SendReport) -> None:
        with self._sessions() as session:
            row = session.get(OutboxMessage, row_id)
            if row is None or row.status is not OutboxStatus.SENDING:
                return
            envelope_from, recipients, data = row.envelope_from, list(row.envelope_to), row.data
            if self._identity is not None and envelope_from == self._identity.address:
                # VERP (a signed plus-address per outgoing mail): a bounce names the row it is about.
                envelope_from = self._identity.plus_address(bounce_token(self._identity.secret, row_id))
        error: str | None = None
        permanent = False
        try:
            transport.send(envelope_from, recipients, data)
        except PermanentError as exc:
            error, permanent = str(exc), True
        except TransientError as exc:
            error = str(exc)
        except Exception as exc:  # a transport bug must not lose the row: retry like a 4xx
            error = f"{exc.__class__.__name__}: {exc}"
            log.exception("SEND outbox=%d raised", row_id)
        now = self._clock()
        with self._sessions() as session:
            row = session.get(OutboxMessage, row_id)
            if row is None:
                return
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
            elif permanent or now >= row.deadline:
                row.status = OutboxStatus.FAILED
                row.last_error = error if permanent else f"gave up after {row.attempts} attempts: {error}"
                report.failed += 1
                report.errors.append(error)
                log.warning(
                    "SEND FAILED outbox=%d ticket=#%s to=%s: %s", row.id, row.ticket_id, row.recipient, error
                )
            else:
                delay = min(
                    self._config.backoff_initial * (2 ** (row.attempts - 1)), self._config.backoff_max
                )
                delay *= random.uniform(0.8, 1.2)  # jitter, so a relay coming back is not hit all at once
                row.status = OutboxStatus.PENDING
                row.next_attempt_at = min(now + timedelta(seconds=delay), row.deadline)
                row.last_error = error
                report.retried += 1
                report.errors.append(error)
                log.info("SEND RETRY outbox=%d in %.0fs (attempt %d): %s", row.id, delay, row.attempts, error)
            session.commit()

    def run(self, stop: threading.Event, idle_seconds: float = 1.0) -> None:
        """Deliver until `stop` is set; woken early by `wake` when the pipeline queued mail."""
        while not stop.is_set():
            try:
                report = self.deliver_due()
            except Exception:
                log.exception("SENDER loop failed; retrying")
                report = SendReport()
            if report.sent or report.retried or report.failed:
                continue
            self.wake.wait(idle_seconds)
            self.wake.clear()
