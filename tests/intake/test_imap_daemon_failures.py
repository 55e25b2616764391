"""IMAP intake through the real daemon when things break: every mail is still one ticket, acknowledged once.

The IMAP server stopped and started while the daemon works through a backlog; the daemon killed
with SIGKILL in the middle of one and started again; on PostgreSQL, two daemons sharing one
mailbox, the reading one killed and the other taking over. Counted as in test_imap_daemon.py:
tickets by Message-ID, acknowledgments in the outbox and in the outgoing maildir.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models.mailbox_state import MailboxConnState
from tests.intake.daemon_harness import DeskFactory, as_utc, idle_past, imap_section
from tests.intake.imap_helpers import mail, seen_count
from tests.loopback import free_port, wait_until
from tests.mail import make_mail
from tests.servers.dovecot import DovecotServer

IDLE = MailboxConnState.IDLE


def mid(n: int, tag: str) -> str:
    return f"{tag}-{n}@example.com"


@pytest.mark.slow
def test_dovecot_stopped_and_started_in_the_middle_of_a_batch_loses_and_repeats_nothing(
    dovecot: DovecotServer, make_desk: DeskFactory, sqlite_url: str
) -> None:
    # The IMAP side is the same on either database; the poller's own tests run it on both.
    # A graceful stop takes Dovecot about a second, in which the poller stores about a thousand
    # mails now that the worker never holds the write lock while it parses: the backlog is larger
    # than that, and waits on the server before the daemon starts (a poller watching the mailbox
    # keeps up with the appends). A cron run adds the mailbox, so what comes next is new mail.
    total = 2400
    desk = make_desk(sqlite_url, [imap_section(dovecot, "alice", batch_size=50)])
    first = desk.cli("ingest", "--imap", "alice", "--json")
    assert first.returncode == 0, first.stderr
    dovecot.append_many("alice", "INBOX", (mail(n, "cut", size=(n % 5) * 2000) for n in range(total)))
    served = desk.serve()
    assert wait_until(lambda: desk.raw_count() >= 50, 60, 0.01), served.log_text()
    dovecot.stop()  # gracefully: the daemon's connection gets BYE in the middle of its work
    stored_at_stop = desk.raw_count()
    assert stored_at_stop < total, "the server did not go away in the middle of the batch"
    status = desk.wait_state("alice", MailboxConnState.BACKOFF)
    assert status.last_error and status.failures >= 1
    # Nobody restarts the daemon: it keeps accepting SMTP mail and retrying the server.
    served.wait_ready()
    served.send_mail(make_mail(sender="Walk In <walkin@example.com>", message_id="<walkin-1@example.com>"))
    desk.wait_ticket("walkin-1@example.com")
    dovecot.start()
    outcome = desk.wait_settled(tickets=total + 1, acks=total + 1, timeout=240)
    outcome.assert_each_once([mid(n, "cut") for n in range(total)] + ["walkin-1@example.com"])
    desk.wait_mailbox("alice", idle_past(total))
    assert seen_count(dovecot, "alice") == total
    log = served.log_text()
    assert "IMAP alice DISCONNECTED" in log and "IMAP alice RECOVERED" in log
    assert served.alive()
    assert served.stop() == 0


@pytest.mark.slow
def test_daemon_killed_in_the_middle_of_a_batch_and_started_again_handles_each_mail_once(
    dovecot: DovecotServer, make_desk: DeskFactory, db_url: str
) -> None:
    total = 600
    desk = make_desk(db_url, [imap_section(dovecot, "alice", batch_size=50)])
    served = desk.serve(log_name="first.log")
    served.wait_ready()
    desk.wait_state("alice", IDLE)
    dovecot.append_many("alice", "INBOX", (mail(n, "kill", size=(n % 5) * 2000) for n in range(total)))
    # First while the poller works through the backlog (the worker and the sender behind it)...
    assert wait_until(lambda: desk.raw_count() >= 100, 60, 0.01), served.log_text()
    served.kill()
    at_kill = desk.outcome()
    flagged = seen_count(dovecot, "alice")
    print(f"SIGKILL 1: {at_kill.raw_rows} stored, {flagged} flagged, {at_kill.tickets} tickets")
    assert at_kill.raw_rows < total, "killed after the poller had finished"
    # ...then while the sender delivers acknowledgments.
    again = desk.serve(log_name="second.log")
    again.wait_ready()
    sent_before = len(desk.sent_files())
    assert wait_until(lambda: len(desk.sent_files()) >= sent_before + 50, 60, 0.01), again.log_text()
    again.kill()
    sent = len(desk.sent_files())
    print(f"SIGKILL 2: {desk.raw_count()} stored, {desk.ticket_count()} tickets, {sent} acknowledgments")
    assert sent < total, "killed after the sender had finished"
    last = desk.serve(log_name="third.log")
    last.wait_ready()
    outcome = desk.wait_settled(tickets=total, acks=total, timeout=240)
    outcome.assert_each_once([mid(n, "kill") for n in range(total)])
    desk.wait_mailbox("alice", idle_past(total))
    assert seen_count(dovecot, "alice") == total
    assert last.stop() == 0


@pytest.mark.slow
def test_two_daemons_on_postgresql_read_a_mailbox_one_at_a_time_and_take_over(
    dovecot: DovecotServer, make_desk: DeskFactory, pg_url: str
) -> None:
    desk = make_desk(pg_url, [imap_section(dovecot, "alice", batch_size=50)])
    first = desk.serve(log_name="first.log")
    first.wait_ready()
    assert desk.wait_state("alice", IDLE).holder == first.holder
    second = desk.serve(smtp_port=free_port(), log_name="second.log")
    second.wait_ready()
    assert wait_until(lambda: "ELECTION imap:alice held by another process" in second.log_text(), 30)
    dovecot.append_many("alice", "INBOX", (mail(n, "pair") for n in range(50)))
    desk.wait_settled(tickets=50, acks=50)
    assert desk.wait_mailbox("alice", idle_past(50)).holder == first.holder
    assert "IMAP alice CONNECTED" not in second.log_text(), "both daemons read the mailbox"
    # Kill the reader in the middle of a batch; the other one takes over.
    total = 300
    dovecot.append_many("alice", "INBOX", (mail(n, "pair", size=(n % 5) * 2000) for n in range(50, total)))
    assert wait_until(lambda: desk.raw_count() >= 100, 60, 0.01)
    first.kill()
    killed_at = datetime.now(UTC)
    assert desk.raw_count() < total, "killed too late"
    status = desk.wait_mailbox(
        "alice",
        lambda s: s.holder == second.holder and as_utc(s.last_connected_at or killed_at) > killed_at,
        timeout=60,
    )
    assert status.last_connected_at is not None
    takeover = (as_utc(status.last_connected_at) - killed_at).total_seconds()
    print(f"takeover: the standby connected {takeover:.1f} s after the SIGKILL")
    assert takeover < 10.0
    outcome = desk.wait_settled(tickets=total, acks=total, timeout=240)
    outcome.assert_each_once([mid(n, "pair") for n in range(total)])
    desk.wait_mailbox("alice", idle_past(total))
    assert "ELECTION imap:alice won" in second.log_text()
    assert second.stop() == 0
