"""`helpdesk quarantine list|show ID|retry [ID...|--all]`: mail that could not be processed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from helpdesk.cli.common import EX_USAGE, emit_json, fast_reading, reading
from helpdesk.settings import Settings
from helpdesk.terminal import cell, echo
from helpdesk.views import quarantine_view, table


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    quarantine = sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)
    p = quarantine.add_parser("list", help="quarantined mail with the reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = quarantine.add_parser("show", help="one stored mail: reason, envelope, headers (or --raw bytes)")
    p.add_argument("id", type=int)
    p.add_argument("--raw", action="store_true", help="write the mail as received to stdout")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
    p = quarantine.add_parser("retry", help="put quarantined mail back in the queue and process it")
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--all", action="store_true")
    p.add_argument("--no-process", action="store_true")
    p.set_defaults(func=cmd_retry)


def _quarantine_views(settings: Settings) -> list[dict[str, Any]]:
    """The quarantined mails' views, read with the DBAPI alone where it serves the database
    (tickets/fast_queries.py), else with the ORM: the same rows, the same views."""
    with fast_reading(settings) as db:
        if db is not None:
            from tickets.fast_queries import quarantined as fast_quarantined

            return [quarantine_view(r) for r in fast_quarantined(db)]
    from intake.quarantine import quarantined

    with reading(settings) as session:
        return [quarantine_view(r) for r in quarantined(session)]


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    views = _quarantine_views(settings)
    if args.json:
        emit_json(views)
    elif not views:
        echo("quarantine is empty")
    else:
        rows = [
            [v["id"], (v["received_at"] or "")[:16], v["source"], v["envelope_from"] or "", v["error"]]
            for v in views
        ]
        echo(table(["id", "received", "source", "from", "error"], rows))
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    from intake.quarantine import stored_mail

    with reading(settings) as session:
        raw = stored_mail(session, args.id)
        if raw is not None and args.raw:
            sys.stdout.buffer.write(raw.data)
            return 0
        view = {**quarantine_view(raw, full=True), "status": raw.status.value} if raw is not None else None
    if view is None:
        echo(f"no stored mail {args.id}", file=sys.stderr)
        return 1
    if args.json:
        emit_json(view)
        return 0
    echo(f"stored mail {view['id']} ({view['status']}), received {view['received_at']} via {view['source']}")
    echo(
        f"envelope from {cell(view['envelope_from'])} to {cell(', '.join(view['envelope_to']))}; "
        f"{view['size']} bytes"
    )
    echo(f"attempts {view['attempts']}")
    echo(f"error: {view['error']}")
    echo()
    echo(view["headers"])
    return 0


def cmd_retry(args: argparse.Namespace, settings: Settings) -> int:
    # Retrying runs the pipeline: only this command loads it, not the listings beside it.
    from helpdesk.app import build_app
    from intake.raw_queue import requeue
    from intake.worker import WorkReport

    if not args.ids and not args.all:
        echo("helpdesk quarantine retry: give stored mail ids, or --all", file=sys.stderr)
        return EX_USAGE
    with build_app(settings) as app:
        count = requeue(app.sessions, None if args.all else list(args.ids))
        report = app.worker.process_available() if not args.no_process else WorkReport()
        echo(f"re-queued {count}; processed {report.processed}: {report.summary()}")
        return 0
