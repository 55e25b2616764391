"""Dashboard page timings on a seeded desk: each page's server time (its Server-Timing header).

    python -m bench.web_pages [--tickets 20000] [--rounds 5] [--database URL]

Seeds a fresh SQLite desk (or the given empty database) with technicians in several time zones
and N tickets over eight weeks (bench/desk_seed.py), serves the dashboard on a free loopback
port, signs in as the coordinator with a one-time link, and fetches each page `rounds` times.
It prints the median and the worst server time per page; the target is under 200 ms each.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from bench.desk_seed import COORDINATOR, seed_roster, seed_tickets
from helpdesk.app import build_app
from helpdesk.settings import build_settings
from helpdesk.web.server import WebServer, dashboard_of
from models.base import utcnow
from models.db import create_db_engine, migrate

PAGES = ("/queue", "/tickets/{n}", "/team", "/sla", "/coverage", "/reports", "/metrics")
TARGET_MS = 200.0


def fetch(port: int, path: str, cookie: str = "", form: str = "") -> tuple[int, float, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    if form:
        conn.request("POST", path, body=form, headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
    response = conn.getresponse()
    response.read()
    timing = response.getheader("server-timing") or "app;dur=nan"
    set_cookie = (response.getheader("set-cookie") or "").split(";", 1)[0]
    conn.close()
    return response.status, float(timing.split("dur=")[1]), set_cookie, response.getheader("location") or ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database", help="an empty database URL (default: a temporary SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = build_settings(
            {
                "mail": {"address": "support@example.test", "secret": "bench-secret"},
                "database": {"url": url},
                "outgoing": {"url": "maildir:sent"},
                "web": {"listen": ""},
            },
            Path(tmp),
            None,
        )
        engine = create_db_engine(settings.database)
        migrate(engine)
        engine.dispose()
        app = build_app(settings)
        started = time.perf_counter()
        with app.sessions() as session, session.begin():
            seed_roster(session)
            seed_tickets(session, args.tickets, now=utcnow())
        print(f"seeded {args.tickets} tickets in {time.perf_counter() - started:.1f} s")
        server = WebServer(dashboard_of(app), "127.0.0.1", 0)
        server.start()
        try:
            link = urlsplit(server.board.link(COORDINATOR))
            _, _, cookie, _ = fetch(server.port, "/auth", form=link.query)  # the link page's button
            worst_page = 0.0
            print(f"{'page':<16}{'median ms':>12}{'max ms':>10}")
            for page in PAGES:
                path = page.format(n=args.tickets // 2)
                times = []
                for _ in range(args.rounds):
                    status, took, _, _ = fetch(server.port, path, cookie)
                    if status != 200:
                        print(f"{path}: HTTP {status}", file=sys.stderr)
                        return 1
                    times.append(took)
                worst_page = max(worst_page, statistics.median(times))
                print(f"{page:<16}{statistics.median(times):>12.1f}{max(times):>10.1f}")
            print(f"slowest page median {worst_page:.1f} ms (target < {TARGET_MS:.0f} ms)")
        finally:
            server.stop()
            app.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
