"""Typed settings of the intake side, filled by the composition root from `helpdesk.toml`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MB = 1024 * 1024


@dataclass(frozen=True)
class SessionLimits:
    """What one listener grants its sessions (the `[smtp]` keys of the same names; an LMTP listener
    takes the same object). Each session holds one file descriptor: `max_sessions` plus the daemon's
    own descriptors must stay under the process's limit (LimitNOFILE in deploy/helpdesk.service)."""

    max_sessions: int = 100  # open sessions in total; past it a new connection gets 421 and is closed
    max_sessions_per_client: int = 20  # per client address (IPv6: per /64)
    # The three budgets of a session, each renewed by a mail accepted (past one: 421).
    max_commands: int = 1000  # commands
    max_noops: int = 20  # NOOPs
    max_errors: int = 20  # 4xx/5xx replies
    # RFC 5321 section 4.5.3.2.7: a server waits at least 5 minutes for the next command.
    idle_timeout: float = 300.0
    max_session_time: float = 1200.0  # however busy a session keeps itself
    tls_handshake_timeout: float = 10.0  # from STARTTLS to a finished handshake (RFC 3207)
    # Message data all sessions together hold in memory; past it DATA gets 452 (try again later).
    max_data_in_memory: int = 256 * MB


@dataclass(frozen=True)
class SmtpListenConfig:
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_size: int = 25 * MB
    tls_cert: Path | None = None
    tls_key: Path | None = None
    require_tls: bool = False  # refuse MAIL before STARTTLS
    hostname: str | None = None  # the name in the banner; the machine's name when unset
    limits: SessionLimits = field(default_factory=SessionLimits)


@dataclass(frozen=True)
class LmtpListenConfig:
    """`[lmtp]`: the LMTP listener (RFC 2033), on a TCP `host` and `port` or a Unix `socket`.

    It holds mail to the size limit and session limits of the SMTP listener (`[smtp]`).
    """

    host: str = "127.0.0.1"
    port: int = 2424
    socket: Path | None = None  # a Unix socket instead of host and port
    max_message_size: int = 25 * MB
    hostname: str | None = None  # the name in the greeting; the machine's host name when unset
    limits: SessionLimits = field(default_factory=SessionLimits)


@dataclass(frozen=True)
class IntakeConfig:
    max_attachment_size: int = 10 * MB  # larger attachments are recorded as omitted
    max_attachments: int = 20  # attachments past this count are recorded as omitted
    max_attachments_total: int = 25 * MB
    default_language: str = "en"
    languages: tuple[str, ...] = ("en", "pl", "de")  # languages we write mail in
    worker_batch: int = 50
    # Mails processed per commit: one disk flush per group, not per mail.
    commit_every: int = 25
    # After a quiet spell, how long the worker lets arriving mail gather before it claims a batch.
    gather_seconds: float = 0.02
    claim_lease_seconds: float = 300.0
    max_attempts: int = 3  # a mail that kills the worker this often is quarantined
    # Seconds the pure part of processing one mail (parsing) may take in its child process before
    # the mail is quarantined as too slow; 0 parses in the worker itself, without a budget.
    processing_budget: float = 10.0
    # Child processes that parse a claimed group's mails side by side, each within the budget;
    # 0: one per CPU this process may run on.
    workers: int = 0
    # What one mail may put into the database; the rest is counted on the ticket as omitted.
    max_references: int = 100  # In-Reply-To and References ids kept (the first and the newest)
    max_participants: int = 50  # To and Cc addresses kept, so at most this many join a ticket
    max_attachment_rows: int = 100  # attachments listed, with or without their content

    @property
    def parse_workers(self) -> int:
        """How many parser processes run: `workers`, or one per usable CPU when it is 0."""
        if self.workers > 0:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
