"""`helpdesk ingest [FILE...] [--maildir DIR] [--mbox FILE] [--imap NAME] [--sender ADDR] [--recipient ADDR]...`.

Stores mail the way the SMTP listener would, then processes and delivers it in one go; storing
and processing are separate steps, and storing needs only the database. Piped mail is only
stored when a daemon serves the same database (a fresh heartbeat): ingest commits, wakes the
daemon (intake/wakeup.py) and exits, and the daemon processes and acknowledges it; with no live
daemon it processes the mail itself. The piped mail is stored and handed off with the DBAPI alone
(intake/pipe_store.py: no SQLAlchemy, no mapped table, a fraction of the start-up); only
processing it here loads the rest. Run by an MTA (one mail
on standard input, the envelope in `--sender` and `--recipient`), it is a delivery agent and its
exit status is all the MTA acts on (sysexits.h):

- 0: stored (a duplicate, or a mail then quarantined, was stored too);
- 65 (EX_DATAERR): over `[smtp] max_message_size`; 67 (EX_NOUSER): no recipient is ours. Only
  these are permanent, mail we can never take; the MTA bounces it, quoting the one line we write
  on stderr, which starts with its RFC 3463 status as the listener's 552 and 550 do;
- 75 (EX_TEMPFAIL) for everything else: a configuration missing or unreadable, a database away or
  read-only, a bug. The MTA keeps the mail and retries, and no requester hears of our trouble: one
  line goes to stderr (the MTA's log), the traceback to our log (`[logging] file`, else syslog).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpdesk.cli.common import EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_USAGE, emit_json, setup_logging
from helpdesk.terminal import cell, echo
from intake.ingest import EX_NOUSER, Candidate, Envelope, IngestCounts, drain

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from helpdesk.app import App
    from helpdesk.settings import Settings
    from intake.raw_queue import RawStore
    from intake.worker import WorkReport

log = logging.getLogger("helpdesk.ingest")

# RFC 3463 status codes that open the line an MTA quotes (Postfix's pipe takes the status from it).
STATUS_TOO_BIG = "5.3.4"
STATUS_NOT_OURS = "5.1.1"
STATUS_TEMPFAIL = "4.3.0"


def add_parser(sub: argparse._SubParsersAction[Any], name: str, help_text: str) -> None:
    p = sub.add_parser(name, help=help_text)
    p.add_argument("files", nargs="*", help="message files (default: one message on stdin)")
    p.add_argument("--maildir", help="a maildir to read every message from")
    p.add_argument("--mbox", help="an mbox file to read every message from")
    p.add_argument(
        "--imap", metavar="NAME", help="fetch new mail once from the [[imap]] mailbox NAME (for cron)"
    )
    p.add_argument(
        "--sender",
        metavar="ADDR",
        help="the envelope sender (MAIL FROM) the MTA received the mail with; empty for a bounce",
    )
    p.add_argument(
        "--recipient",
        metavar="ADDR",
        action="append",
        default=[],
        help="an envelope recipient (RCPT TO), repeatable; mail for none of ours is refused (67)",
    )
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--no-process", action="store_true", help="only store; leave processing to `serve`")
    p.add_argument("--no-send", action="store_true", help="do not deliver the outbox after processing")
    # It reads its configuration itself: a configuration it cannot read is a 75, not a 78.
    p.set_defaults(func=cmd_ingest, needs_settings=False)


def process(app: App, *, send: bool) -> WorkReport:
    """Process what is queued, then deliver what that queued (unless `send` is off)."""
    from models.claims import release_dead_claims

    release_dead_claims(app.sessions)
    report = app.worker.process_available()
    if send:
        while True:
            sent = app.sender.deliver_due()
            if not (sent.sent or sent.failed) or sent.retried:
                break
    return report


def one_line(exc: BaseException) -> str:
    """An exception as one line for stderr: its type and the first line of its text."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return cell(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:300]


def as_mta_pipe(args: argparse.Namespace) -> bool:
    """One mail on standard input, as an MTA runs us: stderr then carries only the reason."""
    return not (args.files or args.maildir or args.mbox or args.imap)


