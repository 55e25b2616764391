"""What the IMAP poller tests share: mails, a config for the private Dovecot, a running poller (in a
thread or a process of its own), counting."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.imap_config import ImapMailboxConfig
from intake.imap_poller import MailboxPoller
from intake.imap_state import MailboxStatus, mailbox_statuses
from intake.raw_queue import RawStore
from models.mailbox_state import MailboxConnState
from models.raw_message import RawMessage
from tests.conftest import REPO_ROOT
from tests.servers.dovecot import DovecotServer

SEEN = b"\\Seen"


def mail(n: int, tag: str = "m", size: int = 0) -> bytes:
    """A small mail with its own Message-ID; `size` pads the body to vary sizes."""
    body = f"Hello, this is mail {n}.\r\n" + ("x" * 76 + "\r\n") * (size // 78)
    return (
        f"From: Requester {n} <r{n}@example.com>\r\nTo: support@example.test\r\n"
        f"Subject: {tag} number {n}\r\nMessage-ID: <{tag}-{n}@example.com>\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n{body}"
    ).encode()


def dovecot_mailbox(server: DovecotServer, user: str = "alice", **values: Any) -> dict[str, Any]:
    """The keys of an [[imap]] section for a user of the private Dovecot (plain IMAP), and `values`."""
    account = {"name": user, "host": server.host, "port": server.imap_port, "tls": "none", "user": user}
    return {**account, "password": server.users[user], **values}


def config_for(server: DovecotServer, user: str = "alice", **overrides: Any) -> ImapMailboxConfig:
    """Plain IMAP on the private server, quick retries, small polls."""
    quick = {"backoff_initial": 0.05, "backoff_max": 0.5, "poll_interval": 0.2}
    timeouts = {"connect_timeout": 5.0, "read_timeout": 10.0}
    return ImapMailboxConfig(**dovecot_mailbox(server, user, **{**quick, **timeouts, **overrides}))


@contextmanager
def poller_process(
    db_url: str, config: dict[str, Any], log: Path, *, pause_after_commit: float = 0.0
) -> Iterator[subprocess.Popen[bytes]]:
    """A poller in a process of its own (tests/intake/imap_child.py), for tests that kill it or
    measure it; stopped with SIGTERM (then SIGKILL) on exit."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.intake.imap_child",
                db_url,
                json.dumps(config),
                str(pause_after_commit),
            ],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def poller_for(server: DovecotServer, sessions: sessionmaker[Session], **overrides: Any) -> MailboxPoller:
    return MailboxPoller(config_for(server, **overrides), RawStore(sessions), sessions)


@contextmanager
def running(poller: MailboxPoller, *, stop_within: float = 3.0) -> Iterator[threading.Event]:
    """The poller's run loop in a thread; on exit it must have stopped within `stop_within` seconds."""
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), name=f"poller-{poller.config.name}")
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(stop_within)
        assert not thread.is_alive(), "the poller did not stop in time"


def raw_count(sessions: sessionmaker[Session], source: str | None = None) -> int:
    with sessions() as session:
        query = select(func.count()).select_from(RawMessage)
        if source is not None:
            query = query.where(RawMessage.source == source)
        return session.scalar(query) or 0


def raw_rows(sessions: sessionmaker[Session]) -> list[RawMessage]:
    with sessions() as session:
        return list(session.scalars(select(RawMessage).order_by(RawMessage.id)))


def status_of(sessions: sessionmaker[Session], name: str) -> MailboxStatus | None:
    return next((s for s in mailbox_statuses(sessions) if s.name == name), None)


def state_of(sessions: sessionmaker[Session], name: str) -> MailboxConnState | None:
    status = status_of(sessions, name)
    return status.state if status is not None else None


def seen_count(server: DovecotServer, user: str, folder: str = "INBOX") -> int:
    return sum(SEEN in flags for flags in server.flags(user, folder).values())
