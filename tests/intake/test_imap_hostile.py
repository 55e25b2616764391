"""A hostile or broken IMAP server cannot grow the poller without bound, hold it, or slip it a huge mail.

The server here is fake on purpose (tests/intake/hostile_imap.py): it announces a 3 GB literal and
sends filler for as long as it is read, lies about RFC822.SIZE, floods a command's answer with
three million untagged lines, or falls silent in IDLE. The poller runs in a process of its own so
that its resident memory can be measured (`VmHWM`, the peak, against `VmRSS` once logged in).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from helpdesk.settings import read_mailbox
from intake.imap_client import connect
from intake.imap_poller import MailboxPoller
from intake.raw_queue import RawStore
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.raw_message import RawMessage, RawStatus
from tests.intake.hostile_imap import Behaviour, HostileImapServer, rss_kib
from tests.intake.imap_helpers import mail, poller_process, running, status_of
from tests.loopback import wait_until

GIB = 1024**3
MIB = 1024**2
# What the poller may grow by while a server misbehaves at it.
RSS_GROWTH_LIMIT_KIB = 100 * 1024


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    eng = create_db_engine(DatabaseConfig(url=sqlite_url, sqlite_synchronous="NORMAL"))
    migrate(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return session_factory(engine)


def mailbox(server: HostileImapServer, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": "hostile",
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "user": "alice",
        "password": "secret",
        "since": "2000-01-01",
        "backoff_initial": 0.5,
        "backoff_max": 1.0,
        "connect_timeout": 5.0,
        "read_timeout": 5.0,
    }
    values.update(overrides)
    return values


class Growth:
    """The peak resident memory of a process above what it held once logged in, in KiB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.baseline = rss_kib(pid)[0]

    @property
    def kib(self) -> int:
        return rss_kib(self.pid)[1] - self.baseline

    def stays_small_until(self, condition: Any, timeout: float) -> bool:
        """Waits for `condition`; False as soon as the process has grown past the limit."""
        grown = False

        def over_or_met() -> bool:
            nonlocal grown
            grown = self.kib > RSS_GROWTH_LIMIT_KIB
            return grown or bool(condition())

        return wait_until(over_or_met, timeout, 0.05) and not grown and self.kib <= RSS_GROWTH_LIMIT_KIB


def last_error(sessions: sessionmaker[Session]) -> str:
    status = status_of(sessions, "hostile")
    return (status.last_error or "") if status is not None else ""


@pytest.mark.slow
def test_a_3gb_literal_for_a_mail_announced_as_small_is_refused_unread(
    sqlite_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    behaviour = Behaviour(mails={1: mail(1)}, literal_sizes={1: 3 * GIB})
    log = tmp_path / "poller.log"
    with HostileImapServer(behaviour) as server, poller_process(sqlite_url, mailbox(server), log) as child:
        assert server.wait_for("SELECT"), log.read_text()
        growth = Growth(child.pid)
        refused = growth.stays_small_until(
            lambda: server.connections >= 2 and "literal" in last_error(sessions), 30
        )
        grown = growth.kib
        sent = server.bytes_sent
    assert refused, (
        f"grew by {grown // 1024} MiB; {sent // MIB} MiB sent; last error: {last_error(sessions)!r}"
    )
    # Disconnected with a clear reason, and retried with backoff; nothing stored.
    error = last_error(sessions)
    assert "uid 1" in error and "3221225472" in error, error
    with sessions() as session:
        assert session.scalars(select(RawMessage)).all() == []


@pytest.mark.slow
def test_a_mail_announced_at_3gb_is_recorded_as_too_large_and_the_next_is_fetched(
    sqlite_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    behaviour = Behaviour(
        mails={1: mail(1, "huge"), 2: mail(2)}, announced_sizes={1: 3 * GIB}, literal_sizes={1: 3 * GIB}
    )
    log = tmp_path / "poller.log"
    with HostileImapServer(behaviour) as server, poller_process(sqlite_url, mailbox(server), log) as child:
        assert server.wait_for("SELECT"), log.read_text()
        growth = Growth(child.pid)
        done = growth.stays_small_until(lambda: len(rows(sessions)) == 2, 30)
        grown = growth.kib
    assert done, f"grew by {grown // 1024} MiB; rows {[(r.status, r.error) for r in rows(sessions)]}"
    huge, small = rows(sessions)
    assert small.status is RawStatus.RECEIVED and small.data == mail(2)
    # The huge one is in the quarantine, with its size, UID and why; its headers say who sent it.
    assert huge.status is RawStatus.FAILED
    assert huge.size == 3 * GIB
    assert huge.error is not None
    assert "uid 1" in huge.error and "max_message_size" in huge.error and "left on the server" in huge.error
    assert huge.message_id == "huge-1@example.com"
    assert b"Subject: huge number 1" in huge.data
    assert huge.source_key == "imap:hostile:7:1"


def rows(sessions: sessionmaker[Session]) -> list[RawMessage]:
    with sessions() as session:
        return list(session.scalars(select(RawMessage).order_by(RawMessage.id)))


@pytest.mark.slow
def test_three_million_untagged_lines_are_cut_off_and_the_poller_stays_small(
    sqlite_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    behaviour = Behaviour(mails={1: mail(1)}, flood={"NOOP": 3_000_000})
    log = tmp_path / "poller.log"
    with HostileImapServer(behaviour) as server, poller_process(sqlite_url, mailbox(server), log) as child:
        assert server.wait_for("SELECT"), log.read_text()
        growth = Growth(child.pid)
        # The flood answers the NOOP before IDLE; the second connection is an honest one.
        survived = growth.stays_small_until(lambda: len(server.commands("IDLE")) >= 1, 60)
        grown = growth.kib
        flooded = server.bytes_sent
    assert survived, f"grew by {grown // 1024} MiB after {flooded // MIB} MiB of untagged lines"
    assert server.connections >= 2
    assert "responses" in last_error(sessions), last_error(sessions)
    assert [r.data for r in rows(sessions)] == [mail(1)]


def test_a_server_silent_during_idle_is_noticed_within_the_noop_interval(
    sessions: sessionmaker[Session],
) -> None:
    behaviour = Behaviour(mails={1: mail(1)}, silent_in_idle=True)
    with HostileImapServer(behaviour) as server:
        config = read_mailbox(
            mailbox(server, noop_interval=2.0, read_timeout=1.0, backoff_initial=0.1, backoff_max=0.2)
        )
        poller = MailboxPoller(config, RawStore(sessions), sessions)
        with running(poller):
            idle = server.wait_for("IDLE", timeout=10)
            assert idle is not None
            again = server.wait_for("CONNECT", count=2, timeout=60)
            assert again is not None, "the silent server was never left"
        noticed = again.at - idle.at
    # IDLE is ended after noop_interval; DONE goes unanswered for read_timeout; then a reconnect.
    assert noticed < 2.0 + 1.0 + 2.0, f"noticed after {noticed:.1f} s"
    assert wait_until(lambda: "timed out" in last_error(sessions), timeout=1) or server.connections >= 2


def test_the_imap_socket_has_tcp_keepalive() -> None:
    with HostileImapServer(Behaviour()) as server:
        client = connect(read_mailbox(mailbox(server)))
        try:
            sock = client.socket()
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert 0 < sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) <= 60
        finally:
            client.shutdown()
