"""What every command shares: logging that no mail can steer, reading the database, JSON output, and
the sysexits.h codes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from helpdesk.files import private_directory, private_file
from helpdesk.settings import Settings
from helpdesk.terminal import SafeFormatter, json_text
from intake.ingest import EX_DATAERR, EX_NOINPUT, EX_TEMPFAIL, EX_USAGE

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from models.dbapi import Database

SYSLOG_SOCKET = "/dev/log"

__all__ = [
    "EX_DATAERR",
    "EX_NOINPUT",
    "EX_TEMPFAIL",
    "EX_USAGE",
    "emit_json",
    "fast_reading",
    "reading",
    "setup_logging",
]


def setup_logging(
    level: str, file: Path | None = None, *, quiet: bool = False, stderr: bool = True, syslog: bool = False
) -> None:
    """Log to `file`, to stderr unless `stderr` is off (an MTA quotes what a delivery agent writes
    there), and to the local syslog with `syslog` when it has a socket."""
    handlers: list[logging.Handler] = []
    if file is not None:
        # The log names requesters and tickets: it is as private as the database.
        try:
            private_directory(file.parent)
            private_file(file)
            handlers.append(logging.FileHandler(file, encoding="utf-8"))
        except OSError:
            if stderr:
                raise
            syslog = True  # a delivery agent still has to tell its trouble somewhere
    if stderr:
        handlers.append(logging.StreamHandler(sys.stderr))
    if syslog and Path(SYSLOG_SOCKET).exists():
        from logging.handlers import SysLogHandler

        try:
            handlers.append(SysLogHandler(address=SYSLOG_SOCKET, facility=SysLogHandler.LOG_MAIL))
        except OSError:
            pass  # no syslog daemon behind the socket
    if not handlers:
        handlers.append(logging.NullHandler())  # not logging's last resort, which writes to stderr
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


@contextmanager
def reading(settings: Settings) -> Iterator[Session]:
    """A read-only session on the desk's database, for listings: a database that is not initialised
    is reported as by every command, but nothing of the daemon (pipeline, templates, rules) is
    built, since a listing uses none of it."""
    from helpdesk.database import readers

    with readers(settings) as sessions, sessions() as session:
        yield session


@contextmanager
def fast_reading(settings: Settings) -> Iterator[Database | None]:
    """The desk's database through the DBAPI alone (models/dbapi.py), in one read-only transaction,
    for a listing that must start fast; None when that does not serve this database (the caller
    reads with `reading`). A database that is not initialised is refused as by `reading`."""
    from helpdesk.database import NotInitialised
    from models.dbapi import Database
    from models.revision import head_revision

    database = Database.open(settings.database)
    if database is None:
        yield None
        return
    with database:
        if database.revision() != head_revision():
            raise NotInitialised.of(settings)
        database.begin_read()
        try:
            yield database
        finally:
            database.end(commit=False)


def emit_json(data: Any) -> None:
    sys.stdout.write(json_text(data) + "\n")
