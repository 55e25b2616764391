"""`helpdesk sla check [--json]`: one pass of the SLA timer (for cron), lifecycle steps included."""

from __future__ import annotations

import argparse
from typing import Any

from helpdesk.app import build_app
from helpdesk.cli.common import emit_json
from helpdesk.settings import Settings
from helpdesk.terminal import echo


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    sla = sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)
    p = sla.add_parser(
        "check",
        help="one pass of the SLA timer (for cron): remind, escalate, reassign; "
        "remind requesters, auto-resolve and auto-close tickets ([lifecycle])",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        report = app.sla_timer.check()
        if args.json:
            emit_json(report.as_dict())
        else:
            echo(
                f"checked {report.checked} open tickets: {report.warnings} reminders, {report.breaches} breaches "
                f"({report.escalations} escalated), {report.assigned} assigned, {report.reassigned} reassigned; "
                f"{report.reminders} requesters reminded, {report.auto_resolved} resolved without an answer, "
                f"{report.auto_closed} closed"
            )
            for error in report.errors:
                echo(f"error: {error}")
        return 1 if report.errors else 0
