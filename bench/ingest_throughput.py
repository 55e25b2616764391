"""Ingest throughput: the whole pipeline against mail-parser alone, on the same corpus, in one run.

    python -m bench.ingest_throughput [--count 2000] [--smtp-connections 4]

1. parse-only: mail-parser on every mail (the yardstick);
2. `helpdesk ingest --maildir` as a user runs it: stored, parsed, threaded, ticket written,
   acknowledgment in the outbox (`--no-send`, so delivery is not counted);
3. the SMTP listener of `helpdesk serve`, fed by smtplib clients, until every mail is processed.

It prints mails per second, the ratio to parse-only, latency from SMTP 250 to processed
(p50/p99), peak RSS of the helpdesk process, and how many generated replies were threaded to
the ticket of the mail they answer.
"""

from __future__ import annotations

import argparse
import logging
import mailbox
import os
import resource
import smtplib
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import mailparser

from bench.corpus import SUPPORT, Corpus, generate
from tests.loopback import free_port
from tests.mail import wait_for_listener

HELPDESK = [sys.executable, "-m", "helpdesk.cli"]


def parse_only(corpus: Corpus) -> float:
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    started = time.perf_counter()
    for data in corpus.mails:
        mailparser.parse_from_bytes(data)
    return len(corpus.mails) / (time.perf_counter() - started)


def write_config(directory: Path, port: int) -> Path:
    config = directory / "helpdesk.toml"
    config.write_text(
        f'[mail]\naddress = "{SUPPORT}"\nsecret = "bench"\nauto_reply_limit = 5\n'
        '[database]\nurl = "sqlite:///var/helpdesk.db"\n'
        f'[smtp]\nlisten = "127.0.0.1:{port}"\n'
        '[outgoing]\nurl = "maildir:var/sent"\n'
        '[logging]\nlevel = "WARNING"\n'
        # The corpus is signed and its MTA's Authentication-Results say so: every sender is proven,
        # so every mail is acknowledged as on a real desk, and the verdict is part of the cost.
        '[security]\ntrusted_authserv_ids = ["mx.example.test"]\n'
    )
    subprocess.run([*HELPDESK, "--config", str(config), "init"], check=True, capture_output=True)
    return config


