"""The durable raw queue: store a mail's bytes and commit, before anyone is told "accepted".

Deduplication happens here so that a re-delivered (SMTP retry after a lost 250) or re-fetched
(IMAP crash between commit and flag) message is a no-op:

* `source_key` identifies the copy at its source (IMAP mailbox + UIDVALIDITY + UID);
* `dedupe_key` is the sha256 of the Message-ID (RFC 5322 section 3.6.4), or of the content when
  a mail has none. Some mailers reuse a Message-ID for different mails; a second mail with the
  same id but another body is therefore stored too, under a key that includes its content.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import StoreError
from models.raw_message import RawMessage

log = logging.getLogger("helpdesk.intake.store")

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MSGID = re.compile(r"<([^<>\s]+)>")


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
    return token if "@" in token and len(token) <= 900 else None


def header_message_id(header_block: bytes) -> str | None:
    headers = BytesHeaderParser(policy=compat32).parsebytes(header_block + b"\n\n")
    return extract_message_id(headers.get("Message-ID"))


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


class RawStore:
    """Writes mails into the raw queue, one committed transaction each."""

    def __init__(self, sessions: sessionmaker[Session], on_stored: Callable[[], None] | None = None) -> None:
        self._sessions = sessions
        self._on_stored = on_stored

    def store(
        self,
        data: bytes,
        *,
        source: str,
        source_key: str | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
        backfill: bool = False,
    ) -> StoreResult:
        """Store and commit `data`; a duplicate is not stored again. Raises StoreError when it cannot."""
        header_block, _ = split_message(data)
        try:
            message_id = header_message_id(header_block)
        except Exception:  # a header block so broken the stdlib parser gives up: keep the mail anyway
            log.warning("STORE could not read headers of a %d-byte mail from %s", len(data), source)
            message_id = None
        key = dedupe_key_for(message_id, data)

        def make_row(dedupe_key: str) -> RawMessage:
            return RawMessage(
                source=source,
                source_key=source_key,
                dedupe_key=dedupe_key,
                message_id=message_id,
                envelope_from=envelope_from,
                envelope_to=list(envelope_to),
                size=len(data),
                data=data,
                backfill=backfill,
            )

        try:
            result = self._insert(make_row(key))
            if result is None:
                existing = self._existing(source_key, key)
                if existing is not None and message_id and not self._same_content(existing, data):
                    # Same Message-ID, different mail: keep it under a content-qualified key.
                    key = hashlib.sha256(
                        f"mid:{message_id}|{content_digest(data)}".encode("utf-8", "replace")
                    ).hexdigest()
                    result = self._insert(make_row(key))
                    if result is not None:
                        log.warning(
                            "STORED raw=%d reusing Message-ID <%s> with other content", result, message_id
                        )
                if result is None:
                    dup = self._existing(source_key, key)
                    log.info(
                        "DUPLICATE of raw=%s from %s message-id=<%s>", dup and dup.id, source, message_id
                    )
                    return StoreResult(raw_id=dup.id if dup else None, duplicate=True)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot store mail: {exc.__class__.__name__}: {exc}") from exc
        log.debug("STORED raw=%d source=%s size=%d", result, source, len(data))
        if self._on_stored is not None:
            self._on_stored()
        return StoreResult(raw_id=result, duplicate=False)

    def _insert(self, row: RawMessage) -> int | None:
        """Insert and commit; None when a unique key says we already have it."""
        with self._sessions() as session:
            try:
                session.add(row)
                session.commit()
            except IntegrityError:
                session.rollback()
                return None
            return row.id

    def _existing(self, source_key: str | None, dedupe_key: str) -> RawMessage | None:
        with self._sessions() as session:
            if source_key is not None:
                found = session.scalars(select(RawMessage).where(RawMessage.source_key == source_key)).first()
                if found is not None:
                    return found
            return session.scalars(select(RawMessage).where(RawMessage.dedupe_key == dedupe_key)).first()

    def _same_content(self, existing: RawMessage, data: bytes) -> bool:
        if existing.source_key is not None and existing.data == data:
            return True
        return content_digest(existing.data) == content_digest(data)

    def has_source_key(self, source_key: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(select(RawMessage.id).where(RawMessage.source_key == source_key))
            return found is not None
