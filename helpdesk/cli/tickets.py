"""`helpdesk tickets list [--status S] [--all] [--since WHEN] [--limit N] [--json]` and
`helpdesk tickets show N [--json]`.

A listing shows at most `DEFAULT_LIMIT` tickets unless `--limit` says otherwise (`--limit 0`: all),
oldest first, and says on stderr how many it left out: a desk with tens of thousands of open
tickets is answered in a fraction of a second, and a small desk sees what it always saw.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from helpdesk.cli.common import emit_json, fast_reading, reading
from helpdesk.settings import Settings, SettingsError, parse_duration
from helpdesk.terminal import echo
from helpdesk.views import render_ticket, table, ticket_detail, ticket_summary
from models.kinds import TicketStatus
from tickets import fast_queries
from tickets.fast_queries import TicketFilter

DEFAULT_LIMIT = 200  # tickets a listing shows when --limit is not given


def since(text: str) -> datetime:
    """`--since`: a date or date and time (ISO 8601, UTC unless it says otherwise), or a duration
    back from now ("2h", "7d")."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return datetime.now(UTC) - timedelta(seconds=parse_duration(text, bare=False, positive=True))
        except SettingsError as exc:
            raise argparse.ArgumentTypeError(f"not a date, a date and time, or a duration: {text!r}") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    tickets = sub.add_parser(name, help=help_text).add_subparsers(dest="sub", required=True)
    p = tickets.add_parser("list", help="list tickets (closed ones only with --all or --status closed)")
    p.add_argument("--status", action="append", choices=[s.value for s in TicketStatus])
    p.add_argument("--all", action="store_true", help="include closed tickets")
    p.add_argument("--requester")
    p.add_argument("--assignee")
    p.add_argument(
        "--limit",
        type=int,
        default=DEFAULT_LIMIT,
        help=f"show at most N tickets (default {DEFAULT_LIMIT}; 0 shows all)",
    )
    p.add_argument(
        "--since",
        type=since,
        metavar="WHEN",
        help='only tickets opened since WHEN: "2026-11-01", "2026-11-01T08:00", or "2h", "7d" ago',
    )
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
        limit=args.limit or None,
        newest_first=args.newest_first,
        since=args.since,
    )
    views, total = _listed(settings, which)
    if total > len(views):
        # On stderr, so that --json output stays one JSON document.
        echo(
            f"{len(views)} of {total} tickets shown; --limit N (0 for all) or --since WHEN for others",
            file=sys.stderr,
        )
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


def _listed(settings: Settings, which: TicketFilter) -> tuple[list[dict[str, Any]], int]:
    """The views of the tickets `which` selects, and how many it selects whatever its limit.

    Read with the DBAPI alone (tickets/fast_queries.py) where it serves the database, else with
    the ORM (tickets/queries.py): the same rows, the same views."""
    with fast_reading(settings) as db:
        if db is not None:
            tickets = fast_queries.list_tickets(db, which)
            ids = fast_queries.message_ids_by_ticket(db, [t.id for t in tickets])
            views = [ticket_summary(t, ids.get(t.id, [])) for t in tickets]
            full = which.limit and len(tickets) == which.limit
            return views, fast_queries.count_tickets(db, which) if full else len(tickets)
    from tickets.queries import count_tickets, list_tickets, message_ids_by_ticket

    with reading(settings) as session:
        found = list_tickets(session, which)
        ids = message_ids_by_ticket(session, [t.id for t in found])
        views = [ticket_summary(t, ids.get(t.id, [])) for t in found]
        return views, count_tickets(session, which) if which.limit and len(found) == which.limit else len(
            found
        )


def _shown(settings: Settings, number: int) -> dict[str, Any] | None:
    """The view of ticket `number` (None when there is none), read as `_listed` reads."""
    with fast_reading(settings) as db:
        if db is not None:
            fast = fast_queries.ticket_record(db, number)
            return ticket_detail(fast) if fast is not None else None
    from tickets.queries import ticket_record

    with reading(settings) as session:
        record = ticket_record(session, number)
        return ticket_detail(record) if record is not None else None


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    view = _shown(settings, args.number)
    if view is None:
        echo(f"no ticket #{args.number}", file=sys.stderr)
        return 1
    emit_json(view) if args.json else echo(render_ticket(view))
    return 0
