"""The exported knowledge base searches in a real browser opened from file://, and escapes what it shows."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from helpdesk.kb_site import SiteArticle, export_site

ARTICLES = [
    SiteArticle(1, "Drukarka nie drukuje", "Zatrzymaj bufor wydruku.</script><img src=x onerror=alert(1)>", "pl",
                "printing", 2, datetime(2026, 11, 24, tzinfo=UTC)),
    SiteArticle(2, "VPN certificate error", "Renew the certificate in the VPN client.", "en", "network", 1,
                datetime(2026, 11, 24, tzinfo=UTC)),
    SiteArticle(3, "Drucker druckt nicht", "Druckwarteschlange leeren.", "de", "printing", 1,
                datetime(2026, 11, 24, tzinfo=UTC)),
]  # fmt: skip


def test_pages_are_escaped_and_load_nothing_from_elsewhere(tmp_path: Path) -> None:
    written = export_site(ARTICLES, tmp_path)
    assert [p.name for p in written] == ["index.html", "kb-1.html", "kb-2.html", "kb-3.html"]
    page = (tmp_path / "kb-1.html").read_text(encoding="utf-8")
    assert "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in page
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert index.count("</script>") == 3  # the two JSON blocks and the search script, nothing from a body
    for text in (index, page):
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)


def visible_after_search(site: Path, query: str) -> list[str]:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("no Chromium to open the site in")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", f"{(site / 'index.html').as_uri()}#q={query}"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return re.findall(r'<li id="(a\d+)"[^>]*?(?<!hidden="")>', dom)


def test_the_search_runs_in_a_browser_from_file(tmp_path: Path) -> None:
    export_site(ARTICLES, tmp_path)
    assert visible_after_search(tmp_path, "") == ["a1", "a2", "a3"]
    assert visible_after_search(tmp_path, "druck") == ["a3"]
    assert visible_after_search(tmp_path, "vpn%20certificate") == ["a2"]
