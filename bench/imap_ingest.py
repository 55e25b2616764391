"""IMAP ingest benchmark: how close the poller comes to a bare FETCH, and how soon a mail is stored.

Against a private Dovecot on loopback (tests.servers), in one run:

1. throughput: 2,000 varied mails (plain, HTML, 8-bit, multipart with attachments; 1 KB to
   about 300 KB) wait in a mailbox. The figure is the poller's ingest rate into the raw queue
   (fetch, store and commit each mail, flag \\Seen) divided by imapclient's raw batch FETCH of
   the same mails (`UID FETCH BODY.PEEK[]`, same batch size, nothing stored);
2. latency: with the poller idling (RFC 2177 IDLE), 100 mails are appended one after another and
   each is timed from the APPEND to its committed row (median and p99). Dovecot itself waits about
   half a second before it tells an idling client about new mail.

    python -m bench.imap_ingest [--mails 2000] [--latency-mails 100] [--database sqlite|postgres]
                                [--sqlite-synchronous FULL|NORMAL]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from intake.imap_config import ImapMailboxConfig
from intake.imap_poller import MailboxPoller
from intake.imap_state import mailbox_statuses
from intake.raw_queue import Incoming, RawStore, StoreResult, header_message_id, split_message
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.mailbox_state import MailboxConnState
from tests.loopback import wait_until
from tests.servers import DovecotServer, PostgresCluster, ServerUnavailable

USER = "alice"
_WORD_TEXT = (
    "printer vpn password reset laptop screen broken access request invoice network slow outlook "
    "calendar meeting room badge license install update error crash urgent please thanks regards "
    "server disk full backup restore monitor keyboard mouse wifi office"
)
WORDS = _WORD_TEXT.split()
GREETINGS = ("Hello", "Hi team", "Dear support", "Guten Tag", "Dzień dobry", "Bonjour")


def varied_mail(n: int, rng: random.Random) -> bytes:
    """One of several shapes, with sizes spread over three orders of magnitude."""
    msg = EmailMessage()
    msg["From"] = f"Requester {n} <requester{n}@example.com>"
    msg["To"] = "support@example.test"
    msg["Subject"] = f"[bench {n}] {' '.join(rng.choices(WORDS, k=rng.randint(2, 8)))}"
    msg["Message-ID"] = f"<bench-{n}-{rng.getrandbits(32):08x}@example.com>"
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    paragraphs = int(rng.lognormvariate(1.0, 1.0)) + 1
    text = "\n\n".join(
        f"{rng.choice(GREETINGS)}, " + " ".join(rng.choices(WORDS, k=rng.randint(20, 120)))
        for _ in range(min(paragraphs, 60))
    )
    shape = rng.random()
    if shape < 0.5:
        msg.set_content(text)
    elif shape < 0.7:
        msg.set_content(text + "\n\nZażółć gęślą jaźń — grüße", cte="quoted-printable")
    elif shape < 0.85:
        msg.set_content(text)
        msg.add_alternative(
            f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>", subtype="html"
        )
    else:
        msg.set_content(text)
        size = int(min(rng.lognormvariate(9.5, 1.2), 220_000))
        msg.add_attachment(
            rng.randbytes(size), maintype="application", subtype="octet-stream", filename=f"log{n}.bin"
        )
    return msg.as_bytes()


@contextmanager
def database(kind: str, synchronous: str) -> Iterator[Engine]:
    """A migrated database: SQLite in WAL (synchronous=FULL is the default), or private PostgreSQL.

    The private PostgreSQL runs with fsync off, so it shows the cost of the code, not of the disk.
    """
    if kind == "postgres":
        with PostgresCluster() as cluster:
            engine = create_db_engine(DatabaseConfig(url=cluster.create_database()))
            migrate(engine)
            yield engine
            engine.dispose()
        return
    with tempfile.TemporaryDirectory(prefix="hdbench-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'helpdesk.db'}"
        engine = create_db_engine(DatabaseConfig(url=url, sqlite_synchronous=synchronous))
        migrate(engine)
        yield engine
        engine.dispose()


def raw_fetch_seconds(server: DovecotServer, batch_size: int) -> tuple[float, int]:
    """imapclient's bare batch FETCH of every mail in the INBOX: (seconds, bytes)."""
    with server.connect(USER) as client:
        client.select_folder("INBOX", readonly=True)
        uids = client.search(["ALL"])
        began = time.perf_counter()
        total = 0
        for start in range(0, len(uids), batch_size):
            fetched = client.fetch(uids[start : start + batch_size], ["BODY.PEEK[]"])
            total += sum(len(item[b"BODY[]"]) for item in fetched.values())
        return time.perf_counter() - began, total


