"""Charts as SVG written on the server: readable without JavaScript, in the page and in a mail.

A few shapes the dashboard needs (bars over time, lines, horizontal bars, a coverage grid), each a
function from numbers to SVG markup. Every label is escaped here (it may be a category or an
address someone typed); colours are presentation attributes and CSS classes, never `style`
attributes, so the pages' Content-Security-Policy (style-src 'self') holds. Each mark carries a
<title>, which browsers show on hover, and each chart a <title> and <desc> for screen readers.

Written here rather than taken from a plotting library: matplotlib (already a dependency) makes
SVG too, but at tens of milliseconds a chart, with its own fonts and ids that collide when several
charts share a page; these are a few hundred lines of arithmetic and text.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

PALETTE = ("#3465a4", "#73d216", "#f57900", "#75507b", "#c17d11", "#cc0000", "#555753")
GAP_FILL = "#ef2929"
LABEL_CHARS = 36
WIDTH = 640
HEIGHT = 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 28, 44


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if value <= step * factor:
            return float(step * factor)
    return value


def _frame(title: str, desc: str, width: int, height: int, body: list[str]) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" font-family="sans-serif" font-size="11">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
        f'<text x="{LEFT}" y="16" font-size="13" font-weight="bold" fill="#2e3436">{escape(title)}</text>'
    )
    return Markup(head + "".join(body) + "</svg>")


def _axis(top: float, unit: str, width: int, height: int) -> list[str]:
    parts = []
    plot_h = height - TOP - BOTTOM
    for i in range(5):
        value = top * i / 4
        y = height - BOTTOM - plot_h * i / 4
        parts.append(f'<line x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d3d7cf"/>')
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" fill="#555753">{_num(value)}{escape(unit)}</text>'
        )
    return parts


def _legend(names: Sequence[str], width: int) -> list[str]:
    parts = []
    x = width - RIGHT
    for i, name in reversed(list(enumerate(names))):
        x -= 14 + 7 * len(name)
        parts.append(f'<rect x="{x}" y="7" width="10" height="10" fill="{PALETTE[i % len(PALETTE)]}"/>')
        parts.append(f'<text x="{x + 13}" y="16" fill="#2e3436">{escape(name)}</text>')
    return parts


def _x_labels(labels: Sequence[str], x_of: list[float], height: int) -> list[str]:
    every = max(1, len(labels) // 14)
    return [
        f'<text x="{x:.1f}" y="{height - BOTTOM + 14}" text-anchor="middle" fill="#555753">{escape(label)}</text>'
        for i, (label, x) in enumerate(zip(labels, x_of, strict=True))
        if i % every == 0
    ]


def bars(
    title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], *, unit: str = ""
) -> Markup:
    """Grouped vertical bars: one group per label, one bar per series."""
    width, height = WIDTH, HEIGHT
    top = _nice_max(max((v for _, values in series for v in values), default=0))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    group = plot_w / max(len(labels), 1)
    bar = max(1.0, group * 0.8 / max(len(series), 1))
    body = _axis(top, unit, width, height) + _legend([name for name, _ in series], width)
    for s, (name, values) in enumerate(series):
        for i, value in enumerate(values):
            h = plot_h * value / top
            x = LEFT + group * i + group * 0.1 + bar * s
            body.append(
                f'<rect x="{x:.1f}" y="{height - BOTTOM - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[s % len(PALETTE)]}"><title>{escape(labels[i])} {escape(name)}: '
                f"{_num(value)}{escape(unit)}</title></rect>"
            )
    body += _x_labels(labels, [LEFT + group * (i + 0.5) for i in range(len(labels))], height)
    desc = "; ".join(f"{name}: " + ", ".join(_num(v) for v in values) for name, values in series)
    return _frame(title, desc, width, height, body)


def lines(
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    unit: str = "",
    top: float | None = None,
) -> Markup:
    """Lines with a dot per value; a missing value (None) breaks the line and is said in the dot's title."""
    width, height = WIDTH, HEIGHT
    top = top or _nice_max(max((v for _, values in series for v in values if v is not None), default=0))
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM
    step = plot_w / max(len(labels), 1)
    xs = [LEFT + step * (i + 0.5) for i in range(len(labels))]
    body = _axis(top, unit, width, height) + _legend([name for name, _ in series], width)
    for s, (name, values) in enumerate(series):
        colour = PALETTE[s % len(PALETTE)]
        points: list[str] = []
        for i, value in enumerate(values):
            if value is None:
                if len(points) > 1:
                    body.append(
                        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>'
                    )
                points = []
                continue
            y = height - BOTTOM - plot_h * min(value, top) / top
            points.append(f"{xs[i]:.1f},{y:.1f}")
            body.append(
                f'<circle cx="{xs[i]:.1f}" cy="{y:.1f}" r="3" fill="{colour}"><title>{escape(labels[i])} '
                f"{escape(name)}: {_num(value)}{escape(unit)}</title></circle>"
            )
        if len(points) > 1:
            body.append(
                f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>'
            )
    body += _x_labels(labels, xs, height)
    desc = "; ".join(
        f"{name}: " + ", ".join("—" if v is None else _num(v) for v in values) for name, values in series
    )
    return _frame(title, desc, width, height, body)


