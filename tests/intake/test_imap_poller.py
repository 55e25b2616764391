"""The IMAP poller against a real, private Dovecot: push, batches, cut-off and history, move, TLS, cron."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import MailboxAuthError, MailboxError
from intake.imap_poller import MailboxPoller
from intake.raw_queue import RawStore
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.mailbox_state import MailboxConnState
from models.raw_message import RawStatus
from tests.intake.imap_helpers import (
    SEEN,
    config_for,
    mail,
    poller_for,
    raw_count,
    raw_rows,
    running,
    seen_count,
    state_of,
    status_of,
)
from tests.loopback import wait_until
from tests.servers.dovecot import DovecotServer
from tests.servers.fixtures import DovecotFactory

Sessions = sessionmaker[Session]


def test_mail_appended_while_idling_is_stored_within_two_seconds(
    dovecot: DovecotServer, sessions: sessionmaker[Session]
) -> None:
    poller = poller_for(dovecot, sessions)
    with running(poller):
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE)
        started = time.monotonic()
        uid = dovecot.append("alice", "INBOX", mail(1))
        assert wait_until(lambda: raw_count(sessions) == 1, timeout=2.0), "not stored within 2 s"
        elapsed = time.monotonic() - started
        assert wait_until(lambda: seen_count(dovecot, "alice") == 1, timeout=2.0)
    (row,) = raw_rows(sessions)
    uidvalidity = dovecot.uidvalidity("alice")
    assert row.source == "imap:alice"
    assert row.source_key == f"imap:alice:{uidvalidity}:{uid}"
    assert row.data == mail(1)
    assert row.backfill is False
    status = status_of(sessions, "alice")
    assert status is not None
    assert status.state is MailboxConnState.STOPPED
    assert status.idle_supported is True
    assert (status.uidvalidity, status.last_uid, status.stored_count) == (uidvalidity, uid, 1)
    assert elapsed < 2.0


@pytest.mark.slow
def test_a_thousand_waiting_mails_are_stored_exactly_once(
    dovecot: DovecotServer, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="helpdesk.intake.imap")
    poller = poller_for(dovecot, sessions, batch_size=100)
    poller.fetch_once()  # the mailbox is added empty; what arrives from now on is new mail
    dovecot.append_many("alice", "INBOX", (mail(n, size=(n % 7) * 900) for n in range(1000)))
    with running(poller):
        assert wait_until(lambda: raw_count(sessions) >= 1000, timeout=60)
        assert wait_until(lambda: seen_count(dovecot, "alice") == 1000, timeout=10)
    rows = raw_rows(sessions)
    assert len(rows) == 1000
    assert len({row.source_key for row in rows}) == 1000
    assert len({row.message_id for row in rows}) == 1000
    assert not any(row.backfill for row in rows)
    fetched = [r.getMessage() for r in caplog.records if "FETCHED" in r.getMessage()]
    assert fetched and "FETCHED 1000 new (uid 1-1000)" in fetched[0]
    status = status_of(sessions, "alice")
    assert status is not None and status.stored_count == 1000 and status.last_uid == 1000


def test_polls_a_server_without_idle(
    dovecot_factory: DovecotFactory, sessions: sessionmaker[Session]
) -> None:
    server = dovecot_factory(capabilities=["IMAP4rev1", "LITERAL+", "UIDPLUS", "MOVE"])
    poller = poller_for(server, sessions, poll_interval=0.3)
    with running(poller):
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.POLLING)
        server.append("alice", "INBOX", mail(1))
        assert wait_until(lambda: raw_count(sessions) == 1, timeout=3)
    status = status_of(sessions, "alice")
    assert status is not None and status.idle_supported is False


def test_stop_returns_promptly_while_idling(dovecot: DovecotServer, sessions: Sessions) -> None:
    poller = poller_for(dovecot, sessions, idle_timeout=600)
    with running(poller, stop_within=2.0) as stop:
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE)
        stop.set()


def test_since_leaves_older_mail_alone_and_imports_history_as_backfill(
    dovecot: DovecotServer, sessions: sessionmaker[Session]
) -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    dovecot.append("alice", "INBOX", mail(1, "ancient"), internal_date=datetime(2020, 5, 1, 12, tzinfo=UTC))
    dovecot.append("alice", "INBOX", mail(2, "last-year"), internal_date=datetime(2025, 6, 1, 12, tzinfo=UTC))
    dovecot.append("alice", "INBOX", mail(3, "recent"), internal_date=an_hour_ago)
    poller = poller_for(dovecot, sessions, since=date(2025, 1, 1))
    report = poller.fetch_once()
    assert (report.stored, report.backfilled, report.skipped) == (2, 2, 0)
    dovecot.append("alice", "INBOX", mail(4, "new"))
    report = poller.fetch_once()
    assert (report.stored, report.backfilled) == (1, 0)
    rows = {row.message_id: row.backfill for row in raw_rows(sessions)}
    assert rows == {"last-year-2@example.com": True, "recent-3@example.com": True, "new-4@example.com": False}
    # The mail before `since` is neither imported nor touched.
    flags = dovecot.flags("alice")
    assert SEEN not in flags[1]
    assert all(SEEN in flags[uid] for uid in (2, 3, 4))


def test_default_cutoff_is_the_moment_the_mailbox_was_added(
    dovecot: DovecotServer, sessions: sessionmaker[Session]
) -> None:
    dovecot.append("alice", "INBOX", mail(1, "old"), internal_date=datetime.now(UTC) - timedelta(hours=3))
    dovecot.append("alice", "INBOX", mail(2, "older"), internal_date=datetime.now(UTC) - timedelta(days=40))
    poller = poller_for(dovecot, sessions)
    report = poller.fetch_once()
    assert (report.stored, report.skipped) == (0, 1)  # the 40-day-old one is not even examined
    dovecot.append("alice", "INBOX", mail(3, "new"))
    assert poller.fetch_once().stored == 1
    assert [row.message_id for row in raw_rows(sessions)] == ["new-3@example.com"]
    status = status_of(sessions, "alice")
    assert status is not None and status.last_uid == 3


@pytest.mark.parametrize(
    "capabilities",
    [
        None,  # UID MOVE (RFC 6851)
        ["IMAP4rev1", "LITERAL+", "IDLE", "UIDPLUS"],  # COPY + UID EXPUNGE (RFC 4315)
        ["IMAP4rev1", "LITERAL+", "IDLE"],  # COPY + EXPUNGE (RFC 3501)
    ],
    ids=["move", "uidplus", "expunge"],
)
def test_processed_mail_is_moved(
    dovecot_factory: DovecotFactory, sessions: sessionmaker[Session], capabilities: list[str] | None
) -> None:
    server = dovecot_factory(capabilities=capabilities)
    poller = poller_for(server, sessions, processed="move:Processed", batch_size=3)
    poller.fetch_once()
    server.append_many("alice", "INBOX", (mail(n) for n in range(7)))
    report = poller.fetch_once()
    assert report.stored == 7
    assert server.flags("alice") == {}
    assert len(server.flags("alice", "Processed")) == 7
    assert raw_count(sessions) == 7


def test_fetch_once_reports_and_records(dovecot: DovecotServer, sessions: Sessions) -> None:
    poller = poller_for(dovecot, sessions)
    first = poller.fetch_once()
    assert (first.stored, first.first_uid, first.uidvalidity) == (0, None, dovecot.uidvalidity("alice"))
    dovecot.append_many("alice", "INBOX", (mail(n) for n in range(3)))
    report = poller.fetch_once()
    assert (report.stored, report.duplicates, report.first_uid, report.last_uid) == (3, 0, 1, 3)
    assert poller.fetch_once().stored == 0
    status = status_of(sessions, "alice")
    assert status is not None
    assert status.state is MailboxConnState.DISCONNECTED
    assert status.last_success_at is not None and status.last_error is None


def test_a_mail_over_max_message_size_is_left_on_the_server_and_quarantined(
    dovecot: DovecotServer, sessions: Sessions
) -> None:
    # 40 MB over IMAP, where SMTP refuses anything over 25 MB ([smtp] max_message_size).
    poller = poller_for(dovecot, sessions)
    poller.fetch_once()  # the mailbox is added before the mail arrives
    big_uid = dovecot.append("alice", "INBOX", mail(1, "big", size=40 * 1024 * 1024))
    small_uid = dovecot.append("alice", "INBOX", mail(2))
    report = poller.fetch_once()
    assert report.stored == 1, f"{report.stored} stored: the 40 MB mail was taken"
    assert report.too_large == 1
    big, small = raw_rows(sessions)
    assert small.status is RawStatus.RECEIVED and small.data == mail(2)
    # Recorded with its size, UID and why, under the key a re-fetch would use; its header kept.
    assert big.status is RawStatus.FAILED
    assert big.size > 40 * 1024 * 1024
    assert big.source_key == f"imap:alice:{dovecot.uidvalidity('alice')}:{big_uid}"
    assert big.error is not None
    assert f"uid {big_uid}" in big.error and "max_message_size 26214400" in big.error
    assert big.message_id == "big-1@example.com" and b"Subject: big number 1" in big.data
    assert len(big.data) < 1024
    # Left on the server for a person: not flagged (the small one is); the cursor went past both.
    flags = dovecot.flags("alice")
    assert SEEN not in flags[big_uid] and SEEN in flags[small_uid]
    status = status_of(sessions, "alice")
    assert status is not None and status.last_uid == small_uid
    assert poller.fetch_once().too_large == 0
    assert raw_count(sessions) == 2


def test_fetch_once_raises_when_login_is_refused(
    dovecot: DovecotServer, sessions: sessionmaker[Session]
) -> None:
    poller = poller_for(dovecot, sessions, password="wrong")
    with pytest.raises(MailboxAuthError, match="AUTHENTICATIONFAILED"):
        poller.fetch_once()
    status = status_of(sessions, "alice")
    assert status is not None and status.state is MailboxConnState.AUTH_FAILED
    assert status.last_error is not None and "Authentication failed" in status.last_error


def test_fetch_once_raises_when_the_server_is_gone(
    dovecot: DovecotServer, sessions: sessionmaker[Session]
) -> None:
    dovecot.stop(graceful=False)
    with pytest.raises(MailboxError, match="cannot connect"):
        poller_for(dovecot, sessions).fetch_once()


def test_tls_starttls_and_certificate_checks(dovecot: DovecotServer, sessions: Sessions) -> None:
    dovecot.append("alice", "INBOX", mail(1), internal_date=datetime(2026, 1, 5, tzinfo=UTC))
    secure = poller_for(
        dovecot,
        sessions,
        tls="ssl",
        port=dovecot.imaps_port,
        tls_ca_file=dovecot.cert_file,
        since=date(2026, 1, 1),
    )
    assert secure.fetch_once().stored == 1
    starttls = poller_for(
        dovecot, sessions, tls="starttls", tls_ca_file=dovecot.cert_file, name="alice-starttls"
    )
    assert starttls.fetch_once().uidvalidity == dovecot.uidvalidity("alice")
    untrusted = poller_for(dovecot, sessions, tls="ssl", port=dovecot.imaps_port, name="alice-untrusted")
    with pytest.raises(MailboxError, match=r"(?i)certificate"):
        untrusted.fetch_once()


def test_xoauth2_token_from_a_command(dovecot: DovecotServer, sessions: Sessions) -> None:
    # This Dovecot checks an XOAUTH2 token as it would a password: enough to prove the exchange.
    command = (sys.executable, "-c", "print('bob-secret')")
    poller = poller_for(dovecot, sessions, user="bob", password=None, oauth2_token_command=command)
    assert poller.fetch_once().uidvalidity == dovecot.uidvalidity("bob")
    failing = poller_for(
        dovecot,
        sessions,
        user="bob",
        name="bob2",
        password=None,
        oauth2_token_command=(sys.executable, "-c", "1/0"),
    )
    with pytest.raises(MailboxAuthError, match="ZeroDivisionError"):
        failing.fetch_once()


def test_password_file_is_read_at_each_login(
    dovecot: DovecotServer, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    secret = tmp_path / "alice.password"
    poller = poller_for(dovecot, sessions, password=None, password_file=secret)
    with pytest.raises(MailboxAuthError, match="cannot read password_file"):
        poller.fetch_once()
    secret.write_text(dovecot.users["alice"] + "\n")
    assert poller.fetch_once().uidvalidity is not None
    dovecot.set_password("alice", "rotated")
    secret.write_text("rotated\n")
    assert poller.fetch_once().uidvalidity is not None


@pytest.fixture
def pg_sessions(pg_url: str) -> Iterator[Sessions]:
    engine = create_db_engine(DatabaseConfig(url=pg_url))
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def test_on_postgresql_with_a_uidvalidity_above_two_to_the_31(
    dovecot: DovecotServer, pg_sessions: Sessions
) -> None:
    big = 4_000_000_000  # UIDVALIDITY is an unsigned 32-bit number (RFC 3501 section 9: nz-number)
    poller = poller_for(dovecot, pg_sessions, batch_size=20)
    poller.fetch_once()
    dovecot.recreate_mailbox("alice", uidvalidity=big)
    dovecot.append_many("alice", "INBOX", (mail(n) for n in range(50)))
    with running(poller):
        assert wait_until(lambda: raw_count(pg_sessions) == 50, timeout=20)
        dovecot.append("alice", "INBOX", mail(50))
        assert wait_until(lambda: raw_count(pg_sessions) == 51, timeout=3)
    status = status_of(pg_sessions, "alice")
    assert status is not None and (status.uidvalidity, status.stored_count) == (big, 51)
    assert raw_rows(pg_sessions)[0].source_key == f"imap:alice:{big}:1"


def test_a_poller_run_again_resumes_where_another_process_left_the_mailbox(
    dovecot: DovecotServer, sessions: Sessions
) -> None:
    # Two daemons share the mailbox: `a` reads it, loses the election, `b` reads on, `a` wins again.
    a, b = (MailboxPoller(config_for(dovecot), RawStore(sessions), sessions, holder=h) for h in "ab")
    with running(a):
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE)
    with running(b):
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE)
        dovecot.append_many("alice", "INBOX", (mail(n) for n in range(3)))
        assert wait_until(lambda: getattr(status_of(sessions, "alice"), "last_uid", 0) == 3)
    with running(a):
        assert wait_until(lambda: getattr(status_of(sessions, "alice"), "holder", None) == "a")
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE)
    status = status_of(sessions, "alice")
    assert status is not None
    # It started from the record, not from what it knew before: nothing was read twice.
    assert (status.last_uid, status.stored_count, status.duplicate_count) == (3, 3, 0)
