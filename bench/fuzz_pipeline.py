"""A long fuzz run of the pipeline's first stages: parse, automatic-mail classification, threading.

    python -m bench.fuzz_pipeline [--seconds 180] [--bound 3.0]

The mails are the hostile ones of tests/mail_strategies.py (Hypothesis strategies: raw bytes built
by hand, and the quirk files of tests/data mutated), checked as the property test in `make test`
checks them, for as long as asked. The pipeline runs in a child process, so that its peak RSS is
its own and not the generator's (Hypothesis keeps what it generated). It prints the cases run,
how they ended, the slowest case and its time, how many took longer than the bound, and the
child's peak RSS; the slowest mail is written to bench/out/fuzz-slowest.eml. A mail that breaks a
stage stops the run with its bytes.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import resource
import tempfile
import time
import warnings
from multiprocessing.connection import Connection
from pathlib import Path

from hypothesis import HealthCheck, Phase, Verbosity, given, settings

from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from tests.mail_strategies import Counts, add_known_ticket, mail_bytes, through_the_pipeline

OUT = Path(__file__).resolve().parent / "out"


class TimeUp(Exception):
    """The run has lasted as long as asked."""


def pipeline_child(conn: Connection) -> None:
    """Runs each mail it is sent through the pipeline's first stages; answers with the time taken."""
    logging.getLogger("mailparser").setLevel(logging.CRITICAL)
    counts = Counts()
    with tempfile.TemporaryDirectory(prefix="hd-fuzz-") as tmp:
        engine = create_db_engine(DatabaseConfig(url=f"sqlite:///{tmp}/fuzz.db", sqlite_synchronous="OFF"))
        migrate(engine)
        sessions = session_factory(engine)
        with sessions() as session:
            add_known_ticket(session)
        while True:
            data = conn.recv_bytes()
            if not data:
                break
            begun = time.perf_counter()
            try:
                with sessions() as session:
                    through_the_pipeline(data, session, counts)
            except Exception as exc:
                conn.send(("broke", f"{exc.__class__.__name__}: {exc}"))
                return
            conn.send(("ok", time.perf_counter() - begun))
        engine.dispose()
    conn.send((counts, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=180.0, help="how long to run")
    parser.add_argument("--bound", type=float, default=3.0, help="seconds one case may take")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # Hypothesis warns about the size of the mails it shows
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(target=pipeline_child, args=(theirs,))
    child.start()
    slowest = (0.0, b"")
    over: list[float] = []
    started = time.monotonic()
    stop_at = started + args.seconds

    # Runs of 2,000 cases each: Hypothesis keeps what one run generated (2.3 GB after 20,000 cases).
    @settings(
        max_examples=2000,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(data=mail_bytes)
    def case(data: bytes) -> None:
        nonlocal slowest
        if time.monotonic() > stop_at:
            raise TimeUp
        ours.send_bytes(data or b"\n")
        status, detail = ours.recv()
        if status != "ok":
            (OUT / "fuzz-broke.eml").write_bytes(data)
            raise SystemExit(f"a mail broke the pipeline (bench/out/fuzz-broke.eml): {detail}")
        if detail > slowest[0]:
            slowest = (detail, data)
        if detail > args.bound:
            over.append(detail)

    OUT.mkdir(exist_ok=True)
    try:
        while time.monotonic() < stop_at:
            case()
    except TimeUp:
        pass
    elapsed = time.monotonic() - started
    ours.send_bytes(b"")
    counts, peak = ours.recv()
    child.join()
    (OUT / "fuzz-slowest.eml").write_bytes(slowest[1])
    print(f"cases run            {counts.cases} in {elapsed:.0f} s ({counts.cases / elapsed:.1f}/s)")
    print(f"refused (ParseError) {counts.refused}")
    print(f"kinds                {dict(sorted(counts.kinds.items()))}")
    print(f"threaded to a ticket {counts.threaded}")
    print(
        f"slowest case         {slowest[0] * 1000:.0f} ms, {len(slowest[1])} bytes (bench/out/fuzz-slowest.eml)"
    )
    print(f"over {args.bound:g} s            {len(over)}")
    print(f"peak RSS (pipeline)  {peak:.0f} MB")


if __name__ == "__main__":
    main()
