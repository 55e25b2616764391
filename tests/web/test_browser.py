"""A real headless Chromium (the Debian package) signs in with a one-time link as a coordinator
would, then opens the queue, a ticket, coverage and reports on a desk of 500 tickets and
technicians in several time zones: screenshots are taken, and the DOM it rendered holds the
tables and the charts. The pages run no script; the browser is driven over DevTools."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.desk_seed import COORDINATOR, seed_tickets
from tests.servers.chromium import Chromium, chromium_binary
from tests.servers.common import ServerUnavailable
from tests.servers.fixtures import server_unavailable
from tests.web.conftest import Served

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Pages, the height to capture, and how many tables and charts (inline SVG) each must show.
PAGES = {
    "queue": ("/queue", 1400, {"table": 1, "svg": 0}),
    "ticket": ("/tickets/250", 1600, {"table": 3, "svg": 0}),
    "coverage": ("/coverage", 1400, {"table": 2, "svg": 3}),
    "reports": ("/reports", 2400, {"table": 2, "svg": 10}),
    "team": ("/team", 900, {"table": 1, "svg": 1}),
    "sla": ("/sla", 1400, {"table": 3, "svg": 1}),
}


@pytest.fixture
def chromium() -> Iterator[Chromium]:
    try:
        browser = Chromium(chromium_binary())
    except ServerUnavailable as exc:
        server_unavailable(str(exc))
    with browser:
        yield browser


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_chromium_signs_in_and_shows_the_pages_with_their_tables_and_charts(
    serve: object, chromium: Chromium, tmp_path: Path
) -> None:
    desk: Served = serve()  # type: ignore[operator]
    with desk.app.sessions() as session, session.begin():
        seed_tickets(session, 500, now=desk.clock())
    base = f"http://127.0.0.1:{desk.server.port}"
    chromium.open(f"{base}/queue")
    assert chromium.evaluate("location.pathname") == "/sign-in"
    chromium.open(desk.link(COORDINATOR, "/queue"))
    assert "Sign in to the dashboard" in chromium.dom()
    chromium.click("#sign-in")
    assert chromium.evaluate("location.pathname") == "/queue", chromium.dom()[:3000]
    assert chromium.evaluate("document.cookie") == ""  # HttpOnly: no script could read the session
    keep = os.environ.get("HELPDESK_SCREENSHOTS")  # a directory to keep them in, to look at
    for name, (path, height, wanted) in PAGES.items():
        chromium.open(base + path)
        dom = chromium.dom()
        assert "Cora Ordinator · coordinator" in dom, f"{name}: not signed in"
        for tag, at_least in wanted.items():
            found = len(re.findall(rf"<{tag}[\s>]", dom))
            assert found >= at_least, f"{name}: {found} <{tag}>, expected at least {at_least}"
        png = chromium.screenshot(tmp_path / f"{name}.png", height=height)
        assert png.read_bytes().startswith(PNG_MAGIC)
        assert png.stat().st_size > 20_000, f"{name}: a screenshot that small is an empty page"
        if keep:
            shutil.copy(png, Path(keep) / png.name)
    chromium.open(f"{base}/queue")
    assert re.search(r"overdue \d+d", chromium.dom())
    chromium.open(f"{base}/coverage")
    assert 'class="gap"' in chromium.dom()  # the seeded roster leaves hours uncovered, marked
