"""The `helpdesk` command line: init, serve, ingest, tickets, quarantine, status.

Exit codes follow sysexits.h where a caller acts on them: 75 (EX_TEMPFAIL) when mail could not
be stored (an MTA pipe retries), 65 (EX_DATAERR) when ingest refused mail over the size limit
(an MTA pipe bounces it), 78 (EX_CONFIG) for a broken configuration.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from helpdesk.app import App, NotInitialised, build_app
from helpdesk.files import PRIVATE_UMASK, private_directory, private_file, secure_desk
from helpdesk.settings import Settings, SettingsError, load_settings, redact_url
from helpdesk.terminal import SafeFormatter, cell, echo, json_text
from helpdesk.views import (
    iso,
    message_ids_by_ticket,
    quarantine_view,
    render_ticket,
    table,
    ticket_detail,
    ticket_summary,
)
from intake.errors import MailboxError, StoreError
from intake.imap_state import MailboxStatus, mailbox_statuses
from intake.ingest import (
    EX_DATAERR,
    EX_NOINPUT,
    EX_TEMPFAIL,
    IngestCounts,
    from_files,
    from_maildir,
    from_mbox,
    from_stream,
    store_all,
)
from intake.worker import WorkReport, requeue
from models.base import utcnow
from models.budget import HeldNotice
from models.claims import release_dead_claims
from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage, RawStatus
from models.ticket import Ticket, TicketStatus
from routing.errors import RoutingError
from routing.model_store import ModelStore
from routing.people import PeopleError, parse_people_toml
from routing.rule_errors import RulesError
from routing.shifts import is_on_shift
from tickets.assignment import open_loads
from tickets.roster import change_technician, coordinators, import_people, staff
from tickets.training_data import examples_from_db

EX_CONFIG = 78
EX_SOFTWARE = 70

log = logging.getLogger("helpdesk.cli")


def setup_logging(level: str, file: Path | None = None, *, quiet: bool = False) -> None:
    handlers: list[logging.Handler] = []
    if file is not None:
        # The log names requesters and tickets: it is as private as the database.
        private_directory(file.parent)
        private_file(file)
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    handlers.append(logging.StreamHandler(sys.stderr))
    formatter = SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(formatter)  # mail-derived text in a log line reaches a terminal too
    logging.basicConfig(
        level=logging.WARNING if quiet else getattr(logging, level.upper(), logging.INFO),
        handlers=handlers,
        force=True,
    )
    # mail-parser reports every MIME part it does not render at WARNING; that is noise for us.
    logging.getLogger("mailparser").setLevel(logging.ERROR)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command trace


def emit_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")


# -- commands -----------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    from helpdesk.initialise import initialise

    result = initialise(
        args.config,
        address=args.address,
        database_url=args.database_url,
        listen=args.listen,
        outgoing_url=args.outgoing_url,
    )
    where = result.config_path
    echo(f"{'wrote' if result.wrote_config else 'kept'} {where}")
    if result.schema_before == result.schema_after:
        echo(f"database schema already at {result.schema_after}")
    else:
        echo(f"database schema {result.schema_before or 'created'} -> {result.schema_after}")
    for version in result.trained:
        echo(f"trained and activated the starter model {version} (from the built-in example tickets)")
    echo(f"helpdesk address: {result.settings.identity.address}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.daemon import Daemon

    secure_desk(settings)  # a desk an older version left open to other users, before any mail comes in
    return Daemon(build_app(settings)).serve_forever()  # the daemon closes the app when it stops


def _process(app: App, *, send: bool) -> WorkReport:
    release_dead_claims(app.sessions)
    report = app.worker.process_available()
    if send:
        while True:
            sent = app.sender.deliver_due()
            if not (sent.sent or sent.failed) or sent.retried:
                break
    return report


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    try:
        return _ingest(args, settings)
    except (StoreError, SQLAlchemyError, OSError) as exc:
        # Anything but 0 or 75 makes an MTA pipe bounce the mail to its sender; 75 makes it retry.
        echo(f"helpdesk ingest: cannot store: {exc}", file=sys.stderr)
        return EX_TEMPFAIL


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    limit = settings.smtp.max_message_size  # the one size limit of every intake path
    with build_app(settings) as app:
        counts = IngestCounts()
        try:
            if args.imap:
                report_imap = app.poller(args.imap).fetch_once()
                counts.stored += report_imap.stored + report_imap.backfilled
                counts.duplicates += report_imap.duplicates
            sources = []
            if args.maildir:
                sources.append(from_maildir(Path(args.maildir), limit))
            if args.mbox:
                sources.append(from_mbox(Path(args.mbox), limit))
            if args.files:
                sources.append(from_files([Path(f) for f in args.files], limit))
            if not sources and not args.imap:
                sources.append(from_stream(sys.stdin.buffer, limit))
            for source in sources:
                part = store_all(app.store, source)
                counts.stored += part.stored
                counts.duplicates += part.duplicates
                counts.refused += part.refused
        except StoreError as exc:
            echo(f"helpdesk ingest: cannot store: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
        except MailboxError as exc:
            echo(f"helpdesk ingest: IMAP {args.imap}: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
        except KeyError as exc:
            echo(f"helpdesk ingest: {exc.args[0]}", file=sys.stderr)
            return 64
        except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
            echo(f"helpdesk ingest: {exc}", file=sys.stderr)
            return EX_NOINPUT
        for mail in counts.refused:
            # On stderr whatever else is asked: an MTA pipe puts it in the bounce to the sender.
            size = f"{mail.size} bytes" if mail.exact else f"more than {limit} bytes"
            echo(
                f"helpdesk ingest: {mail.name}: refused, not stored: {size} is over the limit of "
                f"{limit} bytes ([smtp] max_message_size)",
                file=sys.stderr,
            )
        report = WorkReport()
        if not args.no_process:
            try:
                report = _process(app, send=not args.no_send)
            except Exception as exc:  # the mail is stored; processing resumes in `serve` or the next ingest
                log.error("processing after ingest failed (the mail is stored): %s", exc)
        result = {
            "stored": counts.stored,
            "duplicates": counts.duplicates,
            "tickets_created": report.tickets_created,
            "replies": report.replies,
            "automatic": report.automatic + report.bounces,
            "quarantined": report.quarantined,
            "refused": len(counts.refused),
        }
        if args.json:
            emit_json(result)
        else:
            refused = f", refused {len(counts.refused)} over the size limit" if counts.refused else ""
            echo(f"stored {counts.stored}, duplicates {counts.duplicates}{refused}; {report.summary()}")
        return EX_DATAERR if counts.refused else 0


def cmd_tickets_list(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        with app.readers() as session:
            query = select(Ticket).order_by(Ticket.id.desc() if args.newest_first else Ticket.id)
            if args.status:
                query = query.where(Ticket.status.in_([TicketStatus(s) for s in args.status]))
            elif not args.all:
                query = query.where(Ticket.status != TicketStatus.CLOSED)
            if args.requester:
                query = query.where(Ticket.requester == args.requester.lower())
            if args.assignee:
                query = query.where(Ticket.assignee == args.assignee.lower())
            if args.limit:
                query = query.limit(args.limit)
            tickets = list(session.scalars(query.execution_options(populate_existing=False)))
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
        echo(
            table(
                ["#", "status", "priority", "category", "requester", "assignee", "created", "subject"], rows
            )
        )
        return 0


def cmd_tickets_show(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        with app.readers() as session:
            ticket = session.get(Ticket, args.number)
            if ticket is None:
                echo(f"no ticket #{args.number}", file=sys.stderr)
                return 1
            view = ticket_detail(ticket)
        if args.json:
            emit_json(view)
        else:
            echo(render_ticket(view))
        return 0


def cmd_quarantine_list(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        with app.readers() as session:
            rows = list(
                session.scalars(
                    select(RawMessage).where(RawMessage.status == RawStatus.FAILED).order_by(RawMessage.id)
                )
            )
            views = [quarantine_view(r) for r in rows]
        if args.json:
            emit_json(views)
        elif not views:
            echo("quarantine is empty")
        else:
            echo(
                table(
                    ["id", "received", "source", "from", "error"],
                    [
                        [
                            v["id"],
                            (v["received_at"] or "")[:16],
                            v["source"],
                            v["envelope_from"] or "",
                            v["error"],
                        ]
                        for v in views
                    ],
                )
            )
        return 0


def cmd_quarantine_show(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        with app.readers() as session:
            raw = session.get(RawMessage, args.id)
            if raw is None:
                echo(f"no stored mail {args.id}", file=sys.stderr)
                return 1
            if args.raw:
                sys.stdout.buffer.write(raw.data)
                return 0
            view = quarantine_view(raw, full=True)
            view["status"] = raw.status.value
        if args.json:
            emit_json(view)
        else:
            echo(
                f"stored mail {view['id']} ({view['status']}), received {view['received_at']} via {view['source']}"
            )
            echo(
                f"envelope from {cell(view['envelope_from'])} to {cell(', '.join(view['envelope_to']))}; "
                f"{view['size']} bytes"
            )
            echo(f"attempts {view['attempts']}")
            echo(f"error: {view['error']}")
            echo()
            echo(view["headers"])
        return 0


def cmd_quarantine_retry(args: argparse.Namespace, settings: Settings) -> int:
    if not args.ids and not args.all:
        echo("helpdesk quarantine retry: give stored mail ids, or --all", file=sys.stderr)
        return 64
    with build_app(settings) as app:
        count = requeue(app.sessions, None if args.all else list(args.ids))
        report = app.worker.process_available() if not args.no_process else WorkReport()
        echo(f"re-queued {count}; processed {report.processed}: {report.summary()}")
        return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        with app.readers() as session:
            raw_counts = dict(
                session.execute(select(RawMessage.status, func.count()).group_by(RawMessage.status)).all()
            )
            out_counts = dict(
                session.execute(
                    select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
                ).all()
            )
            ticket_counts = dict(
                session.execute(select(Ticket.status, func.count()).group_by(Ticket.status)).all()
            )
            oldest = session.scalar(
                select(func.min(RawMessage.received_at)).where(RawMessage.status == RawStatus.RECEIVED)
            )
            automatic = app.mailer.budgets.report(session, utcnow()).as_dict()
            automatic["held_notices_pending"] = int(
                session.scalar(
                    select(func.count()).select_from(HeldNotice).where(HeldNotice.digested_at.is_(None))
                )
                or 0
            )
        mailboxes = {m.name: m for m in mailbox_statuses(app.readers)}
        status: dict[str, Any] = {
            "address": settings.identity.address,
            "database": redact_url(settings.database.url),
            "queue": {s.value: int(raw_counts.get(s, 0)) for s in RawStatus},
            "oldest_waiting": iso(oldest),
            "outbox": {s.value: int(out_counts.get(s, 0)) for s in OutboxStatus},
            "tickets": {s.value: int(ticket_counts.get(s, 0)) for s in TicketStatus},
            "automatic_mail_last_hour": automatic,
            "mailboxes": [_mailbox_view(cfg.name, mailboxes.get(cfg.name)) for cfg in settings.mailboxes],
        }
        if args.json:
            emit_json(status)
            return 0
        echo(f"helpdesk {status['address']}  database {status['database']}")
        echo("queue:   " + "  ".join(f"{k} {v}" for k, v in status["queue"].items()))
        echo("outbox:  " + "  ".join(f"{k} {v}" for k, v in status["outbox"].items()))
        echo("tickets: " + "  ".join(f"{k} {v}" for k, v in status["tickets"].items()))
        if oldest is not None:
            echo(f"oldest mail waiting since {status['oldest_waiting']}")
        echo(_automatic_line(automatic))
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
        return 0


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


def _mailbox_view(name: str, status: MailboxStatus | None) -> dict[str, Any]:
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


def cmd_technicians_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    try:
        people = parse_people_toml(path.read_text(encoding="utf-8"), categories=settings.routing.categories)
    except OSError as exc:
        echo(f"helpdesk technicians import: {exc}", file=sys.stderr)
        return EX_NOINPUT
    except PeopleError as exc:
        echo(f"helpdesk technicians import: {path} has problems:", file=sys.stderr)
        for problem in exc.problems:
            echo(f"  {problem}", file=sys.stderr)
        return 65  # EX_DATAERR
    with build_app(settings) as app:
        with app.sessions() as session:
            report = import_people(session, people)
            session.commit()
        echo(
            f"technicians: {len(report.created)} added, {len(report.updated)} updated, "
            f"{len(report.unchanged)} unchanged; coordinators: {len(report.coordinators_created)} added, "
            f"{len(report.coordinators_updated)} updated"
        )
        if report.not_in_file:
            echo(f"not in the file (left as they are): {', '.join(report.not_in_file)}")
        return 0


def cmd_technicians_list(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        with app.readers() as session:
            members = staff(session)
            coords = [c for _, c in coordinators(session)]
            loads = open_loads(session)
        now = utcnow()
        views = [
            {
                **m.technician.as_dict(),
                "on_shift": is_on_shift(m.technician, now),
                "open_tickets": len(loads.get(m.email, [])),
                "last_assigned_at": iso(m.last_assigned_at),
            }
            for m in members
        ]
        if args.json:
            emit_json({"technicians": views, "coordinators": [c.as_dict() for c in coords]})
            return 0
        if not views:
            echo("no technicians; add them with `helpdesk technicians import FILE`")
        else:
            rows = [
                [
                    v["email"],
                    v["name"],
                    v["tier"],
                    ",".join(v["languages"]),
                    "yes" if v["active"] else "no",
                    "on" if v["on_shift"] else "off",
                    f"{v['open_tickets']}/{v['max_open']}",
                    " ".join(f"{k}={n}" for k, n in v["skills"].items()),
                ]
                for v in views
            ]
            echo(table(["email", "name", "tier", "languages", "active", "shift", "open", "skills"], rows))
        if coords:
            echo()
            echo(cell("coordinators: " + ", ".join(f"{c.name} <{c.email}>" for c in coords)))
        return 0


def cmd_technicians_set(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        try:
            with app.sessions() as session:
                tech = change_technician(session, args.email, args.settings, settings.routing.categories)
                session.commit()
        except KeyError as exc:
            echo(f"helpdesk technicians set: {exc.args[0]}", file=sys.stderr)
            return 1
        except PeopleError as exc:
            for problem in exc.problems:
                echo(f"helpdesk technicians set: {problem}", file=sys.stderr)
            return 65
        echo(json_text(tech.as_dict(), indent=None))
        return 0


def cmd_sla_check(args: argparse.Namespace, settings: Settings) -> int:
    with build_app(settings) as app:
        report = app.sla_timer.check()
        if args.json:
            emit_json(report.as_dict())
        else:
            echo(
                f"checked {report.checked} open tickets: {report.warnings} reminders, {report.breaches} breaches "
                f"({report.escalations} escalated), {report.assigned} assigned, {report.reassigned} reassigned"
            )
            for error in report.errors:
                echo(f"error: {error}")
        return 1 if report.errors else 0


def cmd_report(args: argparse.Namespace, settings: Settings) -> int:
    from helpdesk.report import build_report, render_report

    with build_app(settings) as app:
        with app.readers() as session:
            report = build_report(session, now=utcnow(), days=args.days, sla=settings.sla)
        if args.json:
            emit_json(report)
        else:
            echo(render_report(report))
        return 0


def _progress_bar(enabled: bool) -> tuple[Callable[[str, int, int], None], Callable[[], None]]:
    """A tqdm bar for training (on stderr, only when it is a terminal or asked for)."""
    if not enabled:
        return (lambda stage, done, total: None), (lambda: None)
    from tqdm import tqdm

    bar = tqdm(total=1, unit="step", file=sys.stderr, leave=False, dynamic_ncols=True)

    def update(stage: str, done: int, total: int) -> None:
        bar.total = max(total, 1)
        bar.n = done
        bar.set_description(stage)
        bar.refresh()

    return update, bar.close


def cmd_retrain(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import retrain
    from routing.dataset import load_csv

    if bool(args.csv) == bool(args.from_db):
        echo(
            "helpdesk retrain: give --from-db or --csv FILE --text COL[,COL...] --label COL", file=sys.stderr
        )
        return 64
    source: str
    if args.csv:
        if not args.text or not args.label:
            echo("helpdesk retrain: --csv needs --text COL[,COL...] and --label COL", file=sys.stderr)
            return 64
        data = load_csv(args.csv, args.text.split(","), args.label)
        examples = list(data.examples)
        source = f"csv:{Path(args.csv).name}"
    else:
        with build_app(settings) as app, app.readers() as session:
            examples = examples_from_db(session, args.target)
        source = "database"
    if len({e.label for e in examples}) < 2:
        echo(
            f"helpdesk retrain: {len(examples)} labelled examples with fewer than two {args.target} labels; "
            "nothing to learn yet (resolved tickets with a category other than triage are the examples)",
            file=sys.stderr,
        )
        return 65
    store = ModelStore(settings.models.dir)
    update, close = _progress_bar((not args.json and sys.stderr.isatty()) or args.progress)
    try:
        report = retrain(
            store,
            examples,
            args.target,
            activate=args.activate,
            force=args.force,
            progress=update,
            source=source,
        )
    finally:
        close()
    if args.confusion:
        report.report.write_confusion_png(args.confusion)
    if args.json:
        emit_json(report.as_dict())
    else:
        echo(report.render_text())
        echo()
        echo(report.report.render_text())
    return 0 if not report.refused else 3


def cmd_model_list(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import list_models

    listing = list_models(ModelStore(settings.models.dir), args.target)
    if args.json:
        emit_json(listing.as_dict())
    else:
        echo(listing.render_text())
    return 0


def cmd_model_activate(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import activate

    result = activate(ModelStore(settings.models.dir), args.version)
    emit_json(result.as_dict()) if args.json else echo(result.render_text())
    return 0


def cmd_model_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import rollback

    result = rollback(ModelStore(settings.models.dir), args.target)
    emit_json(result.as_dict()) if args.json else echo(result.render_text())
    return 0


def cmd_model_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from routing.admin import evaluate_csv

    report = evaluate_csv(
        ModelStore(settings.models.dir),
        args.csv,
        args.text.split(","),
        args.label,
        args.version,
        target=args.target,
        confusion_png=args.confusion,
    )
    if args.json:
        emit_json(report.as_dict())
    else:
        echo(report.render_text())
    return 0


# -- parser -------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="helpdesk", description="An email-driven helpdesk.")
    parser.add_argument(
        "--config", "-c", help="path of helpdesk.toml (default: $HELPDESK_CONFIG or ./helpdesk.toml)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="write helpdesk.toml (if missing) and create or migrate the database")
    p.add_argument("--address", help="the helpdesk address (default support@example.test)")
    p.add_argument("--database-url", help="database URL (default sqlite:///var/helpdesk.db)")
    p.add_argument("--listen", help="SMTP listener HOST:PORT (default 127.0.0.1:2525)")
    p.add_argument("--outgoing-url", help="maildir:PATH or smtp://host:port (default maildir:var/sent)")
    p.set_defaults(func=cmd_init, needs_settings=False)

    p = sub.add_parser("serve", help="run the daemon: SMTP listener, worker, sender, timers")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("ingest", help="store mail from files, stdin, a maildir or an mbox, then process it")
    p.add_argument("files", nargs="*", help="message files (default: one message on stdin)")
    p.add_argument("--maildir", help="a maildir to read every message from")
    p.add_argument("--mbox", help="an mbox file to read every message from")
    p.add_argument(
        "--imap", metavar="NAME", help="fetch new mail once from the [[imap]] mailbox NAME (for cron)"
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--no-process", action="store_true", help="only store; leave processing to `serve`")
    p.add_argument("--no-send", action="store_true", help="do not deliver the outbox after processing")
    p.set_defaults(func=cmd_ingest)

    tickets = sub.add_parser("tickets", help="list and show tickets").add_subparsers(
        dest="sub", required=True
    )
    p = tickets.add_parser("list", help="list tickets (closed ones only with --all or --status closed)")
    p.add_argument("--status", action="append", choices=[s.value for s in TicketStatus])
    p.add_argument("--all", action="store_true", help="include closed tickets")
    p.add_argument("--requester")
    p.add_argument("--assignee")
    p.add_argument("--limit", type=int)
    p.add_argument("--newest-first", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tickets_list)
    p = tickets.add_parser("show", help="one ticket with its messages, events and routing reasons")
    p.add_argument("number", type=lambda s: int(s.lstrip("#")))
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tickets_show)

    quarantine = sub.add_parser("quarantine", help="mail that could not be processed").add_subparsers(
        dest="sub", required=True
    )
    p = quarantine.add_parser("list", help="quarantined mail with the reason")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine_list)
    p = quarantine.add_parser("show", help="one stored mail: reason, envelope, headers (or --raw bytes)")
    p.add_argument("id", type=int)
    p.add_argument("--raw", action="store_true", help="write the mail as received to stdout")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_quarantine_show)
    p = quarantine.add_parser("retry", help="put quarantined mail back in the queue and process it")
    p.add_argument("ids", nargs="*", type=int)
    p.add_argument("--all", action="store_true")
    p.add_argument("--no-process", action="store_true")
    p.set_defaults(func=cmd_quarantine_retry)

    technicians = sub.add_parser("technicians", help="who works tickets").add_subparsers(
        dest="sub", required=True
    )
    p = technicians.add_parser("import", help="add or update technicians and coordinators from a TOML file")
    p.add_argument("file")
    p.set_defaults(func=cmd_technicians_import)
    p = technicians.add_parser("list", help="technicians with skills, shift and load; coordinators")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_technicians_list)
    p = technicians.add_parser("set", help="change a technician: active=false tier=2 skills.network=4 ...")
    p.add_argument("email")
    p.add_argument("settings", nargs="+", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_technicians_set)

    sla = sub.add_parser("sla", help="SLA timers").add_subparsers(dest="sub", required=True)
    p = sla.add_parser("check", help="one pass of the SLA timer (for cron): remind, escalate, reassign")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sla_check)

    p = sub.add_parser(
        "retrain", help="train a new classifier version, evaluate it, and optionally activate it"
    )
    p.add_argument("--target", choices=["category", "priority"], default="category")
    p.add_argument("--from-db", action="store_true", help="learn from resolved tickets' final labels")
    p.add_argument("--csv", help="learn from a labelled CSV file")
    p.add_argument(
        "--text", help="the CSV's text column(s), comma-separated; the first is read as the subject"
    )
    p.add_argument("--label", help="the CSV's label column")
    p.add_argument(
        "--activate", action="store_true", help="use it for new mail, unless it is worse than the active one"
    )
    p.add_argument("--force", action="store_true", help="with --activate: activate even if worse")
    p.add_argument("--confusion", metavar="PNG", help="also write the confusion matrix to this file")
    p.add_argument(
        "--progress", action="store_true", help="show the progress bar even when not on a terminal"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_retrain)

    model = sub.add_parser("model", help="classifier versions").add_subparsers(dest="sub", required=True)
    p = model.add_parser("list", help="stored versions with their held-out figures (* = active)")
    p.add_argument("--target", choices=["category", "priority"])
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_list)
    p = model.add_parser("activate", help="use a stored version for new mail")
    p.add_argument("version")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_activate)
    p = model.add_parser("rollback", help="go back to the previously active version")
    p.add_argument("--target", choices=["category", "priority"], default="category")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_rollback)
    p = model.add_parser("evaluate", help="evaluate a version (default: the active one) on a labelled CSV")
    p.add_argument("--csv", required=True)
    p.add_argument("--text", required=True)
    p.add_argument("--label", required=True)
    p.add_argument("--version")
    p.add_argument("--target", choices=["category", "priority"])
    p.add_argument("--confusion", metavar="PNG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_model_evaluate)

    p = sub.add_parser("report", help="what the desk did: volumes, SLA, response times, who has what")
    p.add_argument("--days", type=int, default=7)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("status", help="queue, outbox and ticket counts")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Whatever any command creates (database, mail, models, logs) is for this user alone. The
    # caller's umask comes back on return, for a program that runs commands in its own process.
    caller_umask = os.umask(PRIVATE_UMASK)
    try:
        return _main(argv)
    finally:
        os.umask(caller_umask)


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[..., int] = args.func
    try:
        if not getattr(args, "needs_settings", True):
            setup_logging("INFO", quiet=args.quiet)
            return func(args)
        settings = load_settings(args.config)
        # Only the daemon and ingest narrate what they do; listings print their answer and nothing else.
        quiet = args.quiet or args.command not in ("serve", "ingest") or getattr(args, "json", False)
        setup_logging(settings.logging.level, settings.logging.file, quiet=quiet)
        return func(args, settings)
    except SettingsError as exc:
        echo(f"helpdesk: configuration: {exc}", file=sys.stderr)
        return EX_CONFIG
    except RulesError as exc:
        echo(f"helpdesk: rules: {exc}", file=sys.stderr)
        return EX_CONFIG
    except (RoutingError, FileNotFoundError) as exc:
        echo(f"helpdesk: {exc}", file=sys.stderr)
        return 1
    except NotInitialised as exc:
        echo(f"helpdesk: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else EX_CONFIG
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
