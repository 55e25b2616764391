"""`helpdesk report [--days N] [--json]`: what the desk did: volumes, SLA, response times, who has what."""

from __future__ import annotations

import argparse
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
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    with reading(settings) as session:
        report = build_report(session, now=utcnow(), days=args.days, sla=settings.sla)
    emit_json(report) if args.json else echo(render_report(report))
    return 0