def cmd_ingest(args: argparse.Namespace) -> int:
    from helpdesk.settings import load_settings

    piped = as_mta_pipe(args)
    try:
        settings = load_settings(args.config)
    except Exception as exc:
        # Nothing says where our log is: the reason goes to syslog and, as one line, to the MTA.
        setup_logging("INFO", quiet=args.quiet, stderr=not piped, syslog=True)
        log.error("INGEST DEFERRED: cannot read the configuration", exc_info=True)
        echo(f"{STATUS_TEMPFAIL} helpdesk ingest: configuration: {one_line(exc)}", file=sys.stderr)
        return EX_TEMPFAIL
    quiet = args.quiet or args.json
    setup_logging(
        settings.logging.level,
        settings.logging.file,
        quiet=quiet,
        stderr=not piped,
        syslog=piped and settings.logging.file is None,
    )
    try:
        return _ingest(args, settings, piped)
    except Exception as exc:
        # Anything but 0, 65, 67 or 75 makes an MTA bounce the mail to its sender; 75 makes it retry.
        log.error("INGEST DEFERRED: %s", one_line(exc), exc_info=True)
        echo(f"{STATUS_TEMPFAIL} helpdesk ingest: cannot store now: {one_line(exc)}", file=sys.stderr)
        return EX_TEMPFAIL


def envelope_of(args: argparse.Namespace, settings: Settings) -> Envelope | None:
    """The envelope given, with the recipients that are ours; None when recipients were given and
    none of them is ours (the mail is not for us)."""
    ours = tuple(r for r in args.recipient if settings.identity.is_ours(r))
    for recipient in args.recipient:
        if recipient not in ours:
            log.info("INGEST IGNORED rcpt=%s (not our address)", recipient)
    if args.recipient and not ours:
        return None
    return Envelope(args.sender, ours)


def open_store(settings: Settings) -> tuple[RawStore, Engine]:
    """The raw queue alone, with its engine: storing needs the database and nothing else."""
    from helpdesk.database import checked_engine
    from intake.raw_queue import RawStore
    from models.db import session_factory

    engine = checked_engine(settings)
    return RawStore(session_factory(engine)), engine


def hand_off(engine: Engine) -> bool:
    """Leave the stored mail to a daemon serving the database, if one is alive: announce it and
    return True; False when none is (the caller processes it itself).

    Called after the store's commit, so the mail is safe whatever happens here; an announcement
    that fails still leaves it to the daemon, whose worker looks for stored mail every second."""
    from sqlalchemy.orm import Session

    from intake.wakeup import announce
    from models.db import read_only
    from models.heartbeat import live_daemons

    with Session(read_only(engine)) as session:  # no write lock on SQLite for a look
        daemons = live_daemons(session)
    if not daemons:
        return False
    try:
        announce(engine)
    except Exception as exc:
        log.warning("INGEST cannot wake the daemon (it finds the mail within a second): %s", one_line(exc))
    log.info("INGEST HANDED to daemon %s", daemons[0])
    return True


def _ingest(args: argparse.Namespace, settings: Settings, piped: bool) -> int:
    from intake.errors import MailboxError, StoreError
    from intake.ingest import from_files, from_maildir, from_mbox, from_stream, store_all

    limit = settings.smtp.max_message_size  # the one size limit of every intake path
    envelope = envelope_of(args, settings)
    if envelope is None:
        if piped:
            drain(sys.stdin.buffer)  # the MTA writing to us hears our status, not a broken pipe
        addresses = ", ".join(f"<{r}>" for r in args.recipient)
        echo(
            f"{STATUS_NOT_OURS} helpdesk ingest: {addresses}: no such mailbox here "
            f"(this helpdesk takes mail for {settings.identity.address} and its plus-addresses)",
            file=sys.stderr,
        )
        return EX_NOUSER
    counts = IngestCounts()
    handed = False
    try:
        if args.imap:
            from helpdesk.app import build_app

            with build_app(settings) as app:
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
        if piped:
            sources.append(from_stream(sys.stdin.buffer, limit))
        light = store_light(settings, limit, envelope) if piped else None
        if light is not None:  # stored (and handed off) with the DBAPI alone
            counts, handed = light
        elif sources:
            store, engine = open_store(settings)
            try:
                for source in sources:
                    part = store_all(store, source, envelope=envelope)
                    counts.stored += part.stored
                    counts.duplicates += part.duplicates
                    counts.refused += part.refused
                # A daemon on this database processes what an MTA pipes us; we only store it and
                # wake it (with --no-process too, so it need not wait for its next look).
                if piped and not counts.refused:
                    handed = _hand_off_safely(engine)
            finally:
                engine.dispose()
    except StoreError as exc:
        log.error("INGEST DEFERRED: cannot store: %s", exc)
        echo(f"{STATUS_TEMPFAIL} helpdesk ingest: cannot store: {one_line(exc)}", file=sys.stderr)
        return EX_TEMPFAIL
    except MailboxError as exc:
        echo(f"helpdesk ingest: IMAP {args.imap}: {exc}", file=sys.stderr)
        return EX_TEMPFAIL
    except KeyError as exc:
        echo(f"helpdesk ingest: {exc.args[0]}", file=sys.stderr)
        return EX_USAGE
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        if piped:
            raise  # not an input file of ours: the database's, or the configuration's (75)
        echo(f"helpdesk ingest: {exc}", file=sys.stderr)
        return EX_NOINPUT
    for mail in counts.refused:
        log.info("INGEST REFUSED %s: %s", mail.name, _too_big(mail, limit))
        # On stderr whatever else is asked: an MTA pipe puts it in the bounce to the sender.
        echo(f"{STATUS_TOO_BIG} helpdesk ingest: {mail.name}: {_too_big(mail, limit)}", file=sys.stderr)
    if piped and counts.refused:
        return EX_DATAERR  # the one line above is all the MTA quotes
    if piped:
        log.info(
            "INGEST %s from=%s to=%s",
            "STORED" if counts.stored else "DUPLICATE",
            envelope.sender,
            ",".join(envelope.recipients),
        )
    if handed or args.no_process:  # neither the pipeline nor the templates are loaded
        return _report(args, counts, None, handed=handed)
    from helpdesk.app import build_app
    from intake.worker import WorkReport

    report = WorkReport()
    try:
        with build_app(settings) as app:
            report = process(app, send=not args.no_send)
    except Exception as exc:  # the mail is stored; processing resumes in `serve` or the next ingest
        log.error("processing after ingest failed (the mail is stored): %s", one_line(exc), exc_info=True)
    return _report(args, counts, report, handed=False)


