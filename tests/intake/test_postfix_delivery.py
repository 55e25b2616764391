"""deploy/mta.md, proven against a real Postfix: its lines, as written there, turn mail into tickets.

Each test configures a private Postfix (tests/servers/postfix.py) with the marked blocks of
deploy/mta.md (`mta_blocks`) and a desk installed as mta.md asks (tests/intake/mta_desk.py),
then sends mail to Postfix over SMTP as the world would. Only the words that name places of a
real system (/etc/postfix, the ports, the helpdesk's paths, its user) are put in their test
places; a block that loses one of those words, or a line Postfix does not take, fails here.
"""

from __future__ import annotations

import re
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from email.utils import make_msgid
from typing import Any

import pytest

from helpdesk.settings.reader import parse_size
from tests.intake.mta_desk import MODES, MtaDesk, mta_blocks, set_up
from tests.loopback import wait_until
from tests.mail import SUPPORT, make_mail
from tests.servers.postfix import PostfixServer, wait_for_log

DELIVERY_TIMEOUT = 60.0
HEADER_ROOM = 64 * 1024  # more than the headers an MTA adds to a mail on its way to us


@pytest.fixture
def desk() -> Iterator[MtaDesk]:
    made = MtaDesk()
    yield made
    made.close()


def wait_tickets(
    desk: MtaDesk,
    condition: str,
    check: Callable[[list[dict[str, Any]]], bool],
    timeout: float = DELIVERY_TIMEOUT,
) -> list[dict[str, Any]]:
    """The desk's tickets once `check(tickets)` holds."""
    deadline = time.monotonic() + timeout
    while True:
        tickets = desk.tickets()
        if check(tickets):
            return tickets
        assert time.monotonic() < deadline, f"{condition}: {tickets}\n{desk.serve_output()[-3000:]}"
        time.sleep(0.3)


def ids(tickets: list[dict[str, Any]]) -> list[set[str]]:
    """The Message-IDs of the requesters' mail on each ticket (not of our acknowledgments)."""
    return [
        {str(m).strip("<>") for m in t["message_ids"] if not str(m).strip("<>").endswith("@example.test")}
        for t in tickets
    ]


@pytest.mark.parametrize("mode", MODES)
def test_mail_through_postfix_becomes_tickets_with_acknowledgments(
    postfix: PostfixServer, desk: MtaDesk, mode: str
) -> None:
    # Postfix names itself as this machine does by default, as the listener does.
    postfix.myhostname = socket.gethostname()
    set_up(postfix, desk, mode)
    desk.serve()
    postfix.start()
    first, plus, bcc = (make_msgid(domain="example.com").strip("<>") for _ in range(3))
    # Two of our addresses in one transaction: one mail, one ticket (LMTP answers each recipient).
    both = [SUPPORT, "support+printer@example.test"]
    assert postfix.send(make_mail(message_id=f"<{first}>"), "alice@example.com", both) == {}
    (ack,) = desk.wait_acks(1)
    billing = "support+billing@example.test"
    mail = make_mail(sender="Bob <bob@example.com>", to=billing, subject="Invoice 42", message_id=f"<{plus}>")
    assert postfix.send(mail, "bob@example.com", [billing]) == {}
    desk.wait_acks(2)
    # Bcc to the signed reply address: the envelope recipient is its only link to ticket 1.
    token = desk.reply_address(ack)
    assert token.startswith("support+t")
    mail = make_mail(
        to="colleague@example.org",
        subject="One more thing",
        body="The toner is empty too.",
        message_id=f"<{bcc}>",
    )
    assert postfix.send(mail, "alice@example.com", [token]) == {}
    refused = postfix.send(make_mail(to="sales@example.test"), "alice@example.com", ["sales@example.test"])
    code, text = refused["sales@example.test"]
    assert code == 550 and b"User unknown in relay recipient table" in text  # relay_recipient_maps
    tickets = wait_tickets(desk, "the Bcc mail did not join ticket 1", lambda t: sum(map(len, ids(t))) >= 3)
    assert ids(tickets) == [{first, bcc}, {plus}]
    postfix.wait_queue_empty()
    assert len(desk.sent_files()) == 2  # one acknowledgment per ticket; a joining mail gets none
    log = postfix.log_text()
    assert "status=bounced" not in log and "status=deferred" not in log, log
    assert len(postfix.delivered("sent")) == 4  # a line per recipient


@pytest.mark.parametrize("mode", ["smtp", "lmtp"])
def test_mail_waits_in_postfix_while_the_desk_is_stopped_and_arrives_once(
    postfix: PostfixServer, desk: MtaDesk, mode: str
) -> None:
    set_up(postfix, desk, mode)
    postfix.start()
    sent = [make_msgid(domain="example.com").strip("<>") for _ in range(20)]
    for number, message_id in enumerate(sent):
        mail = make_mail(
            sender=f"User {number} <user{number}@example.com>",
            subject=f"Problem {number}",
            message_id=f"<{message_id}>",
        )
        assert postfix.send(mail, f"user{number}@example.com", [SUPPORT]) == {}
    assert wait_for_log(postfix, "status=deferred")
    assert wait_until_queued(postfix, 20)
    desk.serve()
    postfix.flush()
    postfix.wait_queue_empty(DELIVERY_TIMEOUT)
    desk.wait_acks(20)
    tickets = wait_tickets(desk, "not every mail became a ticket", lambda t: len(t) >= 20)
    time.sleep(1.5)  # a duplicate would come within a worker and a sender round
    tickets = desk.tickets()
    assert sorted(mid for group in ids(tickets) for mid in group) == sorted(sent)
    assert len(desk.sent_files()) == 20
    assert "status=bounced" not in postfix.log_text()


