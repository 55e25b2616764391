"""`helpdesk ingest`: mail from files, standard input, a maildir or an mbox into the raw queue.

For an MTA pipe (a Postfix `pipe` transport, an Exim `pipe` transport, procmail), the exit status
is what matters: 0 once the mail is stored (a mail that is then quarantined was stored, and is
kept); a permanent refusal only for mail we can never take, as the SMTP listener answers 5xx:
65 (EX_DATAERR) when it is over the size limit (552) and 67 (EX_NOUSER) when no envelope
recipient is ours (550); and 75 (EX_TEMPFAIL from sysexits.h) for everything else, so the MTA
keeps the mail and tries again later. The envelope an MTA passes (`Envelope`) is stored with the
mail exactly as the listener stores the SMTP envelope: it threads by token and tells bounces.

The limit is the one every intake path has, `[smtp] max_message_size`. A mail over it is
refused, not stored and quarantined: keeping it would hold the bytes the limit is there to keep
out, and the sender would never learn. Every source is read in bounded pieces, so finding out
that a mail is too big never takes more memory than the limit: a file by its size, standard
input and maildir files a piece at a time, and an mbox line by line in pieces (the standard
library's mailbox.mbox reads a whole message, and indexes the file a whole line at a time).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from intake.raw_keys import Incoming
    from intake.raw_queue import RawStore

log = logging.getLogger("helpdesk.ingest")

EX_OK = 0
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_NOUSER = 67
EX_TEMPFAIL = 75

CHUNK = 64 * 1024  # bytes read at a time while a mail may still be over the limit


class Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


@dataclass(frozen=True)
class Candidate:
    """One mail read from a source; `data` is None when it is over the limit.

    `size` is its size in bytes, or, when `exact` is false, how much of it was read before it
    was found to be over the limit (it is at least that big).
    """

    name: str
    data: bytes | None
    size: int
    exact: bool = True

    @property
    def too_big(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class Envelope:
    """What an MTA knows of a mail beyond its bytes (RFC 5321 MAIL FROM and RCPT TO).

    `sender` is None when no envelope was given (a file, a maildir), "" for the null sender of a
    bounce (RFC 5321 section 4.5.5); `recipients` are those of ours, as the listener keeps them.
    """

    sender: str | None = None
    recipients: tuple[str, ...] = ()


@dataclass
class IngestCounts:
    stored: int = 0
    duplicates: int = 0
    refused: list[Candidate] = field(default_factory=list)  # over the size limit, not stored


def read_bounded(stream: Readable, limit: int) -> tuple[bytes | None, int]:
    """Up to `limit` bytes of `stream`: (the bytes, their count), or (None, bytes read) once it has
    more; it stops reading there."""
    data = bytearray()
    while True:
        piece = stream.read(min(CHUNK, limit + 1 - len(data)))
        if not piece:
            return bytes(data), len(data)
        data += piece
        if len(data) > limit:
            return None, len(data)


def drain(stream: Readable) -> int:
    """Read `stream` to its end, keeping nothing; how many bytes that was."""
    count = 0
    while piece := stream.read(CHUNK):
        count += len(piece)
    return count


def from_files(paths: list[Path], limit: int) -> Iterator[Candidate]:
    for path in paths:
        size = path.stat().st_size
        if size > limit:  # a regular file tells its size: nothing of it is read
            yield Candidate(str(path), None, size)
            continue
        with path.open("rb") as fh:  # read bounded even so: a fifo or a file that grows says 0
            data, seen = read_bounded(fh, limit)
        yield Candidate(str(path), data, seen, exact=data is not None)


def from_stream(stream: BinaryIO, limit: int) -> Iterator[Candidate]:
    data, seen = read_bounded(stream, limit)
    if data is None:
        # Read the rest without keeping it, so the MTA writing to us sees our exit status, not
        # a broken pipe, and the message can say how big the mail was.
        seen += drain(stream)
    yield Candidate("stdin", data, seen)


def from_maildir(path: Path, limit: int) -> Iterator[Candidate]:
    if not (path / "cur").is_dir() and not (path / "new").is_dir():
        raise FileNotFoundError(f"{path} is not a maildir (no cur/ or new/)")
    import mailbox  # here, not at the top: a piped mail never reads a maildir

    box = mailbox.Maildir(str(path), factory=None, create=False)
    for key in sorted(box.iterkeys()):
        with box.get_file(key) as fh:
            data, seen = read_bounded(fh, limit)
        yield Candidate(f"{path}:{key}", data, seen, exact=data is not None)


def from_mbox(path: Path, limit: int) -> Iterator[Candidate]:
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    with path.open("rb") as fh:
        for index, (data, size) in enumerate(split_mbox(fh, limit)):
            yield Candidate(f"{path}:{index}", data, size)


_FROM = b"From "
_BLANK = os.linesep.encode()


def split_mbox(fh: BinaryIO, limit: int) -> Iterator[tuple[bytes | None, int]]:
    """The messages of an mbox as mailbox.mbox reads them, each as (bytes or None if over `limit`, size).

    As there: a line that starts with "From " starts a message and is not part of it, the blank
    line before it (and at the end of the file) belongs to no message, and what comes before
    the first "From " line is no message. Unlike there, no line and no message is held whole:
    lines are read in pieces of at most CHUNK bytes, and a message is dropped from memory as
    soon as it is over the limit (its size is still counted).
    """
    message: bytearray | None = None  # None: before the first "From " line
    size = 0
    blank_pending = False  # a blank line that is the separator if a "From " line follows
    at_line_start = True
    in_from_line = False
    while piece := fh.readline(CHUNK):
        starts_line, at_line_start = at_line_start, piece.endswith(b"\n")
        if in_from_line:  # the rest of a "From " line longer than one piece
            in_from_line = not at_line_start
            continue
        if starts_line and piece.startswith(_FROM):
            if message is not None or size:
                yield (bytes(message) if message is not None else None), size
            message, size, blank_pending = bytearray(), 0, False
            in_from_line = not at_line_start
            continue
        if message is None and size == 0:
            continue  # before the first message
        if blank_pending:
            size, message = _append(message, size, _BLANK, limit)
            blank_pending = False
        if starts_line and piece == _BLANK:
            blank_pending = True
            continue
        size, message = _append(message, size, piece, limit)
    if message is not None or size:
        yield (bytes(message) if message is not None else None), size


def _append(message: bytearray | None, size: int, piece: bytes, limit: int) -> tuple[int, bytearray | None]:
    size += len(piece)
    if message is None or size > limit:
        return size, None
    message += piece
    return size, message


def store_all(
    store: RawStore, mails: Iterable[Candidate], source: str = "ingest", envelope: Envelope = Envelope()
) -> IngestCounts:
    """Store every mail within the limit with its envelope, committing in groups, and count the
    ones over it.

    StoreError propagates (the caller exits 75).
    """
    from intake.raw_keys import Incoming  # here: the listings import this module for its exit codes

    counts = IngestCounts()

    def within_limit() -> Iterator[Incoming]:
        for mail in mails:
            if mail.data is None:
                counts.refused.append(mail)
                continue
            yield Incoming(mail.data, source, envelope_from=envelope.sender, envelope_to=envelope.recipients)

    for result in store.store_many(within_limit()):
        if result.duplicate:
            counts.duplicates += 1
        else:
            counts.stored += 1
    return counts
