"""Daemon throughput: the whole pipeline of `helpdesk serve` against mail-parser alone, in one run.

    python -m bench.throughput [--count 1000] [--workers 1 0]

1. parse-only: mail-parser on every mail of the corpus (the yardstick);
2. for each `[intake] workers` value given (0: one per CPU), a fresh desk with `helpdesk serve`
   running, warmed up; `helpdesk ingest --maildir --no-process` stores the corpus and the daemon
   is woken as a piped ingest wakes it; the clock runs from the store's start until every mail is processed (parsed, threaded, routed,
   assigned, acknowledged) and every acknowledgment is delivered to the outgoing maildir.

It prints mails per second, the ratio to parse-only, and where the CPU went: the daemon's own
process (routing, database writes and commits, rendering, sending) and its parser processes
(from /proc, so Linux only). `--profile` instead runs the worker and the sender in this process
under cProfile and prints the time of each part of the work.
"""

from __future__ import annotations

import argparse
import mailbox
import os
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

from bench.corpus import Corpus, generate
from bench.ingest_throughput import HELPDESK, parse_only, write_config
from intake.wakeup import touch
from tests.loopback import free_port
from tests.mail import wait_for_listener

TICK = os.sysconf("SC_CLK_TCK")
POLL = 0.02


def cpu_seconds(pid: int) -> float:
    """User and system CPU of one live process, from /proc (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (proc(5), fields 14 and 15)


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def cpu_split(pid: int, seen: dict[int, float]) -> tuple[float, float]:
    """(the daemon's own CPU, its parser processes' CPU) in seconds; `seen` keeps the children's
    last figure, so a child killed meanwhile still counts what it was last seen using."""
    for child in children(pid):
        seen[child] = max(seen.get(child, 0.0), cpu_seconds(child))
    return cpu_seconds(pid), sum(seen.values())


def left(db: Path) -> tuple[int, int, int]:
    """(stored mails not yet processed, outgoing mails not yet delivered, delivered)."""
    con = sqlite3.connect(db, timeout=30)
    try:
        raw = con.execute("SELECT count(*) FROM raw_messages WHERE status IN ('received','processing')")
        out = con.execute("SELECT count(*) FROM outbox WHERE status IN ('pending','sending')")
        sent = con.execute("SELECT count(*) FROM outbox WHERE status = 'sent'")
        return raw.fetchone()[0], out.fetchone()[0], sent.fetchone()[0]
    finally:
        con.close()


def daemon_run(corpus_dir: Path, count: int, work: Path, workers: int) -> dict[str, float]:
    port = free_port()
    desk = work / f"serve-workers-{workers}"
    desk.mkdir()
    config = write_config(desk, port)
    with config.open("a") as toml:
        toml.write(f"[intake]\nworkers = {workers}\n")
    env = {**os.environ, "HELPDESK_CONFIG": str(config)}
    server = subprocess.Popen(
        [*HELPDESK, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    db = desk / "var" / "helpdesk.db"
    try:
        wait_for_listener(port, server)
        while not sqlite3.connect(db).execute("SELECT count(*) FROM daemons").fetchone()[0]:
            time.sleep(POLL)  # the heartbeat: `ingest` hands mail only to a daemon it sees
        parsers = len(children(server.pid))
        seen: dict[int, float] = {}
        own0, kids0 = cpu_split(server.pid, seen)
        started = time.perf_counter()
        subprocess.run(
            [*HELPDESK, "ingest", "--maildir", str(corpus_dir), "--no-process"],
            env=env,
            capture_output=True,
            check=True,
        )
        stored = time.perf_counter() - started
        touch(Path(f"{db}.wakeup"))  # as a piped ingest tells the daemon (intake/wakeup.py)
        while True:
            raw, out, sent = left(db)
            cpu_split(server.pid, seen)
            if raw == 0 and out == 0:
                break
            time.sleep(POLL)
        seconds = time.perf_counter() - started
        own1, kids1 = cpu_split(server.pid, seen)
    finally:
        server.terminate()
        server.wait(30)
    delivered = len(list((desk / "var" / "sent" / "new").iterdir()))
    return {
        "workers": workers,
        "parsers": parsers,
        "rate": count / seconds,
        "seconds": seconds,
        "stored_s": stored,
        "acknowledged": sent,
        "delivered": delivered,
        "daemon_cpu": own1 - own0,
        "parser_cpu": kids1 - kids0,
    }


def profile(corpus: Corpus, work: Path) -> None:
    """The worker and the sender in this process under cProfile; the time of each part."""
    import cProfile
    import pstats

    from helpdesk.app import build_app
    from helpdesk.daemon import Daemon
    from helpdesk.settings import load_settings
    from intake.raw_queue import Incoming

    desk = work / "profile"
    desk.mkdir()
    config = write_config(desk, free_port())
    os.chdir(desk)
    app = build_app(load_settings(config))
    list(app.store.store_many(Incoming(data, "bench") for data in corpus.mails))
    Daemon(app).warm_up()
    profiler = cProfile.Profile()
    profiler.enable()
    app.worker.process_available()
    app.sender.deliver_due(limit=len(corpus.mails) * 2)
    profiler.disable()
    app.close()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts = {
        "worker, in all": ("intake/worker.py", "process_available"),
        "  waiting for the parser processes": ("intake/parse_ahead.py", "parse_group"),
        "  authenticate (Authentication-Results)": ("intake/pipeline.py", "authenticate"),
        "  thread (find the ticket)": ("intake/pipeline.py", "thread"),
        "  route (rules and classifier)": ("intake/pipeline.py", "route"),
        "    of which the classifier": ("routing/engine.py", "_ask"),
        "  open the ticket": ("intake/pipeline.py", "open_new"),
        "  assign": ("intake/pipeline.py", "assign"),
        "  acknowledge (render, enqueue)": ("intake/pipeline.py", "acknowledge"),
        "  commits": ("intake/worker.py", "_commit"),
        "sender (maildir), in all": ("notify/sender.py", "deliver_due"),
        "  claiming rows": ("notify/sender.py", "_claim_next"),
    }
    total = sum(row[3] for key, row in stats.items() if key[2] in ("process_available", "deliver_due"))
    print(
        f"profiled {len(corpus.mails)} mails: {total:.2f} s ({total / len(corpus.mails) * 1000:.1f} ms/mail)"
    )
    for label, (path, name) in parts.items():
        seconds = sum(row[3] for key, row in stats.items() if key[0].endswith(path) and key[2] == name)
        print(f"  {label:42s} {seconds:6.2f} s  {seconds / len(corpus.mails) * 1000:5.1f} ms/mail")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 0], help="[intake] workers of each run")
    parser.add_argument("--profile", action="store_true", help="profile the work in this process instead")
    args = parser.parse_args()
    corpus = generate(args.count)
    print(
        f"corpus: {len(corpus.mails)} mails, {sum(map(len, corpus.mails)) / 1e6:.1f} MB, {os.cpu_count()} CPUs"
    )
    with tempfile.TemporaryDirectory(prefix="hd-bench-") as tmp:
        work = Path(tmp)
        if args.profile:
            profile(corpus, work)
            return
        corpus_dir = work / "corpus"
        box = mailbox.Maildir(str(corpus_dir), create=True)
        for data in corpus.mails:
            box.add(data)
        parse_rate = parse_only(corpus)
        print(f"parse-only (mail-parser)          {parse_rate:7.1f} mails/s")
        for workers in args.workers:
            run = daemon_run(corpus_dir, len(corpus.mails), work, workers)
            print(
                f"serve, workers={workers} ({run['parsers']:.0f} parsers)  {run['rate']:7.1f} mails/s"
                f"  = {run['rate'] / parse_rate:.2f} of parse-only  in {run['seconds']:.1f} s"
                f" (stored in {run['stored_s']:.1f} s)  acknowledgments delivered {run['delivered']:.0f}"
                f"/{run['acknowledged']:.0f}  CPU: daemon {run['daemon_cpu']:.1f} s,"
                f" parsers {run['parser_cpu']:.1f} s"
            )
        print(f"parse-only again                  {parse_only(corpus):7.1f} mails/s")


if __name__ == "__main__":
    main()