def wait_until_queued(postfix: PostfixServer, count: int) -> bool:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        if len(postfix.queue()) == count:
            return True
        time.sleep(0.2)
    return False


def test_piped_mail_is_deferred_not_bounced_until_the_desk_is_fixed(
    postfix: PostfixServer, desk: MtaDesk
) -> None:
    set_up(postfix, desk, "pipe")
    desk.serve()
    postfix.start()
    database = desk.root / "var" / "helpdesk.db"
    for trouble, (path, broken, fixed) in {
        "an unreadable configuration": (desk.config, 0o000, 0o600),
        "a read-only database": (database, 0o400, 0o600),
    }.items():
        message_id = make_msgid(domain="example.com").strip("<>")
        path.chmod(broken)
        before = len(postfix.delivered("deferred"))
        assert (
            postfix.send(
                make_mail(subject=trouble, message_id=f"<{message_id}>"), "alice@example.com", [SUPPORT]
            )
            == {}
        )
        assert wait_until_deferred(postfix, before + 1), f"{trouble}: not deferred\n{postfix.log_text()}"
        # The log line comes first; the queue file has the reason a moment later.
        assert wait_until(lambda: "delay_reason" in queued_recipient(postfix), DELIVERY_TIMEOUT, 0.2)
        # Postfix took the status from the start of our one line (dsn=4.3.0) and keeps the rest.
        reason = queued_recipient(postfix)["delay_reason"]
        assert reason.startswith("helpdesk ingest: ") and "\n" not in reason and "Traceback" not in reason
        assert "dsn=4.3.0, status=deferred (helpdesk ingest: " in postfix.log_text()
        path.chmod(fixed)
        postfix.flush()
        postfix.wait_queue_empty(DELIVERY_TIMEOUT)
    tickets = wait_tickets(desk, "the deferred mail did not arrive", lambda t: len(t) >= 2)
    time.sleep(1.5)
    assert len(desk.tickets()) == 2 and len(tickets) == 2
    desk.wait_acks(2)
    assert len(desk.sent_files()) == 2
    assert "status=bounced" not in postfix.log_text()


def queued_recipient(postfix: PostfixServer) -> dict[str, Any]:
    """The one recipient of the one mail in Postfix's queue, as `postqueue -j` tells it."""
    (queued,) = postfix.queue()
    (recipient,) = queued["recipients"]
    return dict(recipient)


def wait_until_deferred(postfix: PostfixServer, count: int) -> bool:
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while time.monotonic() < deadline:
        if len(postfix.delivered("deferred")) >= count:
            return True
        time.sleep(0.2)
    return False


def test_piped_mail_over_the_limit_bounces_with_our_status_and_one_line(
    postfix: PostfixServer, desk: MtaDesk
) -> None:
    """The one permanent refusal a pipe can meet behind these lines (Postfix refuses unknown
    recipients itself): Postfix takes the RFC 3463 status from the start of our line."""
    set_up(postfix, desk, "pipe", **{'max_message_size = "26MB"': 'max_message_size = "20KB"'})
    postfix.start()
    big = make_mail(body=("x" * 70 + "\n") * 400)
    assert postfix.send(big, "alice@example.com", [SUPPORT]) == {}
    assert wait_for_log(postfix, "status=bounced"), postfix.log_text()
    # (Postfix's bounce to alice@example.com goes nowhere here: no DNS.)
    (line,) = [line for line in postfix.delivered("bounced") if "relay=helpdesk" in line]
    assert "dsn=5.3.4" in line
    assert "(helpdesk ingest: stdin: refused, not stored:" in line and "limit of 20480 bytes" in line
    assert "Traceback" not in postfix.log_text()


def test_no_postfix_line_of_the_notes_ends_in_a_comment() -> None:
    """Postfix has no comments at the end of a line: `recipient_delimiter = + # so ...` sets the
    delimiter to `+ # so ...` and every plus-address is refused, while `postfix check` is silent."""
    for name, block in mta_blocks().items():
        if not name.startswith("helpdesk.toml"):
            assert all("#" not in line for line in block.splitlines()), f"{name}: {block}"


def test_the_notes_keep_our_size_limit_above_postfixs() -> None:
    """What Postfix accepted must not be refused behind it (a bounce after acceptance): our limit
    is Postfix's plus room for the headers it adds on the way (Received, Return-Path)."""
    blocks = mta_blocks()
    postfix_limit = int(re.search(r"^message_size_limit = (\d+)$", blocks["main.cf"], re.M)[1])  # type: ignore[index]
    ours = parse_size(tomllib.loads(blocks["helpdesk.toml"])["smtp"]["max_message_size"])
    assert ours - postfix_limit >= HEADER_ROOM
