"""Scale-out: 1, 2 and 3 `helpdesk serve` processes on one PostgreSQL, and what several of them get wrong.

    python -m bench.scale_out [--count 600] [--daemons 1,2,3] [--no-faults]

A throwaway PostgreSQL cluster (tests/servers/postgres.py) gets a fresh database per run. Mail goes
over SMTP to every daemon in turn from several clients at once: roots, replies to them (a quarter
of the replies sent before their root), and a few senders who write more roots than the hourly
per-address limit lets the desk answer. It prints, per daemon count: mails per second and the
ratio to one daemon, replies not on their root's ticket (threads split), tickets acknowledged
twice, acknowledgments that do not answer the first mail of their conversation, quarantined mails
and why, addresses over the hourly limit, and the deadlocks the daemons logged. A last run with
three daemons SIGKILLs one and SIGSTOPs another a third of the way in and reports how long the
rest took to finish everything.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import signal
import smtplib
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

from sqlalchemy import func, select

from models.outbox import OutboxMessage
from models.raw_message import RawMessage, RawStatus
from tests.intake.daemon_harness import DaemonDesk, Served
from tests.loopback import free_port
from tests.mail import SUPPORT
from tests.servers.postgres import PostgresCluster

PER_ADDRESS = 5  # [mail] auto_reply_limit, the default
CLIENTS = 6
HEAVY_BURST = 8  # roots from one address at once, where the per-address limit answers 5
FINISH_TIMEOUT = 120.0
DOMAIN = "bench.example"
REPO = Path(__file__).resolve().parent.parent
ROSTER = False  # --roster


@dataclass(frozen=True)
class Mail:
    message_id: str
    sender: str
    data: bytes
    root: str | None = None  # the Message-ID of the mail it answers


def _mail(message_id: str, sender: str, subject: str, body: str, parent: str | None) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {SUPPORT}",
        f"Subject: {subject}",
        f"Message-ID: <{message_id}>",
        f"Date: {format_datetime(datetime.now(UTC))}",
    ]
    if parent:
        lines += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body, ""]
    return "\r\n".join(lines).encode()


SUBJECTS = [
    "VPN is down",
    "Printer on floor 3 jams",
    "Password reset",
    "Laptop will not boot",
    "Outlook crashes",
]


def generate(count: int, seed: int = 12) -> list[Mail]:
    """`count` mails in sending order: roots, replies (some before their root), and now and then
    a burst of roots from one of a few heavy senders, more than the per-address limit answers."""
    rng = random.Random(seed)
    heavy = [f"heavy{i}@{DOMAIN}" for i in range(6)]
    order: list[Mail] = []
    n = 0
    while len(order) < count:
        n += 1
        if n % 40 == 0:
            sender = heavy[(n // 40) % len(heavy)]
            for k in range(HEAVY_BURST):
                mid = f"heavy{n}-{k}@{DOMAIN}"
                order.append(
                    Mail(mid, sender, _mail(mid, sender, rng.choice(SUBJECTS), f"Again {n}.{k}", None))
                )
            continue
        sender = f"user{n}@d{n % 17}.{DOMAIN}"
        subject = rng.choice(SUBJECTS)
        root = Mail(
            f"root{n}@{DOMAIN}", sender, _mail(f"root{n}@{DOMAIN}", sender, subject, f"Help #{n}", None)
        )
        if rng.random() < 0.4:
            reply_id = f"reply{n}@{DOMAIN}"
            reply = Mail(
                reply_id,
                sender,
                _mail(reply_id, sender, "Re: " + subject, f"More on #{n}", root.message_id),
                root.message_id,
            )
            order += [reply, root] if rng.random() < 0.25 else [root, reply]
        else:
            order.append(root)
    return order[:count]


@dataclass
class Run:
    daemons: int
    mails: int
    seconds: float = 0.0
    finished: bool = True
    split: int = 0
    double_acks: int = 0
    ack_not_first: int = 0
    quarantined: Counter[str] = field(default_factory=Counter)
    over_limit: int = 0
    deadlocks: int = 0
    unfinished: int = 0

    @property
    def rate(self) -> float:
        return self.mails / self.seconds if self.seconds else 0.0


def send_all(mails: Sequence[Mail], targets: list[Served]) -> None:
    """Send every mail from CLIENTS clients to the daemons in `targets` in turn (read at each mail,
    so a daemon taken out of it gets no more); a session that fails or hangs is tried again on
    another daemon, as an MTA would (the Message-ID makes a second copy a no-op)."""
    queue = list(enumerate(mails))
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
                    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                        smtp.sendmail(mail.sender, [SUPPORT], mail.data)
                    break
                except (OSError, smtplib.SMTPException):
                    continue

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def holding(desk: DaemonDesk, daemons: Sequence[Served]) -> bool:
    """Each of `daemons` has stored mail claimed right now."""
    with desk.sessions() as session:
        holders = set(
            session.scalars(select(RawMessage.claimed_by).where(RawMessage.status == RawStatus.PROCESSING))
        )
    return all(d.holder in holders for d in daemons)


def stored(desk: DaemonDesk) -> int:
    with desk.sessions() as session:
        return session.scalar(select(func.count()).select_from(RawMessage)) or 0


def wait_done(desk: DaemonDesk, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with desk.sessions() as session:
            done = session.scalar(
                select(func.count())
                .select_from(RawMessage)
                .where(RawMessage.status.in_([RawStatus.PROCESSED, RawStatus.FAILED]))
            )
            pending = session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status.in_(["pending", "sending"]))
            )
        if (done or 0) >= count and not pending:
            return True
        time.sleep(0.1)
    return False


def measure(desk: DaemonDesk, mails: Sequence[Mail], run: Run) -> None:
    """Fill `run` with what the database and the maildir say."""
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
    by_mid = {r.message_id: r for r in raws}
    run.unfinished = sum(1 for r in raws if r.status not in (RawStatus.PROCESSED, RawStatus.FAILED))
    for r in raws:
        if r.status is RawStatus.FAILED:
            run.quarantined[(r.error or "?").split(":")[0][:60]] += 1
    first_of_ticket: dict[int, str] = {}
    for mail in mails:
        if mail.root is None:
            continue
        reply, root = by_mid.get(mail.message_id), by_mid.get(mail.root)
        if reply is None or root is None or reply.ticket_id != root.ticket_id:
            run.split += 1
    # The first mail of each conversation, by arrival (raw id): the one its acknowledgment answers.
    for r in sorted(raws, key=lambda r: r.id):
        if r.ticket_id is not None:
            first_of_ticket.setdefault(r.ticket_id, r.message_id)
    acks = Counter(t for t, kind, _ in outbox if kind == "ack")
    run.double_acks = sum(1 for n in acks.values() if n > 1)
    per_recipient = Counter(rcpt for _, kind, rcpt in outbox if rcpt.endswith(DOMAIN))
    run.over_limit = sum(1 for n in per_recipient.values() if n > PER_ADDRESS)
    for path in desk.sent_files():
        text = path.read_bytes().decode("utf-8", "replace")
        if "Auto-Submitted: auto-replied" not in text:
            continue
        irt = re.search(r"^In-Reply-To: <([^>]+)>", text, re.M)
        tag = re.search(r"\[#(\d+)\]", text)
        if irt and tag and first_of_ticket.get(int(tag.group(1))) not in (None, irt.group(1)):
            run.ack_not_first += 1
    for served in desk.served:
        # One per retried (RETRY) or quarantined (QUARANTINED) group or mail that met a deadlock.
        run.deadlocks += sum(
            1
            for line in served.log_text().splitlines()
            if "deadlock" in line.lower() and ("RETRY" in line or "QUARANTINED" in line)
        )


def make_desk(cluster: PostgresCluster, root: Path, name: str, models: Path | None) -> DaemonDesk:
    directory = root / name
    directory.mkdir()
    desk = DaemonDesk(directory, cluster.create_database(name), [])
    with desk.config.open("a") as config:
        config.write('[logging]\nlevel = "WARNING"\n')
    if models is not None:
        shutil.copytree(models, directory / "var" / "models")
    else:
        done = desk.cli("init", timeout=600)
        assert done.returncode == 0, done.stderr
    if ROSTER:
        # Technicians: every new ticket is assigned, so groups of mails update their rows too.
        done = desk.cli("technicians", "import", str(REPO / "deploy" / "technicians.example.toml"))
        assert done.returncode == 0, done.stderr
    return desk


def run_once(
    cluster: PostgresCluster,
    root: Path,
    daemons: int,
    mails: Sequence[Mail],
    models: Path | None,
    *,
    faults: bool,
) -> Run:
    desk = make_desk(cluster, root, f"scale_{daemons}_{'faults' if faults else 'plain'}", models)
    run = Run(daemons, len(mails))
    try:
        served = [desk.serve(smtp_port=free_port(), log_name=f"serve{i}.log") for i in range(daemons)]
        for s in served:
            s.wait_ready()
        started = time.monotonic()
        targets = list(served)
        sending = threading.Thread(target=send_all, args=(mails, targets))
        sending.start()
        if faults:
            # A third of the way in, at a moment both hold claimed mail.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not (
                stored(desk) >= len(mails) // 3 and holding(desk, served[:2])
            ):
                time.sleep(0.01)
            targets[:] = served[2:]
            served[0].kill()
            os.kill(served[1].proc.pid, signal.SIGSTOP)
        sending.join()
        run.finished = wait_done(desk, len(mails), FINISH_TIMEOUT)
        run.seconds = time.monotonic() - started
        if faults:
            os.kill(served[1].proc.pid, signal.SIGCONT)
            wait_done(desk, len(mails), 30.0)
        measure(desk, mails, run)
    finally:
        for s in desk.served:
            if s.alive():
                os.kill(s.proc.pid, signal.SIGCONT)
                s.stop()
        desk.engine.dispose()
    return run


def report(runs: list[Run]) -> None:
    base = next((r.rate for r in runs if r.daemons == 1), 0.0)
    print(
        f"{'daemons':>8} {'mails':>6} {'s':>7} {'mails/s':>8} {'x1':>5} {'split':>6} {'2acks':>6} "
        f"{'ack!1st':>7} {'quar':>5} {'>limit':>6} {'dlock':>6} {'left':>5}"
    )
    for r in runs:
        label = f"{r.daemons}{' kill' if r.mails and r is runs[-1] and getattr(r, 'faults', False) else ''}"
        ratio = r.rate / base if base else 0.0
        print(
            f"{label:>8} {r.mails:>6} {r.seconds:>7.1f} {r.rate:>8.1f} {ratio:>5.2f} {r.split:>6} "
            f"{r.double_acks:>6} {r.ack_not_first:>7} {sum(r.quarantined.values()):>5} {r.over_limit:>6} "
            f"{r.deadlocks:>6} {r.unfinished:>5}{'' if r.finished else '  (not finished in time)'}"
        )
        for reason, n in r.quarantined.most_common(5):
            print(f"{'':>10}quarantined {n}: {reason}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--daemons", default="1,2,3")
    parser.add_argument("--no-faults", action="store_true")
    parser.add_argument("--roster", action="store_true", help="import the example technicians")
    args = parser.parse_args(argv)
    global ROSTER
    ROSTER = args.roster
    mails = generate(args.count)
    replies = sum(1 for m in mails if m.root)
    print(f"{len(mails)} mails ({replies} replies), {CLIENTS} SMTP clients")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="hd-scale-") as tmp, PostgresCluster() as cluster:
        root = Path(tmp)
        models: Path | None = None
        for count in (int(n) for n in args.daemons.split(",") if n):
            runs.append(run_once(cluster, root, count, mails, models, faults=False))
            models = models or next(root.glob("scale_*/var/models"), None)
            print(f"  {count} daemon(s): {runs[-1].rate:.1f} mails/s", flush=True)
        if not args.no_faults:
            if models is None:
                make_desk(cluster, root, "models", None)
                models = root / "models" / "var" / "models"
            faulty = run_once(cluster, root, 3, mails, models, faults=True)
            faulty.faults = True  # type: ignore[attr-defined]
            runs.append(faulty)
        report(runs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
