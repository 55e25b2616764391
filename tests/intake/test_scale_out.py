"""Three `helpdesk serve` on one PostgreSQL are exactly as correct as one (issue 12).

Mail goes to all three over SMTP: roots, replies after and before their roots, and a burst from
one address that the per-address limit answers only five times. While both hold claimed mail,
one daemon is SIGKILLed and another SIGSTOPped past its heartbeat; the third must finish everything
while the paused one is still paused (its claims given back by the heartbeat, not after the
5-minute lease), and once it wakes up it must not work or deliver anything a second time.
"""

from __future__ import annotations

import os
import re
import signal
import smtplib
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select

from models.outbox import OutboxMessage
from models.raw_message import RawMessage, RawStatus
from tests.intake.daemon_harness import DaemonDesk, DeskFactory, Served
from tests.loopback import LOOPBACK, free_port, wait_until
from tests.mail import SUPPORT, make_mail

PER_ADDRESS = 5  # [mail] auto_reply_limit, the default
HEAVY = "heavy@example.org"
# Well past the heartbeat timeout (10 s) and the idle-transaction limit (15 s) of a paused daemon.
FINISH_WHILE_PAUSED = 90.0


@dataclass(frozen=True)
class Mail:
    message_id: str
    sender: str
    data: bytes
    root: str | None = None


def conversation(n: int, *, reply_first: bool) -> list[Mail]:
    sender = f"user{n}@example.com"
    root_id, reply_id = f"root{n}@example.com", f"reply{n}@example.com"
    root = Mail(root_id, sender, make_mail(sender=sender, message_id=f"<{root_id}>", subject=f"VPN {n}"))
    reply = Mail(
        reply_id,
        sender,
        make_mail(
            sender=sender,
            message_id=f"<{reply_id}>",
            subject=f"Re: VPN {n}",
            in_reply_to=f"<{root_id}>",
            references=[f"<{root_id}>"],
            body=f"Still down ({n}).",
        ),
        root_id,
    )
    return [reply, root] if reply_first else [root, reply]


def mails(first: int, count: int, burst: bool) -> list[Mail]:
    out: list[Mail] = []
    for n in range(first, first + count):
        out += conversation(n, reply_first=n % 3 == 0)
        if burst and n == first + count // 2:
            out += [
                Mail(
                    f"heavy{n}-{k}@example.org",
                    HEAVY,
                    make_mail(sender=HEAVY, message_id=f"<heavy{n}-{k}@example.org>"),
                )
                for k in range(PER_ADDRESS + 3)
            ]
    return out


def send_all(
    batch: Sequence[Mail], targets: list[Served], errors: list[BaseException], clients: int = 4
) -> None:
    """Every mail over SMTP, from `clients` clients at once, to the daemons in `targets` in turn
    (read at each mail: a daemon taken out of it gets no more). A session that fails or hangs
    is tried again on another daemon, as an MTA would; the Message-ID makes that a no-op if
    the first one had stored it."""
    queue = list(enumerate(batch))
    lock = threading.Lock()

    def client() -> None:
        while True:
            with lock:
                if not queue:
                    return
                index, mail = queue.pop(0)
            for attempt in range(5):
                port = targets[(index + attempt) % len(targets)].smtp_port
                try:
                    with smtplib.SMTP(LOOPBACK, port, timeout=10) as smtp:
                        assert smtp.sendmail(mail.sender, [SUPPORT], mail.data) == {}
                    break
                except (OSError, smtplib.SMTPException) as exc:
                    if attempt == 4:
                        errors.append(exc)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)


def holding(desk: DaemonDesk, *daemons: Served) -> bool:
    """Each of `daemons` has stored mail claimed right now."""
    with desk.sessions() as session:
        holders = set(
            session.scalars(select(RawMessage.claimed_by).where(RawMessage.status == RawStatus.PROCESSING))
        )
    return all(d.holder in holders for d in daemons)


