"""Mail that arrives between two of the poller's commands is fetched at once, not ~30 s later.

An IMAP server announces new mail (`* n EXISTS`) at the end of a command, from a view of the
folder it refreshes only then (RFC 3501 section 5.2): a SEARCH sent a moment after a mail
arrived does not find it, and the announcement that comes with its answer is the only one. The
poller used to ignore it and go to IDLE, and Dovecot tells an idling client about mail it has
already announced only at its next 30-second recheck. Both windows are hit here on purpose.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from intake.imap_client import MailNotices, connect, log_in
from intake.imap_fetch import Counts, Cursor, FolderFetcher
from intake.imap_poller import MailboxPoller
from intake.raw_queue import RawStore
from models.mailbox_state import MailboxConnState
from tests.intake.imap_helpers import config_for, mail, raw_count, running, state_of
from tests.loopback import wait_until
from tests.servers.dovecot import DovecotServer

Sessions = sessionmaker[Session]


def test_mail_announced_with_the_answer_to_the_last_search_is_fetched_in_the_same_check(
    dovecot: DovecotServer, sessions: Sessions
) -> None:
    dovecot.append("alice", "INBOX", mail(1))
    config = config_for(dovecot)
    client = connect(config)
    try:
        log_in(client, config)
        selected = client.select_folder("INBOX")
        cursor = Cursor(
            uidvalidity=int(selected[b"UIDVALIDITY"]),
            last_uid=0,
            added_at=datetime.now(UTC) - timedelta(hours=1),
        )
        arrived: list[int] = []

        def on_advance(counts: Counts) -> None:
            # Between flagging mail 1 and the search that should find nothing more: mail 2.
            if not arrived:
                arrived.append(dovecot.append("alice", "INBOX", mail(2)))

        fetcher = FolderFetcher(config, RawStore(sessions), cursor, threading.Event(), on_advance)
        report = fetcher.drain(client, None)
    finally:
        client.logout()
    assert arrived == [2]
    assert (report.stored, report.first_uid, report.last_uid) == (2, 1, 2)
    assert raw_count(sessions) == 2


class _MailAfterTheLastSearch(MailboxPoller):
    """A poller that gets a mail delivered right after its first check, before it idles."""

    def __init__(self, server: DovecotServer, sessions: Sessions) -> None:
        super().__init__(config_for(server), RawStore(sessions), sessions)
        self.server = server
        self.appended_at: float | None = None

    def _succeeded(self) -> None:
        super()._succeeded()
        if self.appended_at is None:
            self.server.append("alice", "INBOX", mail(1, "late"))
            self.appended_at = time.monotonic()


def test_mail_arriving_just_before_idle_is_fetched_within_two_seconds(
    dovecot: DovecotServer, sessions: Sessions
) -> None:
    poller = _MailAfterTheLastSearch(dovecot, sessions)
    with running(poller):
        assert wait_until(lambda: poller.appended_at is not None, timeout=30)
        assert wait_until(lambda: raw_count(sessions) == 1, timeout=30)
        assert poller.appended_at is not None
        elapsed = time.monotonic() - poller.appended_at
        assert wait_until(lambda: state_of(sessions, "alice") is MailboxConnState.IDLE)
    assert elapsed < 2.0, f"stored {elapsed:.1f} s after it arrived"


def _answered(**untagged: list[bytes]) -> Any:
    """Stands in for a client whose last command's answer carried these untagged responses."""
    return SimpleNamespace(_imap=SimpleNamespace(untagged_responses=dict(untagged)))


def test_a_server_that_repeats_the_folder_size_costs_one_search_not_a_loop() -> None:
    notices = MailNotices()
    assert not notices.take(_answered(EXISTS=[b"5"]))  # the answer to SELECT: the search covers it
    assert not notices.take(_answered(EXISTS=[b"5"]))  # said again without a change
    assert notices.take(_answered(EXISTS=[b"6"]))  # grew
    assert not notices.take(_answered())
    # Our MOVE expunges; afterwards an equal size still means new mail, once.
    assert not notices.take(_answered(EXPUNGE=[b"1"]))
    assert notices.take(_answered(EXISTS=[b"6"]))
    assert not notices.take(_answered(EXISTS=[b"6"]))
    # Sizes told during IDLE count as known.
    notices.heard([(7, b"EXISTS"), (b"OK", b"Still here")])
    assert not notices.take(_answered(EXISTS=[b"7"]))
    notices.heard([(3, b"EXPUNGE")])
    assert notices.take(_answered(EXISTS=[b"7"]))