def store_light(settings: Settings, limit: int, envelope: Envelope) -> tuple[IngestCounts, bool] | None:
    """Store the piped mail and hand it to a live daemon without loading SQLAlchemy (intake/pipe_store.py):
    the counts and whether a daemon has it. None when that store does not serve this database (the
    caller takes the full path, which answers as it always did)."""
    from helpdesk.database import NotInitialised
    from intake.ingest import from_stream
    from intake.pipe_store import PipeStore
    from intake.raw_keys import Incoming
    from models.revision import head_revision

    store = PipeStore.open(settings.database)
    if store is None:
        return None
    with store:
        if store.schema_revision() != head_revision():
            raise NotInitialised.of(settings)
        counts = IngestCounts()
        for mail in from_stream(sys.stdin.buffer, limit):
            if mail.data is None:
                counts.refused.append(mail)
                continue
            incoming = Incoming(
                mail.data, "ingest", envelope_from=envelope.sender, envelope_to=envelope.recipients
            )
            if store.store(incoming).duplicate:
                counts.duplicates += 1
            else:
                counts.stored += 1
        if counts.refused:
            return counts, False
        try:
            daemons = store.live_daemons()
        except Exception as exc:  # the mail is committed: processing it here is always safe
            log.warning("INGEST cannot tell whether a daemon runs; processing here: %s", one_line(exc))
            return counts, False
        if not daemons:
            return counts, False
        try:
            store.announce()
        except Exception as exc:
            log.warning(
                "INGEST cannot wake the daemon (it finds the mail within a second): %s", one_line(exc)
            )
        log.info("INGEST HANDED to daemon %s", daemons[0])
        return counts, True


def _hand_off_safely(engine: Engine) -> bool:
    """`hand_off`, where a failure to tell means processing here, as with no daemon."""
    try:
        return hand_off(engine)
    except Exception as exc:  # the mail is committed: processing it here is always safe
        log.warning("INGEST cannot tell whether a daemon runs; processing here: %s", one_line(exc))
        return False


def _report(
    args: argparse.Namespace, counts: IngestCounts, report: WorkReport | None, *, handed: bool
) -> int:
    """Print the counts (processing's too, when it processed); the exit status."""
    if report is None:
        processed = {"tickets_created": 0, "replies": 0, "automatic": 0, "quarantined": 0}
        summary = "handed to the daemon" if handed else "not processed"
    else:
        processed = {
            "tickets_created": report.tickets_created,
            "replies": report.replies,
            "automatic": report.automatic + report.bounces,
            "quarantined": report.quarantined,
        }
        summary = report.summary()
    result = {
        "stored": counts.stored,
        "duplicates": counts.duplicates,
        **processed,
        "refused": len(counts.refused),
        "handed_to_daemon": handed,
    }
    if args.json:
        emit_json(result)
    else:
        refused = f", refused {len(counts.refused)} over the size limit" if counts.refused else ""
        echo(f"stored {counts.stored}, duplicates {counts.duplicates}{refused}; {summary}")
    return EX_DATAERR if counts.refused else 0


def _too_big(mail: Candidate, limit: int) -> str:
    size = f"{mail.size} bytes" if mail.exact else f"more than {limit} bytes"
    return f"refused, not stored: {size} is over the limit of {limit} bytes ([smtp] max_message_size)"
