"""Daemon memory over many mails, and the first mail's latency after a start against the tenth's.

    python -m bench.memory [--mails 20000] [--connections 4]

Starts `helpdesk serve` on a fresh desk (starter models active), then:

1. sends ten new requests one at a time, each waited for until it is processed (stored, parsed,
   routed by both models, assigned, acknowledged), and prints the first's latency against the
   tenth's (the target: within 20%);
2. sends `--mails` mails of the benchmark corpus over several SMTP connections and samples the
   daemon's RSS (/proc/PID/status) as they are processed: at start, after each tenth of them,
   and the peak (the target: < 150 MB with both models loaded, and flat).

References measured in the same run: the RSS of an interpreter that only imports what loading a
model with skops took (scikit-learn, scipy, skops), and the 150 MB target.
"""

from __future__ import annotations

import argparse
import smtplib
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path

from bench.corpus import generate
from bench.desk import HELPDESK, SUPPORT, init_desk, write_config
from tests.loopback import free_port
from tests.mail import wait_for_listener

TARGET_MB = 150.0
_REQUESTS = [
    ("Printer on floor {n} does not print", "The printer on floor {n} shows a paper jam."),
    ("VPN disconnects", "Since the update my VPN drops every few minutes, laptop {n}."),
    ("Hasło wygasło", "Moje hasło wygasło i nie mogę się zalogować do komputera {n}."),
    ("Drucker im {n}. Stock", "Der Drucker meldet Papierstau, aber es steckt kein Papier."),
]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for {pid}")


def processed(db: Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try:
        return int(
            con.execute("SELECT count(*) FROM raw_messages WHERE processed_at IS NOT NULL").fetchone()[0]
        )
    finally:
        con.close()


def crlf(data: bytes) -> bytes:
    # SMTP lines end in CRLF (RFC 5321 2.3.8); generated mail has bare LF.
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def one_at_a_time(port: int, db: Path, count: int) -> list[float]:
    """Latency (s) from the start of each SMTP transaction to the mail being processed."""
    latencies = []
    done = processed(db)
    with smtplib.SMTP("127.0.0.1", port) as client:
        for n in range(count):
            subject, body = _REQUESTS[n % len(_REQUESTS)]
            mail = EmailMessage()
            mail["From"] = f"requester{n}@example.com"
            mail["To"] = SUPPORT
            mail["Subject"] = subject.format(n=n + 1)
            mail["Message-ID"] = f"<latency-{n}-{time.time_ns()}@example.com>"
            mail.set_content(body.format(n=n + 1))
            started = time.perf_counter()
            client.sendmail(mail["From"], [SUPPORT], crlf(mail.as_bytes()))
            while processed(db) <= done:
                time.sleep(0.002)
            latencies.append(time.perf_counter() - started)
            done += 1
    return latencies


def reference_rss() -> float:
    """RSS (MB) of an interpreter that imported what loading a model with skops needed."""
    code = "import skops.io, sklearn.pipeline, sklearn.feature_extraction.text, sklearn.svm; import os; print(os.getpid())"
    probe = subprocess.run(
        [sys.executable, "-c", code + "\nfrom bench.memory import rss_mb; print(rss_mb(os.getpid()))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(probe.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mails", type=int, default=20_000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument(
        "--settle", type=float, default=0.0, help="after the ten, wait this long and time one more"
    )
    args = parser.parse_args()
    corpus = generate(args.mails)
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        desk = Path(tmp)
        port = free_port()
        write_config(desk, port=port)
        init_desk(desk)
        db = desk / "var" / "helpdesk.db"
        server = subprocess.Popen(
            [*HELPDESK, "serve"], cwd=desk, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_listener(port, server)
            at_start = rss_mb(server.pid)
            latencies = one_at_a_time(port, db, 10)
            settled: float | None = None
            if args.settle:
                time.sleep(args.settle)
                settled = one_at_a_time(port, db, 1)[0]
            after_ten = rss_mb(server.pid)
            samples: list[tuple[int, float]] = []
            chunks = [corpus.mails[i :: args.connections] for i in range(args.connections)]

            def send(chunk: list[bytes]) -> None:
                with smtplib.SMTP("127.0.0.1", port) as client:
                    for data in chunk:
                        client.sendmail("bench@example.com", [SUPPORT], crlf(data))

            started = time.perf_counter()
            threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
            for t in threads:
                t.start()
            base = processed(db)
            step = max(1, args.mails // 10)
            while (done := processed(db) - base) < args.mails:
                if not samples or done >= samples[-1][0] + step:
                    samples.append((done, rss_mb(server.pid)))
                time.sleep(0.2)
            for t in threads:
                t.join()
            seconds = time.perf_counter() - started
            samples.append((args.mails, rss_mb(server.pid)))
            peak = peak_mb(server.pid)
        finally:
            server.terminate()
            server.wait(60)
    reference = reference_rss()
    first, tenth = latencies[0], latencies[-1]
    print(f"latency, first mail after start {first * 1000:.0f} ms, tenth {tenth * 1000:.0f} ms "
          f"(first/tenth {first / tenth:.2f}; target <= 1.20); all ten: "
          + ", ".join(f"{x * 1000:.0f}" for x in latencies))  # fmt: skip
    if settled is not None:
        print(f"a mail after {args.settle:g} s idle: {settled * 1000:.0f} ms")
    print(f"RSS at start, models loaded: {at_start:.1f} MB; after ten mails {after_ten:.1f} MB")
    print(f"{args.mails} mails in {seconds:.1f} s ({args.mails / seconds:.0f}/s); RSS by mails processed:")
    for done, mb in samples:
        print(f"  {done:>7}  {mb:6.1f} MB")
    growth = samples[-1][1] - samples[min(1, len(samples) - 1)][1]
    print(
        f"peak RSS {peak:.1f} MB (target < {TARGET_MB:.0f} MB); from the first tenth to the end {growth:+.1f} MB"
    )
    print(f"reference: an interpreter with scikit-learn, scipy and skops imported: {reference:.1f} MB")


if __name__ == "__main__":
    main()
