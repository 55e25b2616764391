"""Command wall times on a desk with many tickets: each listing against the interpreter's own start.

    python -m bench.commands [--tickets 20000] [--repeat 7] [--postgres]

Seeds a desk (`helpdesk init`, then `bench.desk.seed_tickets`; SQLite, or with `--postgres` a
private PostgreSQL cluster), then runs `tickets list`, `tickets show`, `status` and
`quarantine list` as a user does, in a fresh process each time, `--repeat` times, and prints the
best and median wall time and the CPU time of each (the best is what the machine allows; the
median says how noisy it was). The references, measured in the same run: `python -c pass` (an
interpreter that does nothing), SQLAlchemy with every table mapped (what a command that reads
through the ORM pays before its first statement) and the target, 0.3 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.desk import HELPDESK, database_url, init_desk, seed_tickets, write_config

TARGET_SECONDS = 0.3
# SQLAlchemy with every table mapped: the floor of a command that reads through the ORM.
ORM_LOADED = "import models, sqlalchemy.orm; models.load_all(); sqlalchemy.orm.configure_mappers()"
COMMANDS = {
    "tickets list": ["tickets", "list"],
    "tickets list --json": ["tickets", "list", "--json"],
    "tickets show N": ["tickets", "show", "{middle}"],
    "status": ["status"],
    "quarantine list": ["quarantine", "list"],
}


def timed(argv: list[str], cwd: Path, repeat: int) -> tuple[float, float, float]:
    """Best wall, median wall and best CPU (user + system) seconds of `argv` run `repeat` times."""
    walls, cpus = [], []
    for _ in range(repeat):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(argv, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return min(walls), statistics.median(walls), min(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--desk", type=Path, help="use (and keep) this directory instead of a temporary one")
    parser.add_argument("--postgres", action="store_true", help="on a private PostgreSQL (default: SQLite)")
    args = parser.parse_args()
    if not args.postgres:
        run(args, None)
        return
    from tests.servers.postgres import PostgresCluster

    cluster = PostgresCluster()
    try:
        cluster.start()
        run(args, cluster.create_database())
    finally:
        cluster.close()


def run(args: argparse.Namespace, url: str | None) -> None:
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        desk = args.desk or Path(tmp)
        if not (desk / "helpdesk.toml").exists():
            write_config(desk, database_url=url)
            init_desk(desk)
            started = time.perf_counter()
            seed_tickets(url or database_url(desk), args.tickets)
            print(f"seeded {args.tickets} tickets in {time.perf_counter() - started:.1f} s")
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        os.environ.update(env)
        print(f"database: {'postgresql' if url else 'sqlite'}")
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        print(f"{'command':<24}{'best s':>8}{'median s':>10}{'cpu s':>8}   reference")
        for name, code in (("python -c pass", "pass"), ("ORM, every table", ORM_LOADED)):
            floor = timed([sys.executable, "-c", code], desk, args.repeat)
            print(f"{name:<24}{floor[0]:>8.3f}{floor[1]:>10.3f}{floor[2]:>8.3f}   (a floor)")
        middle = str(args.tickets // 2)
        for name, words in COMMANDS.items():
            argv = [*HELPDESK, *(w.format(middle=middle) for w in words)]
            best, median, cpu = timed(argv, desk, args.repeat)
            verdict = "ok" if best < TARGET_SECONDS else "OVER"
            print(f"{name:<24}{best:>8.3f}{median:>10.3f}{cpu:>8.3f}   target {TARGET_SECONDS} s: {verdict}")


if __name__ == "__main__":
    main()
