"""The settings of one IMAP mailbox (an `[[imap]]` section of helpdesk.toml), checked once, frozen.

The composition root reads the section's values (helpdesk/settings/imap.py); the config checks
what each may hold and says exactly which key is wrong. The secret itself (password, password
file or OAuth2 token command) is only resolved when the poller logs in (`resolve_credential`),
so a rotated password file or a fresh token is picked up without a restart.
"""

from __future__ import annotations

import dataclasses
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Literal

from intake.errors import ImapConfigError, MailboxAuthError

TlsMode = Literal["ssl", "starttls", "none"]
TLS_MODES: tuple[TlsMode, ...] = ("ssl", "starttls", "none")
DEFAULT_PORTS: Mapping[str, int] = {"ssl": 993, "starttls": 143, "none": 143}
SEEN = "\\Seen"
MOVE_PREFIX = "move:"
# RFC 2177: a client should re-issue IDLE at least every 29 minutes, or the server may log it out.
IDLE_LIMIT = 29 * 60
TOKEN_COMMAND_TIMEOUT = 30.0
# An answer may always hold this much (a CAPABILITY, a SELECT), whatever max_response_bytes says.
MIN_RESPONSE_BYTES = 64 * 1024
# Fields of the config that are not keys of an [[imap]] section.
NOT_KEYS = frozenset({"max_message_size"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,59}$")


@dataclass(frozen=True)
class Credential:
    mechanism: Literal["login", "xoauth2"]
    secret: str = dataclasses.field(repr=False)


@dataclass(frozen=True)
class ImapMailboxConfig:
    """One mailbox the helpdesk reads. Every field is a key of its `[[imap]]` section."""

    name: str  # source "imap:<name>"; default: the local part of `user`
    host: str
    user: str
    port: int = 0  # 0: 993 for tls = "ssl", else 143
    tls: TlsMode = "ssl"
    password: str | None = dataclasses.field(default=None, repr=False)
    password_file: Path | None = None  # first line; read at each login
    oauth2_token_command: tuple[str, ...] | None = None  # prints an access token; run at each login
    folder: str = "INBOX"
    processed: str = SEEN  # "\\Seen", or "move:<folder>"
    since: date | None = None  # None: the moment the mailbox was first seen
    use_idle: bool = True  # RFC 2177 IDLE when the server offers it
    poll_interval: float = 60.0  # seconds between polls without IDLE
    idle_timeout: float = 25 * 60.0  # re-issue IDLE after this many seconds (< 29 minutes)
    # While idling, end IDLE and ask (NOOP) this often: a server that went silent is left within
    # noop_interval + read_timeout instead of at the next re-issue.
    noop_interval: float = 5 * 60.0
    batch_size: int = 100  # UIDs per FETCH
    batch_bytes: int = 16 * 1024 * 1024  # at most this many bytes of mail per FETCH (one mail may be bigger)
    connect_timeout: float = 15.0
    read_timeout: float = 60.0  # a command (not IDLE) that hears nothing this long has failed
    command_timeout: float = 5 * 60.0  # a command's whole answer must be in within this
    # What one command's answer may hold besides the mails fetched: bytes, and lines (untagged
    # responses). A server that sends more is disconnected.
    max_response_bytes: int = 16 * 1024 * 1024
    max_response_lines: int = 100_000
    # Not an [[imap]] key: `[smtp] max_message_size`, the one cap on mail of every intake path.
    # A bigger mail is left on the server and recorded in the quarantine.
    max_message_size: int = 25 * 1024 * 1024
    tls_verify: bool = True
    tls_ca_file: Path | None = None  # trust this CA (or self-signed certificate) instead of the system's
    backoff_initial: float = 1.0  # first wait after a failure; doubles, with jitter, up to:
    backoff_max: float = 300.0

    def __post_init__(self) -> None:
        if self.port == 0:
            object.__setattr__(self, "port", DEFAULT_PORTS.get(self.tls, 993))
        self._validate()

    def _fail(self, key: str, problem: str) -> ImapConfigError:
        return ImapConfigError(f"[[imap]] {self.name or '?'}: {key}: {problem}")

    def _validate(self) -> None:
        if not _NAME.match(self.name):
            raise self._fail(
                "name", "1-60 letters, digits and . _ @ + - (no ':'), starting with a letter or digit"
            )
        if not self.host.strip():
            raise self._fail("host", "missing")
        if not 0 < self.port < 65536:
            raise self._fail("port", f"{self.port} is not a TCP port")
        if self.tls not in TLS_MODES:
            raise self._fail("tls", f"{self.tls!r}: use one of {', '.join(TLS_MODES)}")
        if not self.user:
            raise self._fail("user", "missing")
        sources = [
            key
            for key, value in (
                ("password", self.password),
                ("password_file", self.password_file),
                ("oauth2_token_command", self.oauth2_token_command),
            )
            if value is not None
        ]
        if len(sources) != 1:
            raise self._fail(
                "password",
                "set exactly one of password, password_file, oauth2_token_command"
                + (f" (not {' and '.join(sources)})" if sources else ""),
            )
        if self.oauth2_token_command is not None and not self.oauth2_token_command:
            raise self._fail("oauth2_token_command", "empty command")
        if not self.folder:
            raise self._fail("folder", "missing")
        if self.processed != SEEN:
            target = self.move_to
            if target is None:
                raise self._fail("processed", f'{self.processed!r}: use "\\\\Seen" or "move:<folder>"')
            if not target or target == self.folder:
                raise self._fail("processed", f"move needs another folder than {self.folder!r}")
        for key in (
            "poll_interval",
            "connect_timeout",
            "read_timeout",
            "command_timeout",
            "noop_interval",
            "backoff_initial",
        ):
            if not getattr(self, key) > 0:
                raise self._fail(key, "must be more than 0 seconds")
        if not 0 < self.idle_timeout < IDLE_LIMIT:
            raise self._fail("idle_timeout", f"must be between 0 and {IDLE_LIMIT} seconds (RFC 2177)")
        if self.poll_interval >= IDLE_LIMIT:
            # RFC 3501 section 5.4: a server may log out a client silent for 30 minutes.
            raise self._fail("poll_interval", f"must be under {IDLE_LIMIT} seconds")
        if self.backoff_max < self.backoff_initial:
            raise self._fail("backoff_max", "must be at least backoff_initial")
        if not 1 <= self.batch_size <= 10_000:
            raise self._fail("batch_size", "must be between 1 and 10000")
        if self.batch_bytes < 1:
            raise self._fail("batch_bytes", "must be positive")
        if self.max_response_bytes < MIN_RESPONSE_BYTES:
            raise self._fail("max_response_bytes", f"must be at least {MIN_RESPONSE_BYTES}")
        if self.max_response_lines < 4 * self.batch_size:
            # A FETCH of a batch answers with a line per mail, and a trailer per literal.
            raise self._fail("max_response_lines", "must be at least 4 times batch_size")
        if self.max_message_size < 1:
            raise self._fail("max_message_size", "must be positive")

    # -- derived values --------------------------------------------------------------------------

    @property
    def source(self) -> str:
        return f"imap:{self.name}"

    def source_key(self, uidvalidity: int, uid: int) -> str:
        """The raw queue's per-source identity of one mail (RFC 3501: UIDVALIDITY + UID is unique)."""
        return f"imap:{self.name}:{uidvalidity}:{uid}"

    @property
    def move_to(self) -> str | None:
        """The folder processed mail is moved to, or None when it is only flagged \\Seen."""
        if self.processed.lower().startswith(MOVE_PREFIX):
            return self.processed[len(MOVE_PREFIX) :].strip()
        return None

    @property
    def since_datetime(self) -> datetime | None:
        """`since` as the start of that day in UTC."""
        return datetime.combine(self.since, time(0), UTC) if self.since is not None else None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def resolve_credential(config: ImapMailboxConfig) -> Credential:
    """The secret to log in with, read or obtained now; MailboxAuthError says why there is none."""
    if config.password is not None:
        return Credential("login", config.password)
    if config.password_file is not None:
        try:
            lines = config.password_file.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise MailboxAuthError(
                f"cannot read password_file {config.password_file}: {exc.strerror}"
            ) from exc
        if not lines or not lines[0]:
            raise MailboxAuthError(f"password_file {config.password_file} is empty")
        return Credential("login", lines[0])
    assert config.oauth2_token_command is not None  # one of the three is set (validated)
    command = config.oauth2_token_command
    try:
        result = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            timeout=TOKEN_COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailboxAuthError(f"oauth2_token_command {command[0]!r} failed: {exc}") from exc
    token = result.stdout.strip()
    if result.returncode != 0 or not token:
        why = result.stderr.strip().splitlines()[-1:] or [f"exit status {result.returncode}, no token"]
        raise MailboxAuthError(f"oauth2_token_command {command[0]!r} failed: {why[0]}")
    return Credential("xoauth2", token)