def hbars(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    unit: str = "",
    width: int = 460,
    limit: float | None = None,
) -> Markup:
    """Horizontal bars, one per (label, value), in the order given; with a `limit`, a dashed line
    there and the bars that reach it in red (a technician at or over max_open)."""
    label_w = min(260, 12 + 7 * max((len(label[:LABEL_CHARS]) for label, _ in items), default=4))
    row = 20
    height = TOP + row * max(len(items), 1) + 8
    top = _nice_max(max([*(v for _, v in items), limit or 0]))
    plot_w = width - label_w - 60
    body = []
    if limit is not None:
        x = label_w + plot_w * limit / top
        body.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP - 4}" y2="{height - 4}" stroke="{GAP_FILL}" '
            f'stroke-dasharray="4 3"/><text x="{x + 3:.1f}" y="{TOP - 6}" fill="{GAP_FILL}">{_num(limit)}{escape(unit)}</text>'
        )
    for i, (label, value) in enumerate(items):
        y = TOP + row * i
        w = plot_w * value / top
        body.append(
            f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end" fill="#2e3436">{escape(label[:LABEL_CHARS])}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{GAP_FILL if limit is not None and value >= limit else PALETTE[0]}">'
            f"<title>{escape(label)}: {_num(value)}{escape(unit)}</title></rect>"
            f'<text x="{label_w + w + 4:.1f}" y="{y + 14}" fill="#2e3436">{_num(value)}{escape(unit)}</text>'
        )
    if not items:
        body.append(f'<text x="{LEFT}" y="{TOP + 14}" fill="#555753">—</text>')
    desc = ", ".join(f"{label}: {_num(value)}" for label, value in items) or "nothing"
    return _frame(title, desc, width, height, body)


def coverage_grid(
    title: str, rows: Sequence[tuple[str, Sequence[int]]], start: datetime, zone: ZoneInfo
) -> Markup:
    """One row per language or skill, one cell per hour; the count in each, gaps (0) in red."""
    hours = max((len(counts) for _, counts in rows), default=0)
    label_w, cell, row_h = 90, 7, 18
    width = label_w + cell * hours + 10
    height = TOP + 22 + row_h * max(len(rows), 1) + 6
    top = max((c for _, counts in rows for c in counts), default=1) or 1
    body = []
    y0 = TOP + 22
    for h in range(hours):
        local = (start + timedelta(hours=h)).astimezone(zone)
        x = label_w + cell * h
        if local.hour == 0 or h == 0:
            body.append(
                f'<line x1="{x}" x2="{x}" y1="{TOP}" y2="{height - 4}" stroke="#2e3436"/>'
                f'<text x="{x + 3}" y="{TOP + 10}" fill="#2e3436">{local:%a %d}</text>'
            )
        elif local.hour % 6 == 0:
            body.append(f'<text x="{x}" y="{TOP + 20}" font-size="9" fill="#555753">{local.hour:02d}</text>')
    for r, (name, counts) in enumerate(rows):
        y = y0 + row_h * r
        body.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" fill="#2e3436">{escape(name[:14])}</text>'
        )
        for h, count in enumerate(counts):
            local = (start + timedelta(hours=h)).astimezone(zone)
            fill = GAP_FILL if count == 0 else _shade(count / top)
            body.append(
                f'<rect class="{"gap" if count == 0 else "cell"}" x="{label_w + cell * h}" y="{y}" '
                f'width="{cell - 1}" height="{row_h - 3}" fill="{fill}"><title>{escape(name)} '
                f"{local:%a %H:00}: {count} on shift{' — nobody' if count == 0 else ''}</title></rect>"
            )
    desc = "; ".join(
        f"{name}: {sum(1 for c in counts if c == 0)} hours without anyone" for name, counts in rows
    )
    return _frame(title, desc, width, height, body)


def _shade(share: float) -> str:
    """From light to dark green as more people are on duty."""
    light, dark = (0xD7, 0xF0, 0xC8), (0x2E, 0x7D, 0x32)
    mixed = (round(a + (b - a) * min(max(share, 0.0), 1.0)) for a, b in zip(light, dark, strict=True))
    return "#" + "".join(f"{c:02x}" for c in mixed)
