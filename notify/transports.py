"""How a mail leaves: into a maildir, or over SMTP to a relay that cannot hold the desk.

`MaildirTransport` writes each mail as one private file (0600 in 0700 directories), atomically.
`SmtpTransport` speaks to the relay with a deadline on the whole transaction
(`transaction_timeout`) besides the timeout of each read, so a relay that drips `250-` lines is
cut off when the deadline passes; RFC 5321 section 4.2.1 decides what is transient (4yz, a lost
connection: `TransientError`) and what is permanent (5yz: `PermanentError`). The sender
(sender.py) decides what to do about either.
"""

from __future__ import annotations

import hashlib
import logging
import os
import smtplib
import socket
import ssl
import tempfile
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from notify.config import OutgoingConfig, SmtpOutConfig
from notify.errors import OutgoingConfigError, PermanentError, TransactionTimeout, TransientError

if TYPE_CHECKING:
    from typing_extensions import Buffer  # collections.abc.Buffer from Python 3.12 on

log = logging.getLogger("helpdesk.notify.sender")

# QUIT after the last mail of a run: a polite goodbye, not worth waiting long for.
QUIT_TIMEOUT = 5.0
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
