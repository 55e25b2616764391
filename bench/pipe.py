"""Pipe benchmark: `helpdesk ingest` of one piped mail, with a daemon serving the desk and without.

For each mail, a fresh `helpdesk ingest --recipient <support>` process reads it on standard input,
as an MTA's pipe runs it; measured per process: wall time (spawn to exit) and peak RSS (the
child's own `ru_maxrss`, from wait4). With a daemon running, also the time from ingest's exit to
the acknowledgment in the outgoing maildir. The reference, `python -c pass`, is timed in the same
run so a loaded machine shows in both. Figures are medians (and the worst) over `--mails`.

    python -m bench.pipe [--mails 10] [--postgres]   (default: SQLite; --postgres: a private cluster)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from models.heartbeat import DaemonRow
from tests.conftest import REPO_ROOT
from tests.intake.daemon_harness import DaemonDesk
from tests.loopback import wait_until
from tests.mail import SUPPORT, make_mail

POLL = 0.002


# Runs the command it is given and reports the child's own wall time and peak RSS on stderr. Linux
# keeps a process's peak RSS across execve, so a child forked straight from this (large) process
# would report ours: the small launcher forks it instead.
LAUNCHER = """
import os, sys, time
started = time.monotonic()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status, usage = os.wait4(pid, 0)
sys.stderr.write(f"LAUNCHED {time.monotonic() - started} {usage.ru_maxrss}\\n")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def spawn(argv: list[str], data: bytes, cwd: Path) -> tuple[float, float, bytes]:
    """Run `argv` with `data` on stdin: its wall time (s), its own peak RSS (MB), its stdout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER, *argv],
        input=data,
        capture_output=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{argv[-1]} exited {done.returncode}: {done.stderr.decode(errors='replace')}")
    wall, peak_kb = done.stderr.decode().strip().splitlines()[-1].split()[1:]
    return float(wall), int(peak_kb) / 1024, done.stdout


def summary(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "max": round(max(values), 3)}


def ingest_argv(desk: DaemonDesk) -> list[str]:
    command = [sys.executable, "-m", "helpdesk.cli", "--config", str(desk.config), "ingest", "--json"]
    return [*command, "--sender", "walkin@example.com", "--recipient", SUPPORT]


def reference(mails: int, cwd: Path) -> dict[str, Any]:
    walls = [spawn([sys.executable, "-c", "pass"], b"", cwd)[0] for _ in range(mails)]
    return {"case": "python -c pass", "wall_s": summary(walls)}


def piped(desk: DaemonDesk, mails: int, tag: str, *, daemon: bool) -> dict[str, Any]:
    walls: list[float] = []
    rss: list[float] = []
    acks: list[float] = []  # 0 when the acknowledgment was there before ingest's exit was seen
    from_start: list[float] = []
    for number in range(mails):
        before = len(desk.sent_files())
        data = make_mail(message_id=f"<{tag}-{number}@example.com>", sender=f"user{number}@example.com")
        started = time.monotonic()
        wall, peak, out = spawn(ingest_argv(desk), data, desk.root)
        exited = time.monotonic()
        counts = json.loads(out)
        assert counts["handed_to_daemon"] is daemon, counts
        walls.append(wall)
        rss.append(peak)
        if daemon:
            assert wait_until(lambda b=before: len(desk.sent_files()) > b, 60, POLL)  # type: ignore[misc]
            acked = time.monotonic()
            acks.append(acked - exited)
            from_start.append(acked - started)
    result: dict[str, Any] = {
        "case": f"ingest, {'daemon running' if daemon else 'no daemon'}",
        "mails": mails,
        "wall_s": summary(walls),
        "rss_mb": summary(rss),
    }
    if daemon:
        result["ack_after_exit_s"] = summary(acks)
        result["ack_after_ingest_start_s"] = summary(from_start)
    return result


def measure(mails: int, db_url: str | None) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-pipe-") as tmp:
        root = Path(tmp) / "desk"
        root.mkdir()
        desk = DaemonDesk(root, db_url or f"sqlite:///{root / 'helpdesk.db'}", ())
        try:
            results = [reference(mails, root)]
            served = desk.serve()
            served.wait_ready()

            def beating() -> bool:
                with desk.sessions() as session:
                    return session.get(DaemonRow, served.holder) is not None

            assert wait_until(beating, 60, 0.05)
            piped(desk, 1, "warm", daemon=True)
            results.append(piped(desk, mails, "handed", daemon=True))
            served.stop()
            results.append(piped(desk, mails, "alone", daemon=False))
            results.append(reference(mails, root))
            return results
        finally:
            desk.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mails", type=int, default=10)
    parser.add_argument("--postgres", action="store_true", help="on a private PostgreSQL (default: SQLite)")
    args = parser.parse_args(argv)
    if not args.postgres:
        lines = measure(args.mails, None)
    else:
        from tests.servers.postgres import PostgresCluster

        cluster = PostgresCluster()
        try:
            cluster.start()
            lines = measure(args.mails, cluster.create_database())
        finally:
            cluster.close()
    for line in lines:
        print(json.dumps({"database": "postgresql" if args.postgres else "sqlite", **line}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
