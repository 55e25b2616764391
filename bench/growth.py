"""The pipeline's rate on a desk with many tickets against its rate on an empty one, in one run.

    python -m bench.growth [--tickets 100000] [--mails 600] [--database-url URL]

Two desks (SQLite under a temporary directory, or two fresh databases on a PostgreSQL server
given as `--database-url` with `{name}` where the database name goes): one empty, one seeded
with `--tickets` tickets (`bench.desk.seed_tickets`). The same corpus of mails (new requests,
replies threaded by headers and by subject tag, automatic mail) is stored in each and processed
by the worker in this process, in rounds that alternate between the two desks; the figure is
the best round's mails per second of processing alone (stored,
parsed, threaded, routed, assigned, acknowledged into the outbox), so the process start and
model loading are not counted. The target: the big desk within 20% of the empty one.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

from bench.corpus import generate
from bench.desk import database_url, init_desk, seed_tickets, write_config
from helpdesk.app import App, build_app
from helpdesk.settings import load_settings
from intake.raw_queue import Incoming

TARGET_RATIO = 0.8


def process_round(app: App, mails: list[bytes], n: int) -> float:
    """Mails per second the worker processes of one round of fresh copies of `mails`."""
    # Each round its own copies (the same Message-IDs again would be duplicates), with the
    # replies' references renamed alike so that they thread as in the first round.
    batch = [data.replace(b"<bench.", f"<r{n}-bench.".encode()) for data in mails]
    list(app.store.store_many(Incoming(data=d, source="bench") for d in batch))
    started = time.perf_counter()
    report = app.worker.process_available()
    return report.processed / (time.perf_counter() - started)


def open_desk(desk: Path) -> App:
    app = build_app(load_settings(str(desk / "helpdesk.toml")))
    for target in ("category", "priority"):
        app.models.load_active(target)
    app.worker.parser.start()
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--mails", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", help="PostgreSQL URL with {name} for the database name")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    mails = generate(args.mails).mails
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        desks = {}
        for name in ("empty", "big"):
            desk = Path(tmp) / name
            url = args.database_url.format(name=f"bench_growth_{name}") if args.database_url else None
            write_config(desk, database_url=url)
            init_desk(desk)
            desks[name] = (desk, url or database_url(desk))
        started = time.perf_counter()
        seed_tickets(desks["big"][1], args.tickets)
        print(f"seeded {args.tickets} tickets in {time.perf_counter() - started:.0f} s")
        os.environ.pop("HELPDESK_CONFIG", None)
        # Rounds alternate between the desks, so that a busy moment of the machine weighs on both.
        apps = {name: open_desk(desk) for name, (desk, _) in desks.items()}
        rates: dict[str, list[float]] = {name: [] for name in apps}
        try:
            for n in range(args.rounds):
                for name, app in apps.items():
                    rates[name].append(process_round(app, mails, n))
        finally:
            for app in apps.values():
                app.close()
        empty, big = max(rates["empty"]), max(rates["big"])
        print(
            "rounds (mails/s): "
            + "; ".join(f"{k} " + ", ".join(f"{r:.1f}" for r in v) for k, v in rates.items())
        )
    print(f"rate at 0 tickets:       {empty:6.1f} mails/s (the reference)")
    print(f"rate at {args.tickets} tickets: {big:6.1f} mails/s")
    verdict = "ok" if big >= TARGET_RATIO * empty else "UNDER"
    print(f"ratio {big / empty:.2f} (target >= {TARGET_RATIO}): {verdict}")


if __name__ == "__main__":
    main()
