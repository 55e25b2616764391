"""IMAP intake through the real daemon, counted in tickets and acknowledgments (issue 3's acceptance).

Each test writes a helpdesk.toml with [[imap]] sections for a private Dovecot, runs `helpdesk
serve` (or `helpdesk ingest --imap`) as a child process, and checks what a requester would see:
one ticket per mail and one acknowledgment per ticket, in the outbox and in the outgoing maildir.
Failures (the server stopped, the daemon killed, two daemons sharing a mailbox) are in
test_imap_daemon_failures.py.
"""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from models.mailbox_state import MailboxConnState
from models.ticket import TicketEvent
from tests.intake.daemon_harness import DeskFactory, as_utc, idle_past, imap_section
from tests.intake.imap_helpers import SEEN, mail
from tests.loopback import wait_until
from tests.mail import make_mail
from tests.servers.dovecot import DovecotServer

IDLE = MailboxConnState.IDLE


def mid(n: int, tag: str = "m") -> str:
    """The Message-ID of `mail(n, tag)`."""
    return f"{tag}-{n}@example.com"


@pytest.mark.slow
def test_mail_appended_while_idling_becomes_a_ticket_within_two_seconds(
    dovecot: DovecotServer, make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url, [imap_section(dovecot, "alice")])
    served = desk.serve()
    served.wait_ready()
    desk.wait_state("alice", IDLE)
    latencies: list[float] = []
    for n in range(5):
        appended = datetime.now(UTC)
        uid = dovecot.append("alice", "INBOX", mail(n, "fast"))
        ticket = desk.wait_ticket(mid(n, "fast"))
        # From the APPEND to the moment the worker opened the ticket (its created_at), whatever
        # this test's polling added on top.
        latencies.append((as_utc(ticket.created_at) - appended).total_seconds())
        desk.wait_mailbox("alice", idle_past(uid))
    print(f"APPEND -> ticket: median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s")
    assert max(latencies) < 2.0, latencies
    outcome = desk.wait_settled(tickets=5, acks=5)
    outcome.assert_each_once([mid(n, "fast") for n in range(5)])
    assert served.stop() == 0


@pytest.mark.slow
def test_a_thousand_waiting_mails_become_a_thousand_tickets_each_acknowledged_once(
    dovecot: DovecotServer, make_desk: DeskFactory, sqlite_url: str
) -> None:
    # SQLite, as `make run` has it; a thousand-mail backlog on PostgreSQL is in the failure tests.
    desk = make_desk(sqlite_url, [imap_section(dovecot, "alice")])
    # A cron run on the empty mailbox adds it: what arrives from now on is new mail, not history.
    first = desk.cli("ingest", "--imap", "alice", "--json")
    assert first.returncode == 0, first.stderr
    total = 1000
    dovecot.append_many("alice", "INBOX", (mail(n, "k", size=(n % 7) * 1500) for n in range(total)))
    served = desk.serve()
    served.wait_ready()
    outcome = desk.wait_settled(tickets=total, acks=total, timeout=240)
    outcome.assert_each_once([mid(n, "k") for n in range(total)])
    status = desk.wait_mailbox("alice", idle_past(total))
    assert (status.stored_count, status.duplicate_count) == (total, 0)
    assert served.stop() == 0


@pytest.mark.slow
def test_uidvalidity_reset_makes_no_duplicate_tickets(
    dovecot: DovecotServer, make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url, [imap_section(dovecot, "alice")])
    served = desk.serve()
    served.wait_ready()
    desk.wait_state("alice", IDLE)
    dovecot.append_many("alice", "INBOX", (mail(n, "u") for n in range(10)))
    desk.wait_settled(tickets=10, acks=10)
    # The same mails, flags and dates under a new UIDVALIDITY; Dovecot disconnects the poller.
    new = dovecot.recreate_mailbox("alice")
    desk.wait_mailbox("alice", lambda s: s.uidvalidity == new and s.duplicate_count == 10 and s.state is IDLE)
    dovecot.append("alice", "INBOX", mail(10, "u"))
    outcome = desk.wait_settled(tickets=11, acks=11)
    outcome.assert_each_once([mid(n, "u") for n in range(11)])
    assert "IMAP alice UIDVALIDITY CHANGED" in served.log_text()
    assert served.stop() == 0