class TimedStore(RawStore):
    """The raw queue, noting when each Message-ID was committed (the end of the latency)."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        super().__init__(sessions)
        self.committed: dict[str, float] = {}
        self._changed = threading.Condition()

    def _note(self, data: bytes) -> None:
        message_id = header_message_id(split_message(data)[0])
        with self._changed:
            if message_id is not None:
                self.committed.setdefault(message_id, time.monotonic())
            self._changed.notify_all()

    def store(self, data: bytes, **kwargs: Any) -> StoreResult:
        result = super().store(data, **kwargs)
        self._note(data)
        return result

    def store_many(self, mails: Iterable[Incoming], commit_every: int = 200) -> Iterator[StoreResult]:
        listed = list(mails)
        # Results come back only once their group is committed, in the order given.
        for mail, result in zip(listed, super().store_many(listed, commit_every), strict=True):
            self._note(mail.data)
            yield result

    def wait_for(self, message_id: str, timeout: float) -> float:
        with self._changed:
            if not self._changed.wait_for(lambda: message_id in self.committed, timeout):
                raise RuntimeError(f"<{message_id}> was not stored within {timeout:.0f} s")
            return self.committed[message_id]


def measure_latency(
    server: DovecotServer,
    poller: MailboxPoller,
    store: TimedStore,
    sessions: sessionmaker[Session],
    count: int,
) -> list[float]:
    """Seconds from APPEND to the committed row, for `count` mails appended one at a time."""
    latencies: list[float] = []
    stop = threading.Event()
    thread = threading.Thread(target=poller.run, args=(stop,), daemon=True)
    thread.start()
    try:

        def idling() -> bool:
            return any(s.state is MailboxConnState.IDLE for s in mailbox_statuses(sessions))

        if not wait_until(idling, timeout=30):
            raise RuntimeError("the poller did not reach IDLE")
        rng = random.Random(7)
        for n in range(count):
            mail = varied_mail(100_000 + n, rng)
            message_id = header_message_id(split_message(mail)[0])
            assert message_id is not None
            began = time.monotonic()
            server.append(USER, "INBOX", mail)
            latencies.append(store.wait_for(message_id, timeout=30) - began)
            time.sleep(0.05)  # let the poller go back to IDLE, as between real mails
    finally:
        stop.set()
        thread.join(10)
    return latencies


def run(
    mails: int, latency_mails: int, batch_size: int, kind: str, synchronous: str, seed: int
) -> dict[str, Any]:
    rng = random.Random(seed)
    corpus = [varied_mail(n, rng) for n in range(mails)]
    sizes = sorted(len(m) for m in corpus)
    with DovecotServer() as server, database(kind, synchronous) as engine:
        sessions = session_factory(engine)
        store = TimedStore(sessions)
        config = ImapMailboxConfig(
            name="bench",
            host=server.host,
            port=server.imap_port,
            tls="none",
            user=USER,
            password=server.users[USER],
            batch_size=batch_size,
        )
        poller = MailboxPoller(config, store, sessions)
        poller.fetch_once()  # the mailbox is added empty: what follows is new mail
        server.append_many(USER, "INBOX", corpus)

        raw_fetch_seconds(server, batch_size)  # warm Dovecot's caches for both contenders
        raw_seconds, raw_bytes = raw_fetch_seconds(server, batch_size)

        began = time.perf_counter()
        report = poller.fetch_once()
        ingest_seconds = time.perf_counter() - began
        if report.stored != mails:
            raise RuntimeError(f"stored {report.stored} of {mails} mails")

        latencies = measure_latency(server, poller, store, sessions, latency_mails)
    ordered = sorted(latencies)
    return {
        "database": kind if kind == "postgres" else f"sqlite synchronous={synchronous}",
        "mails": mails,
        "bytes": raw_bytes,
        "size_min": sizes[0],
        "size_median": sizes[len(sizes) // 2],
        "size_max": sizes[-1],
        "batch_size": batch_size,
        "raw_fetch_seconds": raw_seconds,
        "raw_fetch_rate": mails / raw_seconds,
        "ingest_seconds": ingest_seconds,
        "ingest_rate": mails / ingest_seconds,
        "ratio": (mails / ingest_seconds) / (mails / raw_seconds),
        "latency_mails": len(latencies),
        "latency_median": statistics.median(ordered),
        "latency_p99": ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))],
        "latency_max": ordered[-1],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imap_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--mails", type=int, default=2000)
    parser.add_argument("--latency-mails", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--sqlite-synchronous", choices=("FULL", "NORMAL"), default="FULL")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)
    try:
        figures = run(
            args.mails, args.latency_mails, args.batch_size, args.database, args.sqlite_synchronous, args.seed
        )
    except ServerUnavailable as exc:
        print(f"cannot run the benchmark: {exc}", file=sys.stderr)
        return 2
    f = figures
    sizes = f"{f['size_min'] / 1e3:.1f}-{f['size_max'] / 1e3:.0f} KB, median {f['size_median'] / 1e3:.1f} KB"
    print(
        f"IMAP ingest, {f['mails']} mails, {f['bytes'] / 1e6:.1f} MB ({sizes}), "
        f"batch_size={f['batch_size']}, database={f['database']}"
    )
    print(
        f"  imapclient raw batch FETCH     {f['raw_fetch_seconds']:7.2f} s {f['raw_fetch_rate']:7.0f} mails/s"
    )
    print(f"  poller ingest into raw queue   {f['ingest_seconds']:7.2f} s {f['ingest_rate']:7.0f} mails/s")
    print(f"  ratio (poller / raw FETCH)     {f['ratio']:7.2f}")
    print(
        f"  APPEND -> stored row under IDLE, {f['latency_mails']} mails: "
        f"median {f['latency_median'] * 1e3:.0f} ms, p99 {f['latency_p99'] * 1e3:.0f} ms, "
        f"max {f['latency_max'] * 1e3:.0f} ms"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
