"""The SVG charts: well-formed XML, labels escaped, no `style` attributes (the pages' CSP allows
styles from the stylesheet only), a <title> per mark and a text description per chart."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from markupsafe import Markup

from helpdesk.web import charts

SVG = "{http://www.w3.org/2000/svg}"
HOSTILE = '<script>alert(1)</script>&"'


def cases() -> list[Markup]:
    start = datetime(2026, 11, 30, 7, tzinfo=UTC)
    return [
        charts.bars(HOSTILE, ["a", HOSTILE], [(HOSTILE, [1, 2]), ("b", [0, 5])], unit="%"),
        charts.lines(HOSTILE, ["w1", "w2", "w3"], [(HOSTILE, [1.5, None, 3.0])], unit="h"),
        charts.hbars(HOSTILE, [(HOSTILE, 3), ("b", 0)], limit=2),
        charts.hbars("empty", []),
        charts.coverage_grid(HOSTILE, [(HOSTILE, [0, 1, 2] * 8)], start, ZoneInfo("Europe/Warsaw")),
    ]


@pytest.mark.parametrize("chart", cases())
def test_a_chart_is_well_formed_and_escaped(chart: Markup) -> None:
    root = ET.fromstring(str(chart))
    assert root.tag == f"{SVG}svg"
    assert root.find(f"{SVG}title") is not None and root.find(f"{SVG}desc") is not None
    assert "<script" not in chart
    assert all("style" not in element.attrib for element in root.iter())
    texts = "".join(root.itertext())
    if "empty" not in texts:
        assert HOSTILE in texts  # shown as the text it is


def test_gaps_are_marked_and_described() -> None:
    start = datetime(2026, 11, 30, 7, tzinfo=UTC)
    chart = charts.coverage_grid("c", [("pl", [0, 0, 1, 2])], start, ZoneInfo("UTC"))
    root = ET.fromstring(str(chart))
    gaps = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "gap"]
    assert len(gaps) == 2 and all(r.get("fill") == charts.GAP_FILL for r in gaps)
    assert "pl: 2 hours without anyone" in (root.find(f"{SVG}desc").text or "")  # type: ignore[union-attr]
    assert "nobody" in (gaps[0].find(f"{SVG}title").text or "")  # type: ignore[union-attr]


def test_bars_over_the_limit_are_red() -> None:
    root = ET.fromstring(str(charts.hbars("load", [("a", 150), ("b", 50)], limit=100)))
    fills = [r.get("fill") for r in root.iter(f"{SVG}rect")]
    assert fills == [charts.GAP_FILL, charts.PALETTE[0]]
