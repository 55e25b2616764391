"""`helpdesk ingest [FILE...] [--maildir DIR] [--mbox FILE] [--imap NAME] [--json]`.

Stores mail the way the SMTP listener would, then processes and delivers it in one go. An MTA
pipe acts on the exit status: 75 when the mail could not be stored (it retries), 65 when it was
over the size limit (it bounces the mail, with our words on stderr).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from helpdesk.app import App, build_app
from helpdesk.cli.common import EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_USAGE, emit_json
from helpdesk.settings import Settings
from helpdesk.terminal import echo
from intake.errors import MailboxError, StoreError
from intake.ingest import IngestCounts, from_files, from_maildir, from_mbox, from_stream, store_all
from intake.worker import WorkReport
from models.claims import release_dead_claims

log = logging.getLogger("helpdesk.cli")


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
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


def process(app: App, *, send: bool) -> WorkReport:
    """Process what is queued, then deliver what that queued (unless `send` is off)."""
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
                counts.stored += report_imap.stored  # backfilled mail is part of it
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
            return EX_USAGE
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
                report = process(app, send=not args.no_send)
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