def run_measured(
    argv: list[str], env: dict[str, str]
) -> tuple[float, float, subprocess.CompletedProcess[bytes]]:
    """(seconds, peak RSS in MB, result) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    out = proc.stdout.read() if proc.stdout else b""
    err = proc.stderr.read() if proc.stderr else b""
    proc.returncode = os.waitstatus_to_exitcode(status)
    return seconds, usage.ru_maxrss / 1024, subprocess.CompletedProcess(argv, proc.returncode, out, err)


def threading_check(db: Path, corpus: Corpus) -> tuple[int, int]:
    """(replies threaded to their parent's ticket, replies generated)."""
    con = sqlite3.connect(db)
    try:
        ticket_of: dict[str, int] = dict(
            con.execute("SELECT message_id, ticket_id FROM messages WHERE direction = 'in'").fetchall()
        )
    finally:
        con.close()
    ids = [mailparser.parse_from_bytes(m).message_id.strip("<>") for m in corpus.mails]
    right = 0
    for child, parent in corpus.replies.items():
        parent_ticket = ticket_of.get(ids[parent])
        if parent_ticket is not None and ticket_of.get(ids[child]) == parent_ticket:
            right += 1
    return right, len(corpus.replies)


def bench_ingest(corpus: Corpus, work: Path, *, models: bool = True) -> dict[str, float]:
    desk = work / ("ingest" if models else "ingest-rules-only")
    desk.mkdir()
    config = write_config(desk, 0 + 2525)
    maildir = work / "corpus"
    if not maildir.exists():
        box = mailbox.Maildir(str(maildir), create=True)
        for data in corpus.mails:
            box.add(data)
    env = {**os.environ, "HELPDESK_CONFIG": str(config)}
    if not models:
        # Routing by rules and defaults only: an empty model directory, as before the first model.
        env["HELPDESK_MODELS_DIR"] = str(desk / "no-models")
    seconds, rss, result = run_measured(
        [*HELPDESK, "ingest", "--maildir", str(maildir), "--json", "--no-send"], env
    )
    if result.returncode != 0:
        raise SystemExit(f"ingest failed: {result.stderr.decode()[-2000:]}")
    right, total = threading_check(desk / "var" / "helpdesk.db", corpus)
    return {
        "rate": len(corpus.mails) / seconds,
        "seconds": seconds,
        "rss": rss,
        "threaded": right,
        "replies": total,
    }


def bench_smtp(corpus: Corpus, work: Path, connections: int) -> dict[str, float]:
    port = free_port()
    desk = work / "smtp"
    desk.mkdir()
    config = write_config(desk, port)
    env = {**os.environ, "HELPDESK_CONFIG": str(config)}
    server = subprocess.Popen(
        [*HELPDESK, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        wait_for_listener(port, server)
        chunks = [corpus.mails[i::connections] for i in range(connections)]

        def send(chunk: list[bytes]) -> None:
            with smtplib.SMTP("127.0.0.1", port) as client:
                for data in chunk:
                    # SMTP lines end in CRLF (RFC 5321 2.3.8); generated mail has bare LF.
                    client.sendmail(
                        "bench@example.com", [SUPPORT], data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                    )

        started = time.perf_counter()
        threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = time.perf_counter() - started
        db = desk / "var" / "helpdesk.db"
        while True:
            con = sqlite3.connect(db)
            left = con.execute(
                "SELECT count(*) FROM raw_messages WHERE status IN ('received','processing')"
            ).fetchone()[0]
            con.close()
            if left == 0:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        con = sqlite3.connect(db)
        rows = con.execute(
            "SELECT received_at, processed_at FROM raw_messages WHERE processed_at IS NOT NULL"
        ).fetchall()
        con.close()
    finally:
        server.terminate()
        server.wait(30)
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    from datetime import datetime

    latencies = sorted(
        (datetime.fromisoformat(p) - datetime.fromisoformat(r)).total_seconds() * 1000 for r, p in rows
    )
    right, total = threading_check(db, corpus)
    return {
        "rate": len(corpus.mails) / seconds,
        "accept_rate": len(corpus.mails) / accepted,
        "seconds": seconds,
        "p50": statistics.median(latencies),
        "p99": latencies[int(len(latencies) * 0.99) - 1],
        "rss": rss,
        "threaded": right,
        "replies": total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--smtp-connections", type=int, default=4)
    args = parser.parse_args()
    corpus = generate(args.count)
    print(
        f"corpus: {len(corpus.mails)} mails, {sum(map(len, corpus.mails)) / 1e6:.1f} MB, kinds {corpus.kinds}"
    )
    with tempfile.TemporaryDirectory(prefix="hd-bench-") as tmp:
        work = Path(tmp)
        parse_rate = parse_only(corpus)
        print(f"parse-only (mail-parser)      {parse_rate:8.1f} mails/s")
        ingest = bench_ingest(corpus, work)
        print(
            f"helpdesk ingest --maildir     {ingest['rate']:8.1f} mails/s  = {ingest['rate'] / parse_rate:.0%} of parse-only"
            f"   peak RSS {ingest['rss']:.0f} MB   threaded {ingest['threaded']:.0f}/{ingest['replies']:.0f} replies"
        )
        rules_only = bench_ingest(corpus, work, models=False)
        print(
            f"  same, rules only (no model)  {rules_only['rate']:8.1f} mails/s  = "
            f"{rules_only['rate'] / parse_rate:.0%} of parse-only   peak RSS {rules_only['rss']:.0f} MB"
        )
        smtp = bench_smtp(corpus, work, args.smtp_connections)
        print(
            f"SMTP listener → processed     {smtp['rate']:8.1f} mails/s  = {smtp['rate'] / parse_rate:.0%} of parse-only"
            f"   (250s at {smtp['accept_rate']:.0f}/s)   250→processed p50 {smtp['p50']:.0f} ms p99 {smtp['p99']:.0f} ms"
            f"   peak RSS {smtp['rss']:.0f} MB   threaded {smtp['threaded']:.0f}/{smtp['replies']:.0f} replies"
        )


if __name__ == "__main__":
    main()
