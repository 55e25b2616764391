"""`helpdesk tickets list [--status S] [--all] [--json]` and `helpdesk tickets show N [--json]`."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from helpdesk.cli.common import emit_json, reading
from helpdesk.settings import Settings
from helpdesk.terminal import echo
from helpdesk.views import render_ticket, table, ticket_detail, ticket_summary
from models.ticket import TicketStatus
from tickets.queries import TicketFilter, list_tickets, message_ids_by_ticket, ticket_record


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    tickets = sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)
    p = tickets.add_parser("list", help="list tickets (closed ones only with --all or --status closed)")
    p.add_argument("--status", action="append", choices=[s.value for s in TicketStatus])
    p.add_argument("--all", action="store_true", help="include closed tickets")
    p.add_argument("--requester")
    p.add_argument("--assignee")
    p.add_argument("--limit", type=int)
    p.add_argument("--newest-first", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)
    p = tickets.add_parser("show", help="one ticket with its messages, events and routing reasons")
    p.add_argument("number", type=lambda s: int(s.lstrip("#")))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    which = TicketFilter(
        statuses=[TicketStatus(s) for s in args.status or ()],
        include_closed=args.all,
        requester=args.requester,
        assignee=args.assignee,
        limit=args.limit,
        newest_first=args.newest_first,
    )
    with reading(settings) as session:
        tickets = list_tickets(session, which)
        ids = message_ids_by_ticket(session, [t.id for t in tickets])
        views = [ticket_summary(t, ids.get(t.id, [])) for t in tickets]
    if args.json:
        emit_json(views)
        return 0
    if not views:
        echo("no tickets")
        return 0
    rows = [
        [
            f"#{v['number']}",
            v["status"],
            v["priority"],
            v["category"],
            v["requester"],
            v["assignee"] or "-",
            v["created_at"][:16].replace("T", " "),
            v["subject"],
        ]
        for v in views
    ]
    echo(table(["#", "status", "priority", "category", "requester", "assignee", "created", "subject"], rows))
    return 0


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    with reading(settings) as session:
        record = ticket_record(session, args.number)
        view = ticket_detail(record) if record is not None else None
    if view is None:
        echo(f"no ticket #{args.number}", file=sys.stderr)
        return 1
    emit_json(view) if args.json else echo(render_ticket(view))
    return 0
