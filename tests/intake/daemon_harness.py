"""Running the real daemon in tests: a desk directory with its helpdesk.toml, `helpdesk serve` and
`helpdesk ingest` as child processes, and counting what came out (tickets, acknowledgments).

"Exactly once" is counted where a requester would notice: one ticket per mail (by Message-ID),
one acknowledgment per ticket in the outbox, and one acknowledgment file per mail in the maildir
the sender writes to.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from helpdesk.settings.reader import toml_value
from intake.imap_state import MailboxStatus, mailbox_statuses
from intake.raw_queue import extract_message_id
from models.db import DatabaseConfig, create_db_engine, migrate, read_only, session_factory
from models.mailbox_state import MailboxConnState
from models.outbox import OutboxMessage
from models.raw_message import RawMessage, RawOutcome
from models.ticket import Ticket
from tests.conftest import REPO_ROOT
from tests.intake.imap_helpers import dovecot_mailbox
from tests.loopback import free_port, wait_until
from tests.mail import SUPPORT, send_mail, wait_for_listener
from tests.servers.dovecot import DovecotServer

# What the daemon gets to start (imports, migrations check, listener) on a busy 2-core machine.
START_TIMEOUT = 60.0
# How long a graceful stop (SIGTERM) may take: the parts get 10 s, the poller far less.
STOP_TIMEOUT = 30.0


def imap_section(server: DovecotServer, user: str, **overrides: Any) -> dict[str, Any]:
    """An [[imap]] section for a user of the private Dovecot: plain IMAP, quick reconnects."""
    quick = {"backoff_initial": 0.2, "backoff_max": 1.0, "connect_timeout": 10.0, "read_timeout": 30.0}
    return dovecot_mailbox(server, user, **{**quick, **overrides})


def idle_past(uid: int) -> Callable[[MailboxStatus], bool]:
    """A condition for `DaemonDesk.wait_mailbox`: everything up to `uid` handled, waiting for mail again."""
    return lambda status: status.last_uid >= uid and status.state is MailboxConnState.IDLE


def as_utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Outcome:
    """What a desk made of its mail, counted in the database and in the outgoing maildir."""

    tickets: int
    opening_ids: list[str]  # Message-IDs of the mails that opened a ticket (one per ticket)
    raw_rows: int
    acks: list[int]  # ticket of each acknowledgment in the outbox
    sent_replies_to: list[str]  # In-Reply-To of each file in the outgoing maildir

    def assert_each_once(
        self, message_ids: Sequence[str], *, acknowledged: Sequence[str] | None = None
    ) -> None:
        """Every mail opened exactly one ticket; the `acknowledged` ones (default: all) got one ack each."""
        expected = sorted(message_ids)
        acked = sorted(message_ids if acknowledged is None else acknowledged)
        assert self.tickets == len(expected), f"{self.tickets} tickets for {len(expected)} mails"
        assert sorted(self.opening_ids) == expected
        assert self.raw_rows == len(expected), f"{self.raw_rows} stored rows for {len(expected)} mails"
        assert len(self.acks) == len(acked), f"{len(self.acks)} acknowledgments queued for {len(acked)}"
        assert len(set(self.acks)) == len(self.acks), "a ticket got two acknowledgments"
        assert sorted(self.sent_replies_to) == acked, "the maildir does not hold one ack per mail"


class Served:
    """One `helpdesk serve` child process, its log file and its SMTP port."""

    def __init__(self, desk: DaemonDesk, log: Path, smtp_port: int) -> None:
        self.desk = desk
        self.log = log
        self.smtp_port = smtp_port
        self._out: IO[bytes] = log.open("ab")
        # The environment overrides the file (HELPDESK_<SECTION>_<KEY>): a second process on the
        # same config only needs its own SMTP port.
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HELPDESK_SMTP_LISTEN": f"127.0.0.1:{smtp_port}"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "helpdesk.cli", "--config", str(desk.config), "serve"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=desk.root,
        )

    @property
    def holder(self) -> str:
        """How this process names itself in `mailbox_states.holder` (host:pid)."""
        return f"{socket.gethostname()}:{self.proc.pid}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the SMTP listener answers (the daemon starts its parts right before it)."""
        wait_for_listener(self.smtp_port, self.proc, self.log, timeout)

    def kill(self) -> None:
        """SIGKILL: no graceful anything."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(STOP_TIMEOUT)
        self._out.close()

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(STOP_TIMEOUT)
        finally:
            if self.alive():
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
            self._out.close()
        return code

    def send_mail(self, data: bytes, sender: str = "walkin@example.com") -> None:
        send_mail(self.smtp_port, data, sender=sender, timeout=30)


class DaemonDesk:
    """A helpdesk installation in a directory: config, schema, and helpers to run and inspect it."""

    def __init__(self, root: Path, db_url: str, mailboxes: Sequence[Mapping[str, Any]]) -> None:
        self.root = root
        self.db_url = db_url
        self.config = root / "helpdesk.toml"
        self.smtp_port = free_port()
        self.sent = root / "var" / "sent"
        self.served: list[Served] = []
        self.write_config(mailboxes)
        self.engine: Engine = create_db_engine(DatabaseConfig(url=db_url, sqlite_synchronous="NORMAL"))
        migrate(self.engine)
        # Reading only, and on SQLite without taking the write lock the daemon needs.
        self.sessions: sessionmaker[Session] = session_factory(read_only(self.engine))

    def write_config(self, mailboxes: Sequence[Mapping[str, Any]]) -> None:
        lines = [
            "[mail]",
            f"address = {toml_value(SUPPORT)}",
            'secret = "daemon-test-secret"',
            'instance = "helpdesk-daemon-test"',
            "[database]",
            f"url = {toml_value(self.db_url)}",
            # Fewer disk flushes; WAL with NORMAL still survives the death of the process.
            'sqlite_synchronous = "NORMAL"',
            "[smtp]",
            f"listen = {toml_value(f'127.0.0.1:{self.smtp_port}')}",
            "[outgoing]",
            'url = "maildir:var/sent"',
            # No dashboard: desks run side by side, and the default port is one for all of them.
            "[web]",
            'listen = ""',
            # These desks are measured on every mail acknowledged exactly once through crashes, with
            # all senders in one domain: the budgets against forged floods are tested elsewhere.
            "[limits]",
            "automatic_per_hour = 1000000",
            "automatic_per_domain_per_hour = 1000000",
        ]
        for section in mailboxes:
            lines.append("[[imap]]")
            lines += [f"{key} = {toml_value(value)}" for key, value in section.items()]
        self.config.write_text("\n".join(lines) + "\n")

    # -- processes -------------------------------------------------------------------------------

    def serve(self, *, smtp_port: int | None = None, log_name: str = "serve.log") -> Served:
        """Start `helpdesk serve` (on another SMTP port when given: a second process, same desk)."""
        served = Served(self, self.root / log_name, smtp_port or self.smtp_port)
        self.served.append(served)
        return served

    def cli(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        return subprocess.run(
            [sys.executable, "-m", "helpdesk.cli", "--config", str(self.config), *args],
            env=env,
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def status_json(self) -> dict[str, Any]:
        done = self.cli("status", "--json")
        assert done.returncode == 0, done.stderr
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    def close(self) -> None:
        for served in self.served:
            if served.alive():
                served.kill()
        self.engine.dispose()

    # -- what the database says ------------------------------------------------------------------

    def mailbox(self, name: str) -> MailboxStatus | None:
        return next((s for s in mailbox_statuses(self.sessions) if s.name == name), None)

    def wait_mailbox(
        self, name: str, condition: Callable[[MailboxStatus], bool], timeout: float = 30.0
    ) -> MailboxStatus:
        """Until the mailbox's recorded status meets `condition`; returns that status."""
        seen: list[MailboxStatus] = []

        def met() -> bool:
            status = self.mailbox(name)
            if status is None:
                return False
            seen[:] = [status]
            return condition(status)

        assert wait_until(met, timeout, 0.05), f"mailbox {name}: {seen[0] if seen else 'never recorded'}"
        return seen[0]

    def wait_state(self, name: str, *states: MailboxConnState, timeout: float = 30.0) -> MailboxStatus:
        return self.wait_mailbox(name, lambda status: status.state in states, timeout)

    def ticket_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(Ticket)) or 0

    def raw_count(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(RawMessage)) or 0

    def ticket_for(self, message_id: str) -> Ticket | None:
        """The ticket a mail opened, once the worker has committed it."""
        with self.sessions() as session:
            ticket_id = session.scalar(
                select(RawMessage.ticket_id).where(
                    RawMessage.message_id == message_id, RawMessage.outcome == RawOutcome.TICKET.value
                )
            )
            return session.get(Ticket, ticket_id) if ticket_id is not None else None

    def wait_ticket(self, message_id: str, timeout: float = 30.0) -> Ticket:
        """The ticket mail `message_id` opened, once it is committed."""
        found: list[Ticket] = []

        def opened() -> bool:
            ticket = self.ticket_for(message_id)
            found[:] = [ticket] if ticket is not None else []
            return bool(found)

        assert wait_until(opened, timeout, 0.02), f"no ticket for <{message_id}> within {timeout:.0f} s"
        return found[0]

    def sent_files(self) -> list[Path]:
        return [
            p for sub in ("new", "cur") if (self.sent / sub).is_dir() for p in (self.sent / sub).iterdir()
        ]

    def outcome(self) -> Outcome:
        with self.sessions() as session:
            tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
            opening = list(
                session.scalars(
                    select(RawMessage.message_id).where(RawMessage.outcome == RawOutcome.TICKET.value)
                )
            )
            raw_rows = session.scalar(select(func.count()).select_from(RawMessage)) or 0
            acks = [
                int(t)
                for t in session.scalars(select(OutboxMessage.ticket_id).where(OutboxMessage.kind == "ack"))
                if t is not None
            ]
        replies_to: list[str] = []
        for path in self.sent_files():
            headers = BytesHeaderParser(policy=compat32).parsebytes(path.read_bytes())
            replies_to.append(extract_message_id(headers.get("In-Reply-To")) or f"? {path.name}")
        return Outcome(
            tickets=tickets,
            opening_ids=[m or "?" for m in opening],
            raw_rows=raw_rows,
            acks=acks,
            sent_replies_to=replies_to,
        )

    def wait_settled(self, tickets: int, acks: int, timeout: float = 120.0) -> Outcome:
        """Until `tickets` tickets exist and `acks` acknowledgments lie in the maildir (and no more come)."""

        def done() -> bool:
            return self.ticket_count() >= tickets and len(self.sent_files()) >= acks

        assert wait_until(done, timeout, 0.1), (
            f"after {timeout:.0f} s: {self.ticket_count()} of {tickets} tickets, "
            f"{len(self.sent_files())} of {acks} acknowledgments"
        )
        time.sleep(1.5)  # anything more (a duplicate) would come within a worker and a sender round
        return self.outcome()


DeskFactory = Callable[..., DaemonDesk]