def finished(desk: DaemonDesk, count: int) -> bool:
    with desk.sessions() as session:
        done = session.scalar(
            select(func.count())
            .select_from(RawMessage)
            .where(RawMessage.status.in_([RawStatus.PROCESSED, RawStatus.FAILED]))
        )
        busy = session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_(["pending", "sending"]))
        )
    return done == count and busy == 0


def test_three_daemons_one_killed_one_paused_are_as_correct_as_one(
    make_desk: DeskFactory, pg_url: str
) -> None:
    desk = make_desk(pg_url)
    served = [desk.serve(smtp_port=free_port(), log_name=f"serve{i}.log") for i in range(3)]
    for daemon in served:
        daemon.wait_ready()
    killed, paused, survivor = served
    everything = mails(0, 60, burst=True)
    targets = list(served)
    errors: list[BaseException] = []
    try:
        sending = threading.Thread(target=send_all, args=(everything, targets, errors))
        sending.start()
        # Both go while they hold claimed mail.
        assert wait_until(lambda: holding(desk, killed, paused), 60, 0.01)
        targets[:] = [survivor]
        killed.kill()
        os.kill(paused.proc.pid, signal.SIGSTOP)
        sending.join(180)
        assert not errors, errors
        assert wait_until(lambda: finished(desk, len(everything)), FINISH_WHILE_PAUSED, 0.2), (
            f"not finished within {FINISH_WHILE_PAUSED:.0f} s while one daemon was paused\n{survivor.log_text()}"
        )
        daemons = {d["pid"]: d for d in desk.status_json()["daemons"]}
        assert daemons[paused.proc.pid]["silent"] and daemons[paused.proc.pid]["holds"]["stored"] == 0
        assert not daemons[survivor.proc.pid]["silent"]
    finally:
        os.kill(paused.proc.pid, signal.SIGCONT)
    # Awake again, the paused daemon finds its claims taken and must redo nothing.
    assert "RELEASED" in survivor.log_text()
    time.sleep(4)
    assert paused.stop() == 0 and survivor.stop() == 0
    assert finished(desk, len(everything))

    with desk.sessions() as session:
        raws = session.execute(
            select(
                RawMessage.id,
                RawMessage.message_id,
                RawMessage.ticket_id,
                RawMessage.status,
                RawMessage.error,
            )
        ).all()
        outbox = session.execute(
            select(OutboxMessage.ticket_id, OutboxMessage.kind, OutboxMessage.recipient)
        ).all()
    by_id = {r.message_id: r for r in raws}
    assert sorted(by_id) == sorted(m.message_id for m in everything) and len(raws) == len(everything)
    assert [r.error for r in raws if r.status is not RawStatus.PROCESSED] == []  # nothing quarantined
    split = [
        m.message_id
        for m in everything
        if m.root and by_id[m.message_id].ticket_id != by_id[m.root].ticket_id
    ]
    assert split == [], "replies not on their root's ticket"

    acks = Counter(ticket for ticket, kind, _ in outbox if kind == "ack")
    assert [t for t, n in acks.items() if n > 1] == [], "a ticket acknowledged twice"
    to_heavy = sum(1 for _, _, rcpt in outbox if rcpt == HEAVY)
    assert to_heavy == PER_ADDRESS, f"{to_heavy} automatic mails to one address in an hour"
    first_of: dict[int, str] = {}
    for r in sorted(raws, key=lambda r: r.id):
        first_of.setdefault(r.ticket_id, r.message_id)
    answered = []
    for path in desk.sent_files():
        text = path.read_text(errors="replace")
        irt = re.search(r"^In-Reply-To: <([^>]+)>", text, re.M)
        assert irt is not None
        answered.append(irt.group(1))
    assert len(answered) == len(set(answered)) == sum(acks.values()), "a mail answered twice"
    not_first = [mid for mid in answered if mid not in first_of.values()]
    assert not_first == [], "acknowledgments that do not answer the first mail of their conversation"