@pytest.mark.slow
def test_wrong_password_is_reported_and_everything_else_keeps_working(
    dovecot: DovecotServer, make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(
        db_url,
        [imap_section(dovecot, "alice", password="not-the-password"), imap_section(dovecot, "bob")],
    )
    served = desk.serve()
    served.wait_ready()
    desk.wait_state("alice", MailboxConnState.AUTH_FAILED)
    desk.wait_state("bob", IDLE)
    words = "[AUTHENTICATIONFAILED] Authentication failed."
    boxes = {box["name"]: box for box in desk.status_json()["mailboxes"]}
    assert boxes["alice"]["state"] == "auth_failed"
    assert boxes["alice"]["last_error"] == f"login refused: {words}"
    assert boxes["bob"]["state"] == "idle" and boxes["bob"]["last_error"] is None
    human = desk.cli("status")
    assert "imap alice: auth_failed" in human.stdout and words in human.stdout
    # The other mailbox and the SMTP listener go on as if nothing happened.
    dovecot.append("bob", "INBOX", mail(1, "bob"))
    served.send_mail(make_mail(sender="Walk In <walkin@example.com>", message_id="<walkin-1@example.com>"))
    desk.wait_ticket(mid(1, "bob"))
    desk.wait_ticket("walkin-1@example.com")
    assert served.alive()
    status = desk.mailbox("alice")
    assert status is not None and status.failures >= 1  # and it keeps trying
    refusals = [line for line in served.log_text().splitlines() if "IMAP alice LOGIN FAILED" in line]
    assert len(refusals) == 1, "a refused login is logged once, not at every retry"
    assert f"login refused: {words}" in refusals[0] and "WARNING" in refusals[0]
    # (That it gets in once the password is right, unrestarted: test_imap_resilience.py.)
    assert served.stop() == 0


def test_first_connection_to_a_full_mailbox_imports_history_without_acknowledging_it(
    dovecot: DovecotServer, make_desk: DeskFactory, db_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    since = (now - timedelta(days=10)).date()
    for n in range(3):  # before `since`: never imported
        dovecot.append("alice", "INBOX", mail(n, "old"), internal_date=now - timedelta(days=30))
    for n in range(10, 14):  # after `since`, before the mailbox was added: history
        dovecot.append("alice", "INBOX", mail(n, "hist"), internal_date=now - timedelta(days=2))
    # Without `since`, the cut-off is the moment the mailbox is added: bob's mail stays alone.
    dovecot.append("bob", "INBOX", mail(30, "bobold"), internal_date=now - timedelta(hours=1))
    desk = make_desk(
        db_url, [imap_section(dovecot, "alice", since=since.isoformat()), imap_section(dovecot, "bob")]
    )
    served = desk.serve()
    served.wait_ready()
    desk.wait_mailbox("alice", lambda s: s.backfill_count == 4 and s.state is IDLE)
    desk.wait_state("bob", IDLE)
    dovecot.append("alice", "INBOX", mail(20, "new"))
    dovecot.append("bob", "INBOX", mail(31, "bobnew"))
    history = [mid(n, "hist") for n in range(10, 14)]
    new = [mid(20, "new"), mid(31, "bobnew")]
    outcome = desk.wait_settled(tickets=6, acks=2)
    outcome.assert_each_once(history + new, acknowledged=new)
    with desk.sessions() as session:
        reasons = list(session.scalars(select(TicketEvent.reason).where(TicketEvent.kind == "ack_skipped")))
    assert reasons == ["imported from history"] * 4
    # What was not imported is not touched on the server either.
    assert [SEEN in flags for _, flags in sorted(dovecot.flags("alice").items())] == [False] * 3 + [True] * 5
    assert [SEEN in flags for _, flags in sorted(dovecot.flags("bob").items())] == [False, True]
    assert served.stop() == 0


def test_ingest_imap_fetches_once_and_exits_0_or_75_when_the_server_is_down(
    dovecot: DovecotServer, make_desk: DeskFactory, db_url: str
) -> None:
    desk = make_desk(db_url, [imap_section(dovecot, "alice")])
    first = desk.cli("ingest", "--imap", "alice", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stored"] == 0  # the mailbox is added now; nothing new yet
    dovecot.append_many("alice", "INBOX", (mail(n, "cron") for n in range(3)))
    second = desk.cli("ingest", "--imap", "alice", "--json")
    assert second.returncode == 0, second.stderr
    counts = json.loads(second.stdout)
    assert (counts["stored"], counts["duplicates"], counts["tickets_created"]) == (3, 0, 3)
    # It processed the mail and delivered the acknowledgments before exiting.
    desk.outcome().assert_each_once([mid(n, "cron") for n in range(3)])
    again = desk.cli("ingest", "--imap", "alice", "--json")
    assert again.returncode == 0, again.stderr
    assert (json.loads(again.stdout)["stored"], desk.ticket_count()) == (0, 3)
    dovecot.stop(graceful=False)
    down = desk.cli("ingest", "--imap", "alice")
    assert down.returncode == 75, down.stderr  # EX_TEMPFAIL: cron (or a wrapper) tries again later
    assert f"IMAP alice: cannot connect to {dovecot.host}:{dovecot.imap_port}" in down.stderr
    boxes = {box["name"]: box for box in desk.status_json()["mailboxes"]}
    assert boxes["alice"]["last_error"] and "cannot connect" in boxes["alice"]["last_error"]
    assert wait_until(lambda: desk.ticket_count() == 3, 1)


def test_ingest_imap_counts_history_once(dovecot: DovecotServer, make_desk: DeskFactory, db_url: str) -> None:
    # `backfilled` is a part of `stored`, not more of it: 2 mails of history are 2 stored.
    now = datetime.now(UTC).replace(microsecond=0)
    for n in range(2):
        dovecot.append("alice", "INBOX", mail(n, "histcount"), internal_date=now - timedelta(days=2))
    since = (now - timedelta(days=10)).date().isoformat()
    desk = make_desk(db_url, [imap_section(dovecot, "alice", since=since)])
    first = desk.cli("ingest", "--imap", "alice", "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["stored"] == 2
    assert desk.ticket_count() == 2
