"""`helpdesk status [--json]`: queue, outbox, tickets, suppressed automatic mail, IMAP mailboxes, and the
daemons sharing the database with what each holds."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from helpdesk.cli.common import emit_json, fast_reading
from helpdesk.settings import Settings, redact_url
from helpdesk.terminal import cell, echo
from helpdesk.view_fields import DaemonFields, MailboxFields
from helpdesk.views import iso

if TYPE_CHECKING:
    from models.dbapi import Database


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)


def status_view(settings: Settings, db: Database | None) -> dict[str, Any]:
    """What `helpdesk status` shows, read on `db` with the DBAPI alone (intake/fast_status.py),
    or with the ORM when `db` is None: the same values either way."""
    if db is not None:
        from intake.fast_status import read_status

        fast = read_status(db, settings.limits, datetime.now(UTC))
        queue, oldest, tickets, outbox = fast.queue, fast.oldest_waiting, fast.tickets, fast.outbox
        automatic = fast.budgets.as_dict()
        automatic["held_notices_pending"] = fast.held_notices_pending
        daemons: list[DaemonFields] = fast.daemons
        mailboxes: dict[str, MailboxFields] = {m.name: m for m in fast.mailboxes}
    else:
        queue, oldest, tickets, outbox, automatic, daemons, mailboxes = _read_with_the_orm(settings)
    return {
        "address": settings.identity.address,
        "database": redact_url(settings.database.url),
        "queue": {s.value: n for s, n in queue.items()},
        "oldest_waiting": iso(oldest),
        "outbox": {s.value: n for s, n in outbox.items()},
        "tickets": {s.value: n for s, n in tickets.items()},
        "automatic_mail_last_hour": automatic,
        "mailboxes": [_mailbox_view(cfg.name, mailboxes.get(cfg.name)) for cfg in settings.mailboxes],
        "daemons": [_daemon_view(d) for d in daemons],
    }


def _read_with_the_orm(settings: Settings) -> tuple[Any, ...]:
    # Only the database is opened: a status needs none of the daemon's parts (see helpdesk.database).
    from helpdesk.database import readers
    from intake.imap_state import mailbox_statuses
    from intake.quarantine import oldest_waiting, queue_counts
    from models.base import utcnow
    from models.heartbeat import daemon_statuses, database_now
    from notify.budget import Budgets
    from tickets.queries import status_counts

    budgets = Budgets(settings.limits, settings.outgoing.auto_reply_limit_per_hour)
    with readers(settings) as sessions:
        with sessions() as session:
            queue = queue_counts(session)
            oldest = oldest_waiting(session)
            counts = status_counts(session)
            automatic = budgets.report(session, utcnow()).as_dict()
            automatic["held_notices_pending"] = counts.held_notices_pending
            daemons = daemon_statuses(session, database_now(session))
        mailboxes = {m.name: m for m in mailbox_statuses(sessions)}
    return queue, oldest, counts.tickets, counts.outbox, automatic, daemons, mailboxes


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    with fast_reading(settings) as db:
        status = status_view(settings, db)
    if args.json:
        emit_json(status)
        return 0
    echo(f"helpdesk {status['address']}  database {status['database']}")
    echo("queue:   " + "  ".join(f"{k} {v}" for k, v in status["queue"].items()))
    echo("outbox:  " + "  ".join(f"{k} {v}" for k, v in status["outbox"].items()))
    echo("tickets: " + "  ".join(f"{k} {v}" for k, v in status["tickets"].items()))
    if status["oldest_waiting"] is not None:
        echo(f"oldest mail waiting since {status['oldest_waiting']}")
    echo(_automatic_line(status["automatic_mail_last_hour"]))
    for box in status["mailboxes"]:
        line = f"imap {box['name']}: {box['state']}"
        if box["since"]:
            line += f" since {box['since']}"
        if box["last_success_at"]:
            line += f", last fetch {box['last_success_at']}"
        line += f", stored {box['stored']}"
        if box["last_error"]:
            line += f"; last error: {box['last_error']}"
        echo(cell(line))
    for daemon in status["daemons"]:
        echo(cell(_daemon_line(daemon)))
    return 0


def _daemon_view(daemon: DaemonFields) -> dict[str, Any]:
    return {
        "holder": daemon.holder,
        "host": daemon.host,
        "pid": daemon.pid,
        "started_at": iso(daemon.started_at),
        "last_heartbeat": iso(daemon.beat_at),
        "silent": daemon.silent,
        "holds": {
            "stored": daemon.raw_held,
            "outgoing": daemon.outbox_held,
            "mailboxes": list(daemon.mailboxes),
        },
    }


def _daemon_line(daemon: dict[str, Any]) -> str:
    holds = daemon["holds"]
    line = (
        f"daemon {daemon['host']} pid {daemon['pid']}: last heartbeat {daemon['last_heartbeat']}"
        f"{' (SILENT: its claims are being released)' if daemon['silent'] else ''}; "
        f"holds {holds['stored']} stored, {holds['outgoing']} outgoing"
    )
    if holds["mailboxes"]:
        line += ", polls " + ", ".join(holds["mailboxes"])
    return line


def _automatic_line(auto: dict[str, Any]) -> str:
    """What the budgets on automatic mail did in the last hour, in one line for `helpdesk status`."""
    line = (
        f"automatic mail, last hour: {auto['automatic_sent']} of {auto['automatic_limit']} to "
        f"unauthenticated senders, {auto['authenticated_sent']} to authenticated ones; "
        f"suppressed {auto['suppressed']} (budget {auto['suppressed_global']}, per domain "
        f"{auto['suppressed_domain']}, per address {auto['suppressed_address']})"
    )
    if auto["suppressed_domains"]:
        line += "; most in " + ", ".join(f"{d} {n}" for d, n in auto["suppressed_domains"].items())
    if auto["staff_notices_held"] or auto["held_notices_pending"]:
        line += (
            f"; staff notices held {auto['staff_notices_held']}, "
            f"waiting for a digest {auto['held_notices_pending']}"
        )
    return line


def _mailbox_view(name: str, status: MailboxFields | None) -> dict[str, Any]:
    if status is None:
        return {
            "name": name,
            "state": "not started",
            "since": None,
            "last_error": None,
            "last_success_at": None,
            "stored": 0,
            "duplicates": 0,
            "backfilled": 0,
            "uidvalidity": None,
            "last_uid": 0,
            "holder": None,
        }
    return {
        "name": name,
        "state": status.state.value,
        "since": iso(status.state_since),
        "server": status.server,
        "folder": status.folder,
        "holder": status.holder,
        "idle": status.idle_supported,
        "uidvalidity": status.uidvalidity,
        "last_uid": status.last_uid,
        "last_error": status.last_error,
        "last_error_at": iso(status.last_error_at),
        "last_success_at": iso(status.last_success_at),
        "next_attempt_at": iso(status.next_attempt_at),
        "stored": status.stored_count,
        "duplicates": status.duplicate_count,
        "backfilled": status.backfill_count,
    }
