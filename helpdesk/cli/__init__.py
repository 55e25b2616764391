"""The `helpdesk` command line: init, serve, ingest, tickets, quarantine, status, and the rest.

One module per group of commands (init.py, serve.py, ingest.py, tickets.py, quarantine.py,
technicians.py, sla.py, models.py for retrain and model, kb.py, report.py, status.py), each adding its
parser with `add_parser` and importing what its commands use. Only the module of the command
being run is imported, so `helpdesk tickets list` never loads the classifier, the migrations or
the mail parser (`helpdesk --help` loads every module, none of them heavy at import).

Exit codes follow sysexits.h where a caller acts on them: `helpdesk ingest`, an MTA's delivery
agent, exits 65 (EX_DATAERR) for mail over the size limit and 67 (EX_NOUSER) for mail not for us
(the MTA bounces it), and 75 (EX_TEMPFAIL) for every other failure, its command line and its
configuration included (the MTA retries); the other commands exit 78 (EX_CONFIG) for a broken
configuration.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence

EX_CONFIG = 78  # sysexits.h: a configuration error
EX_TEMPFAIL = 75  # sysexits.h: try again later
EX_ARGPARSE = 2  # what argparse exits with on a command line it cannot read
EX_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it
EX_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left

# Each command: the module (in this package) that adds its parser and runs it, and its help.
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("init", "write helpdesk.toml (if missing) and create or migrate the database"),
    "serve": ("serve", "run the daemon: SMTP listener, worker, sender, timers"),
    "ingest": ("ingest", "store mail from files, stdin, a maildir or an mbox, then process it"),
    "tickets": ("tickets", "list and show tickets"),
    "quarantine": ("quarantine", "mail that could not be processed"),
    "technicians": ("technicians", "who works tickets"),
    "sla": ("sla", "SLA timers"),
    "retrain": ("models", "train a new classifier version, evaluate it, and optionally activate it"),
    "model": ("models", "classifier versions"),
    "kb": ("kb", "the knowledge base: articles published from resolved tickets; a static site"),
    "report": ("report", "what the desk did: volumes, SLA, response times, who has what"),
    "status": ("status", "queue, outbox and ticket counts"),
    "web": ("web", "the dashboard: a one-time sign-in link"),
}
# The global options that take a value (the command is the first word that is not an option).
_VALUED_OPTIONS = ("--config", "-c")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with the arguments of `only` alone (the others are named)."""
    parser = argparse.ArgumentParser(prog="helpdesk", description="An email-driven helpdesk.")
    parser.add_argument(
        "--config", "-c", help="path of helpdesk.toml (default: $HELPDESK_CONFIG or ./helpdesk.toml)"
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="log warnings and errors only")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        if only is None or name == only:
            importlib.import_module(f"{__name__}.{module}").add_parser(sub, name, help_text)
        else:
            sub.add_parser(name, help=help_text)
    return parser


def command_of(argv: Sequence[str]) -> str | None:
    """The command named in `argv`, when it names one we know."""
    words = iter(argv)
    for word in words:
        if word in _VALUED_OPTIONS:
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    from helpdesk.files import PRIVATE_UMASK

    # Whatever any command creates (database, mail, models, logs) is for this user alone. The
    # caller's umask comes back on return, for a program that runs commands in its own process.
    caller_umask = os.umask(PRIVATE_UMASK)
    words = sys.argv[1:] if argv is None else argv
    try:
        return _main(words)
    except BrokenPipeError:
        # The reader went away (`helpdesk tickets list | head`): what it read was all it wanted.
        # Later writes, and the interpreter's flush at exit, go nowhere instead of raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        # ingest: the MTA stopped listening; it delivers again, and a stored mail is a duplicate then.
        return EX_TEMPFAIL if command_of(words) == "ingest" else EX_BROKEN_PIPE
    except SystemExit as exc:
        if exc.code == EX_ARGPARSE and command_of(words) == "ingest":
            # A wrong word in the MTA's command line is ours to fix; the MTA keeps the mail meanwhile.
            return EX_TEMPFAIL
        raise
    except Exception as exc:
        if command_of(words) != "ingest":
            raise
        # Before `helpdesk ingest` could take over (a broken install, a module that does not
        # import): still a failure of ours, so the MTA keeps the mail, and no traceback for it
        # to quote.
        reason = (str(exc).splitlines() or [""])[0][:300]
        print(f"4.3.0 helpdesk ingest: {type(exc).__name__}: {reason}", file=sys.stderr)
        return EX_TEMPFAIL
    finally:
        os.umask(caller_umask)


def _main(argv: Sequence[str]) -> int:
    from helpdesk.cli.common import setup_logging
    from helpdesk.settings import SettingsError, load_settings
    from helpdesk.terminal import echo
    from routing.errors import RoutingError
    from routing.rule_errors import RulesError

    args = build_parser(only=command_of(argv)).parse_args(argv)
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
    except KeyboardInterrupt:
        return EX_INTERRUPTED
    except RuntimeError as exc:
        from helpdesk.database import DatabaseUnreachable, NotInitialised  # loaded: the command opened it

        if isinstance(exc, DatabaseUnreachable):  # the server is away: the same command works later
            echo(f"helpdesk: {exc}", file=sys.stderr)
            return EX_TEMPFAIL
        if not isinstance(exc, NotInitialised):
            raise
        echo(f"helpdesk: {exc}", file=sys.stderr)
        return EX_TEMPFAIL if args.command == "ingest" else EX_CONFIG
