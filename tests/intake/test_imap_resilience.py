"""The IMAP poller when things go wrong, against a real Dovecot: every mail lands exactly once anyway.

Server stopped or killed in the middle of a batch, the poller's own process killed with SIGKILL,
a new UIDVALIDITY, a refused login next to a healthy mailbox, a raw queue that cannot store.
"Exactly once" is counted in the raw queue (rows in raw_messages).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import StoreError
from intake.imap_poller import MailboxPoller
from intake.raw_queue import Incoming, RawStore, StoreResult
from models.mailbox_state import MailboxConnState
from tests.intake.imap_helpers import (
    config_for,
    mail,
    poller_for,
    poller_process,
    raw_count,
    raw_rows,
    running,
    seen_count,
    state_of,
    status_of,
)
from tests.loopback import wait_until
from tests.servers.dovecot import DovecotServer

Sessions = sessionmaker[Session]


def assert_each_once(sessions: Sessions, total: int) -> None:
    rows = raw_rows(sessions)
    assert len(rows) == total
    assert len({row.message_id for row in rows}) == total
    assert len({row.source_key for row in rows}) == total


@pytest.mark.slow
@pytest.mark.parametrize("graceful", [True, False], ids=["stopped", "killed"])
def test_server_gone_in_the_middle_of_a_batch(
    dovecot: DovecotServer, sessions: Sessions, graceful: bool
) -> None:
    # Each batch is stored in one commit: the server goes away once the batch 51-100 is
    # committed and before it is flagged.
    total, batch, stop_after = 600, 50, 2
    commits = 0

    def on_stored() -> None:  # runs in the poller's thread, between a commit and the batch's flag
        nonlocal commits
        commits += 1
        if commits == stop_after:
            dovecot.stop(graceful=graceful)

    poller = MailboxPoller(
        config_for(dovecot, batch_size=batch), RawStore(sessions, on_stored=on_stored), sessions
    )
    poller.fetch_once()
    dovecot.append_many("alice", "INBOX", (mail(n, size=(n % 5) * 2000) for n in range(total)))
    with running(poller):
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.BACKOFF, timeout=30)
        status = status_of(sessions, "alice")
        assert status is not None and status.last_error and status.failures >= 1
        # The batch 51-100 is stored, but not flagged: the cursor stays below it.
        assert status.last_uid == batch
        assert raw_count(sessions) == 2 * batch
        dovecot.start()
        assert seen_count(dovecot, "alice") == batch
        assert wait_until(lambda: raw_count(sessions) >= total, timeout=60)
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE, timeout=10)
    assert_each_once(sessions, total)
    assert seen_count(dovecot, "alice") == total
    status = status_of(sessions, "alice")
    assert status is not None and status.duplicate_count == batch  # 51-100, fetched again


@pytest.mark.slow
def test_poller_killed_in_the_middle_of_a_batch(
    dovecot: DovecotServer, db_url: str, sessions: Sessions, tmp_path: Path
) -> None:
    total = 400
    config = {
        "name": "alice",
        "host": dovecot.host,
        "port": dovecot.imap_port,
        "tls": "none",
        "user": "alice",
        "password": dovecot.users["alice"],
        "batch_size": 200,
        "backoff_initial": 0.05,
        "backoff_max": 0.5,
    }
    poller_for(dovecot, sessions).fetch_once()  # the mailbox is added before the mail arrives
    dovecot.append_many("alice", "INBOX", (mail(n) for n in range(total)))
    log = tmp_path / "poller.log"
    # The first process dawdles after each commit, so the kill falls between a commit and its flag.
    with poller_process(db_url, config, log, pause_after_commit=5.0) as first:
        assert wait_until(lambda: raw_count(sessions) >= 50, timeout=30), log.read_text()
        os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)
    stored_at_kill = raw_count(sessions)
    flagged_at_kill = seen_count(dovecot, "alice")
    assert stored_at_kill < total
    assert flagged_at_kill < stored_at_kill, "the kill did not fall between a commit and its flag"
    with poller_process(db_url, config, log):
        assert wait_until(lambda: raw_count(sessions) >= total, timeout=60), log.read_text()
        assert wait_until(lambda: seen_count(dovecot, "alice") == total, timeout=10)
    assert_each_once(sessions, total)
    status = status_of(sessions, "alice")
    assert status is not None and status.state is MailboxConnState.STOPPED
    # The mails stored but not flagged before the kill were fetched again and recognised.
    assert status.duplicate_count >= stored_at_kill - flagged_at_kill


def test_new_uidvalidity_reads_the_folder_again_without_duplicates(
    dovecot: DovecotServer, sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="helpdesk.intake.imap")
    poller = poller_for(dovecot, sessions)
    poller.fetch_once()
    dovecot.append_many("alice", "INBOX", (mail(n) for n in range(5)))
    with running(poller):
        assert wait_until(lambda: raw_count(sessions) == 5)
        new = dovecot.recreate_mailbox("alice")
        assert wait_until(lambda: getattr(status_of(sessions, "alice"), "uidvalidity", None) == new)
        assert wait_until(lambda: getattr(status_of(sessions, "alice"), "duplicate_count", 0) == 5)
        dovecot.append("alice", "INBOX", mail(99))
        assert wait_until(lambda: raw_count(sessions) == 6)
    assert_each_once(sessions, 6)
    assert any("UIDVALIDITY CHANGED" in record.getMessage() for record in caplog.records)


@pytest.mark.slow
def test_refused_login_is_reported_retried_and_the_other_mailbox_works(
    dovecot: DovecotServer, sessions: Sessions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="helpdesk.intake.imap")
    refused = poller_for(dovecot, sessions, password="not-the-password", backoff_max=0.3)
    healthy = poller_for(dovecot, sessions, user="bob")
    with running(refused), running(healthy):
        # Dovecot slows down repeated failures from one address (about 4.5 s each).
        assert wait_until(lambda: getattr(status_of(sessions, "alice"), "failures", 0) >= 2, timeout=30)
        status = status_of(sessions, "alice")
        assert status is not None and status.state is MailboxConnState.AUTH_FAILED
        assert status.last_error == "login refused: [AUTHENTICATIONFAILED] Authentication failed."
        assert wait_until(lambda: state_of(sessions, "bob") is MailboxConnState.IDLE)
        dovecot.append("bob", "INBOX", mail(1))
        assert wait_until(lambda: raw_count(sessions, "imap:bob") == 1, timeout=3)
        dovecot.set_password("alice", "not-the-password")  # the admin fixes it on the server
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE, timeout=30)
    messages = [record.getMessage() for record in caplog.records]
    refusals = [m for m in messages if m.startswith("IMAP alice LOGIN FAILED")]
    assert len(refusals) == 1, "a refused login is logged once, not once per retry"
    assert "Authentication failed" in refusals[0]
    assert any(m.startswith("IMAP alice RECOVERED") for m in messages)


class RawQueueDown(RawStore):
    """A raw queue whose database is down until `down` is cleared (the store's own failure mode)."""

    down = True

    def store_many(self, mails: Iterable[Incoming], commit_every: int = 200) -> Iterator[StoreResult]:
        if self.down:
            raise StoreError("cannot store mail: OperationalError: database is locked")
        return super().store_many(mails, commit_every)


def test_mail_that_cannot_be_stored_stays_on_the_server(dovecot: DovecotServer, sessions: Sessions) -> None:
    store = RawQueueDown(sessions)
    poller = MailboxPoller(config_for(dovecot), store, sessions)
    poller.fetch_once()
    dovecot.append_many("alice", "INBOX", (mail(n) for n in range(3)))
    with running(poller):
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.BACKOFF)
        status = status_of(sessions, "alice")
        assert status is not None and status.last_error and "cannot store mail" in status.last_error
        assert seen_count(dovecot, "alice") == 0
        store.down = False
        assert wait_until(lambda: raw_count(sessions) == 3)
        assert wait_until(lambda: seen_count(dovecot, "alice") == 3)
    assert_each_once(sessions, 3)
