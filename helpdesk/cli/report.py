"""`helpdesk report [--days N] [--json] [--html FILE]`: what the desk did: volumes, SLA, response times,
who has what; `--html` writes the weekly report with its charts as one self-contained file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from helpdesk.cli.common import emit_json, reading
from helpdesk.report import build_report, render_report
from helpdesk.settings import Settings
from helpdesk.terminal import echo
from models.base import utcnow


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--html", metavar="FILE", help="also write the report with its charts to FILE (one HTML file)"
    )
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    now = utcnow()
    with reading(settings) as session:
        report = build_report(session, now=now, days=args.days, sla=settings.sla)
        if args.html:
            from helpdesk.web.weekly import weekly_html  # the charts' code only for --html

            html, _ = weekly_html(settings, session, now=now, days=args.days)
            Path(args.html).write_text(html, encoding="utf-8")
    emit_json(report) if args.json else echo(render_report(report))
    return 0
