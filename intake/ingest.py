"""`helpdesk ingest`: mail from files, standard input, a maildir or an mbox into the raw queue.

For an MTA pipe (Postfix `mailbox_command`, Exim `pipe` transport, procmail), the exit status is
what matters: 0 once the mail is stored (a mail that is then quarantined was stored, and is
kept), 75 (EX_TEMPFAIL from sysexits.h) when it could not be stored, so the MTA keeps it and
tries again later.
"""

from __future__ import annotations

import logging
import mailbox
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from intake.store import RawStore

log = logging.getLogger("helpdesk.ingest")

EX_OK = 0
EX_USAGE = 64
EX_NOINPUT = 66
EX_TEMPFAIL = 75


@dataclass
class IngestCounts:
    stored: int = 0
    duplicates: int = 0


def from_files(paths: list[Path]) -> Iterator[tuple[str, bytes]]:
    for path in paths:
        yield str(path), path.read_bytes()


def from_stream(stream: BinaryIO) -> Iterator[tuple[str, bytes]]:
    yield "stdin", stream.read()


def from_maildir(path: Path) -> Iterator[tuple[str, bytes]]:
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        raise FileNotFoundError(f"{path} is not a maildir (no cur/ or new/)")
    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        yield f"{path}:{key}", box.get_bytes(key)


def from_mbox(path: Path) -> Iterator[tuple[str, bytes]]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    box = mailbox.mbox(str(path), factory=None, create=False)
    try:
        for key in box.iterkeys():
            yield f"{path}:{key}", box.get_bytes(key)
    finally:
        box.close()


def store_all(store: RawStore, mails: Iterator[tuple[str, bytes]], source: str = "ingest") -> IngestCounts:
    """Store every mail; StoreError propagates (the caller exits 75)."""
    counts = IngestCounts()
    for name, data in mails:
        result = store.store(data, source=source)
        if result.duplicate:
            counts.duplicates += 1
            log.debug("INGEST duplicate %s", name)
        else:
            counts.stored += 1
    return counts
