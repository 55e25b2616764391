"""A real headless Chromium (the Debian package) opens the queue, a ticket, coverage and reports
on a desk of 500 tickets and technicians in several time zones, signed in by a one-time link:
screenshots are taken, and the DOM it rendered holds the tables and the charts."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from bench.desk_seed import COORDINATOR, seed_tickets
from tests.servers.chromium import Chromium, chromium_binary
from tests.servers.common import ServerUnavailable
from tests.servers.fixtures import server_unavailable
from tests.web.conftest import Served

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# Pages, the height to capture, and what must be in the DOM: tables, charts (inline SVG).
PAGES = {
    "queue": ("/queue", 1400, {"table": 1, "svg": 0}),
    "ticket": ("/tickets/250", 1600, {"table": 3, "svg": 0}),
    "coverage": ("/coverage", 1400, {"table": 2, "svg": 3}),
    "reports": ("/reports", 2600, {"table": 2, "svg": 10}),
}


@pytest.fixture
def chromium() -> Chromium:
    try:
        return Chromium(chromium_binary())
    except ServerUnavailable as exc:
        server_unavailable(str(exc))


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_chromium_shows_the_pages_with_their_tables_and_charts(
    serve: object, chromium: Chromium, tmp_path: Path
) -> None:
    desk: Served = serve()  # type: ignore[operator]
    with desk.app.sessions() as session, session.begin():
        seed_tickets(session, 500, now=desk.clock())
    keep = os.environ.get("HELPDESK_SCREENSHOTS")  # a directory to keep them in, to look at
    for name, (path, height, wanted) in PAGES.items():
        png = chromium.screenshot(desk.link(COORDINATOR, path), tmp_path / f"{name}.png", height=height)
        assert png.read_bytes().startswith(PNG_MAGIC)
        assert png.stat().st_size > 20_000, f"{name}: a screenshot that small is an empty page"
        dom = chromium.dom(desk.link(COORDINATOR, path), cwd=tmp_path)
        assert "Sign in" not in re.sub(r"<form.*?</form>", "", dom, flags=re.S)[:2000] or name == "x"
        for tag, at_least in wanted.items():
            assert dom.count(f"<{tag}") >= at_least, f"{name}: fewer than {at_least} <{tag}> in {dom[:500]}"
        assert "Cora Ordinator · coordinator" in dom, f"{name}: not signed in"
        if keep:
            shutil.copy(png, Path(keep) / png.name)
    queue_dom = chromium.dom(desk.link(COORDINATOR, "/queue"), cwd=tmp_path)
    assert re.search(r"(left|overdue)", queue_dom)
    coverage_dom = chromium.dom(desk.link(COORDINATOR, "/coverage"), cwd=tmp_path)
    assert 'class="gap"' in coverage_dom  # the seeded roster leaves hours uncovered, marked
