"""What identifies a stored mail, and the row it is stored as: Message-ID, dedupe key, content digest,
thread keys and the raw queue's column values.

Shared by the two writers of the raw queue: `RawStore` (intake/raw_queue.py, SQLAlchemy, every
intake path) and the piped ingest's DBAPI store (intake/pipe_store.py, which must not load
SQLAlchemy). Both take their keys and their values from here, so a mail is the same row
whichever stored it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32

from models.kinds import RawStatus
from models.thread_hash import keys_of

_HEADER_END = re.compile(rb"\r?\n\r?\n")
# RFC 5322 section 3.6.4: an id is printable; one with control characters (NUL, which PostgreSQL
# refuses in text) or longer than a line is no id, and the mail is deduplicated by its content.
_MSGID = re.compile(r"<([^<>\s\x00-\x1f\x7f-\x9f]{1,998})>")


def _low_word(key: int) -> int:
    """The low 32 bits of a 64-bit key as a signed 32-bit integer."""
    low = key & 0xFFFFFFFF
    return low - (1 << 32) if low >= 1 << 31 else low


# A store waits at most this long for a related mail's store to commit (models' thread keys), then
# fails like any store that cannot be done now (the SMTP client hears 451 and tries again later).
STORE_LOCK_WAIT_SECONDS = 30


@dataclass(frozen=True)
class StoreResult:
    raw_id: int | None  # the stored row, or the row it duplicates
    duplicate: bool


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """Header block and body of a raw message (a message with no blank line is all headers)."""
    match = _HEADER_END.search(data)
    if match is None:
        return data, b""
    return data[: match.start()], data[match.end() :]


def extract_message_id(value: str | None) -> str | None:
    """The bare Message-ID from a header value, without angle brackets; None when unusable."""
    if not value:
        return None
    value = str(value).strip()
    match = _MSGID.search(value)
    if match:
        return match.group(1)
    # Broken mailers send ids without brackets; take the first word if it looks like one.
    token = value.split()[0] if value.split() else ""
    if "@" not in token or len(token) > 900 or not token.isprintable():
        return None
    return token


def header_message_id(header_block: bytes) -> str | None:
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block + b"\n\n")
    return extract_message_id(headers.get("Message-ID"))


def thread_key_values(header_block: bytes, envelope_to: Sequence[str]) -> list[str]:
    """What ties a mail to others of its conversation (models/thread_keys.py): its Message-ID,
    In-Reply-To, the first and last References (RFC 5322 section 3.6.4: the root and the parent)
    and the rest of them, and the tag of each plus-address it was sent to."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block + b"\n\n")
    own = extract_message_id(headers.get("Message-ID"))
    parents = _MSGID.findall(str(headers.get("In-Reply-To", "")))
    refs = _MSGID.findall(str(headers.get("References", "")))
    tags = [f"tag:{a.lower().partition('@')[0].partition('+')[2]}" for a in envelope_to if "+" in a]
    return [v for v in (own, *parents, *refs[:1], *refs[-1:], *refs[1:-1], *tags) if v and v != "tag:"]


def content_digest(data: bytes) -> str:
    """sha256 of what identifies a mail's content whatever path it took: a few headers and the body.

    Trace headers (Received, Return-Path, Delivered-To) differ between copies of one mail, so
    they are left out; line endings and trailing white space are normalised.
    """
    header_block, body = split_message(data)
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block + b"\n\n")
    digest = hashlib.sha256()
    for name in ("from", "to", "cc", "date", "subject"):
        digest.update(name.encode() + b":" + str(headers.get(name, "")).strip().encode("utf-8", "replace"))
        digest.update(b"\n")
    lines = body.replace(b"\r\n", b"\n").rstrip().split(b"\n")
    digest.update(b"\n".join(line.rstrip() for line in lines))
    return digest.hexdigest()


def dedupe_key_for(message_id: str | None, data: bytes) -> str:
    if message_id:
        return hashlib.sha256(b"mid:" + message_id.encode("utf-8", "replace")).hexdigest()
    return hashlib.sha256(b"content:" + content_digest(data).encode()).hexdigest()


@dataclass(frozen=True)
class Incoming:
    """One mail to store, with where it came from.

    A mail refused at its source (`refused`: why) is stored straight into the quarantine, with
    the size the source gave (`size`) when `data` is only what could be kept of it.
    """

    data: bytes
    source: str
    source_key: str | None = None
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()
    backfill: bool = False
    refused: str | None = None
    size: int | None = None


def reused_id_key(message_id: str, data: bytes) -> str:
    """The dedupe key of a mail that reuses a stored mail's Message-ID with other content."""
    return hashlib.sha256(f"mid:{message_id}|{content_digest(data)}".encode("utf-8", "replace")).hexdigest()


def same_content(existing_data: bytes, existing_source_key: str | None, data: bytes) -> bool:
    """Whether a stored mail (its bytes and source key) is the same mail as `data`."""
    if existing_source_key is not None and existing_data == data:
        return True
    return content_digest(existing_data) == content_digest(data)


def thread_keys_to_lock(header_block: bytes, envelope_to: Sequence[str]) -> list[int] | None:
    """The mail's thread keys (models/thread_keys.py); None when the stdlib cannot read its headers
    (the mail is ordered by nothing)."""
    try:
        return keys_of(thread_key_values(header_block, envelope_to))
    except Exception:  # headers the stdlib cannot read
        return None


def lock_words(key: int) -> tuple[int, int]:
    """A 64-bit key as the two signed 32-bit words of `pg_advisory_xact_lock(int, int)`: that form
    has its own key space, apart from the budgets' and the election's one-bigint locks."""
    return key >> 32, _low_word(key)


def row_values(mail: Incoming, dedupe_key: str, message_id: str | None, now: datetime) -> dict[str, object]:
    """The raw queue row of `mail`, every column a store writes (the others keep their defaults:
    no sender verdict, no claim, no outcome). A refused mail goes straight to the quarantine."""
    values: dict[str, object] = {
        "received_at": now,
        "source": mail.source,
        "source_key": mail.source_key,
        "dedupe_key": dedupe_key,
        "message_id": message_id,
        "envelope_from": mail.envelope_from,
        "envelope_to": list(mail.envelope_to),
        "size": len(mail.data) if mail.size is None else mail.size,
        "data": mail.data,
        "backfill": mail.backfill,
        "status": RawStatus.RECEIVED,
        "attempts": 0,
    }
    if mail.refused is not None:
        values.update(status=RawStatus.FAILED, error=mail.refused[:4000], processed_at=now)
    return values
