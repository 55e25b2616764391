"""The durable raw queue: store a mail's bytes and commit, before anyone is told "accepted".

Deduplication happens here so that a re-delivered (SMTP retry after a lost 250) or re-fetched
(IMAP crash between commit and flag) message is a no-op:

* `source_key` identifies the copy at its source (IMAP mailbox + UIDVALIDITY + UID);
* `dedupe_key` is the sha256 of the Message-ID (RFC 5322 section 3.6.4), or of the content when
  a mail has none. Some mailers reuse a Message-ID for different mails; a second mail with the
  same id but another body is therefore stored too, under a key that includes its content.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence

from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import StoreError
from intake.raw_keys import (
    STORE_LOCK_WAIT_SECONDS,
    dedupe_key_for,
    lock_words,
    reused_id_key,
    row_values,
    same_content,
    thread_keys_to_lock,
)
from intake.raw_keys import Incoming as Incoming
from intake.raw_keys import StoreResult as StoreResult
from intake.raw_keys import extract_message_id as extract_message_id
from intake.raw_keys import header_message_id as header_message_id
from intake.raw_keys import split_message as split_message
from models import tables
from models.base import utcnow
from models.leases import bound_idle_transaction
from models.raw_message import RawMessage, RawStatus

log = logging.getLogger("helpdesk.intake.raw_queue")

_INSERT_RAW = insert(tables.raw_messages)
_INSERT_KEYS = insert(tables.raw_thread_keys)
# The two-integer form of the lock (intake/raw_keys.py `lock_words`).
_LOCK_KEY = text("SELECT pg_advisory_xact_lock(:high, :low)")


# PostgreSQL ends a store's transaction idle this long (its process paused); a store takes milliseconds.
STORE_IDLE_SECONDS = 10.0


class RawStore:
    """Writes mails into the raw queue; nothing is reported stored before its transaction commits."""

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
        """Store and commit one mail; a duplicate is not stored again. Raises StoreError when it cannot."""
        incoming = Incoming(data, source, source_key, envelope_from, tuple(envelope_to), backfill)
        try:
            with self._sessions() as session:
                # A listener paused mid-store must not hold the mail's unique keys for as long as it
                # is paused: the sender's retry at another daemon would wait on them.
                bound_idle_transaction(session, STORE_IDLE_SECONDS)
                result = self._store_in(session, incoming)
                session.commit()
        except (SQLAlchemyError, TimeoutError) as exc:
            raise StoreError(f"cannot store mail: {exc.__class__.__name__}: {exc}") from exc
        if not result.duplicate and self._on_stored is not None:
            self._on_stored()
        return result

    def store_many(self, mails: Iterable[Incoming], commit_every: int = 200) -> Iterator[StoreResult]:
        """Store a stream of mails, committing every `commit_every` (one disk flush per group, not per mail).

        Results are yielded only once the group they belong to is committed, so a caller that counts
        what it got back never counts a mail that a crash could still take away.
        """
        pending: list[StoreResult] = []
        try:
            with self._sessions() as session:
                for incoming in mails:
                    pending.append(self._store_in(session, incoming))
                    if len(pending) >= commit_every:
                        session.commit()
                        yield from self._committed(pending)
                        pending = []
                session.commit()
        except (SQLAlchemyError, TimeoutError) as exc:
            raise StoreError(f"cannot store mail: {exc.__class__.__name__}: {exc}") from exc
        yield from self._committed(pending)

    def _committed(self, results: list[StoreResult]) -> list[StoreResult]:
        if self._on_stored is not None and any(not r.duplicate for r in results):
            self._on_stored()
        return results

    def _store_in(self, session: Session, mail: Incoming) -> StoreResult:
        """Insert one mail inside `session`'s transaction, in a savepoint so a duplicate undoes only itself."""
        header_block, _ = split_message(mail.data)
        try:
            message_id = header_message_id(header_block)
        except Exception:  # a header block so broken the stdlib parser gives up: keep the mail anyway
            log.warning("STORE could not read headers of a %d-byte mail from %s", len(mail.data), mail.source)
            message_id = None
        key = dedupe_key_for(message_id, mail.data)
        thread_keys: list[int] = []
        if mail.refused is None and session.get_bind().dialect.name == "postgresql":
            thread_keys = self._lock_thread_keys(session, header_block, mail.envelope_to)
        raw_id = self._insert(session, mail, key, message_id)
        if raw_id is not None and thread_keys:
            session.connection().execute(_INSERT_KEYS, [{"raw_id": raw_id, "key": k} for k in thread_keys])
        if raw_id is None:
            existing = self._existing(session, mail.source_key, key)
            if existing is not None and message_id and not self._same_content(existing, mail.data):
                # Same Message-ID, different mail: keep it under a content-qualified key.
                key = reused_id_key(message_id, mail.data)
                raw_id = self._insert(session, mail, key, message_id)
                if raw_id is not None:
                    log.warning(
                        "STORED raw=%d reusing Message-ID <%s> with other content", raw_id, message_id
                    )
            if raw_id is None:
                dup = self._existing(session, mail.source_key, key)
                log.info(
                    "DUPLICATE of raw=%s from %s message-id=<%s>", dup and dup.id, mail.source, message_id
                )
                return StoreResult(raw_id=dup.id if dup else None, duplicate=True)
        log.debug("STORED raw=%d source=%s size=%d", raw_id, mail.source, len(mail.data))
        return StoreResult(raw_id=raw_id, duplicate=False)

    def _insert(
        self, session: Session, mail: Incoming, dedupe_key: str, message_id: str | None
    ) -> int | None:
        """Insert in a savepoint; None when a unique key says we already have it.

        A Core statement on the session's connection, not an ORM object: this runs once per
        mail on every intake path, and the ORM's flush machinery cost more than the insert.
        """
        connection = session.connection()
        values = row_values(mail, dedupe_key, message_id, utcnow())
        savepoint = connection.begin_nested()
        try:
            result = connection.execute(_INSERT_RAW, values)
        except IntegrityError:
            savepoint.rollback()
            return None
        savepoint.commit()
        key = result.inserted_primary_key
        return int(key[0]) if key is not None else None

    def _lock_thread_keys(
        self, session: Session, header_block: bytes, envelope_to: Sequence[str]
    ) -> list[int]:
        """The mail's thread keys, each locked until this transaction ends (PostgreSQL only).

        Several workers share the queue on PostgreSQL and the keys keep a conversation in order
        (models/thread_keys.py), by id. But an id is taken from a sequence at insert, not at
        commit: a reply stored by one daemon could take the lower id and commit after its root,
        stored at the same moment by another, was already claimed and acknowledged. Holding a
        lock on each key from before the insert to the commit makes a second store of the same
        conversation wait for the first, so ids within a conversation follow commit order.
        Unrelated mail shares no key and never waits. Locks are taken in sorted order, so two
        single-mail stores cannot deadlock.
        """
        keys = thread_keys_to_lock(header_block, envelope_to)
        if keys is None:
            return []
        connection = session.connection()
        connection.execute(text(f"SET LOCAL lock_timeout = {STORE_LOCK_WAIT_SECONDS * 1000}"))
        for key in sorted(keys):
            high, low = lock_words(key)
            connection.execute(_LOCK_KEY, {"high": high, "low": low})
        return keys

    def _existing(self, session: Session, source_key: str | None, dedupe_key: str) -> RawMessage | None:
        if source_key is not None:
            found = session.scalars(select(RawMessage).where(RawMessage.source_key == source_key)).first()
            if found is not None:
                return found
        return session.scalars(select(RawMessage).where(RawMessage.dedupe_key == dedupe_key)).first()

    def _same_content(self, existing: RawMessage, data: bytes) -> bool:
        return same_content(existing.data, existing.source_key, data)

    def has_source_key(self, source_key: str) -> bool:
        with self._sessions() as session:
            found = session.scalar(select(RawMessage.id).where(RawMessage.source_key == source_key))
            return found is not None


def restore_thread_keys(session: Session, raw_ids: Sequence[int]) -> None:
    """Write again the thread keys of mails put back in the queue (PostgreSQL only).

    A quarantined mail was finished and its keys deleted; put back by `quarantine retry`, it is
    ordered in its conversation again by its own (old) id, like a mail just stored.
    """
    if not raw_ids or session.get_bind().dialect.name != "postgresql":
        return
    connection = session.connection()
    connection.execute(delete(tables.raw_thread_keys).where(tables.raw_thread_keys.c.raw_id.in_(raw_ids)))
    raw = tables.raw_messages
    rows = connection.execute(select(raw.c.id, raw.c.data, raw.c.envelope_to).where(raw.c.id.in_(raw_ids)))
    values = []
    for raw_id, data, envelope_to in rows:
        keys = thread_keys_to_lock(split_message(bytes(data))[0], list(envelope_to or ()))
        values += [{"raw_id": raw_id, "key": key} for key in keys or ()]
    if values:
        connection.execute(_INSERT_KEYS, values)


def requeue(sessions: sessionmaker[Session], raw_ids: list[int] | None = None) -> int:
    """Put quarantined mails back in the queue (`helpdesk quarantine retry`); returns how many."""
    with sessions() as session:
        query = update(RawMessage).where(RawMessage.status == RawStatus.FAILED)
        if raw_ids is not None:
            query = query.where(RawMessage.id.in_(raw_ids))
        put_back = list(
            session.scalars(
                query.values(
                    status=RawStatus.RECEIVED, attempts=0, claimed_by=None, claimed_until=None
                ).returning(RawMessage.id)
            )
        )
        # Ordered in its conversation again: a reply still waiting waits for it, as it would have.
        restore_thread_keys(session, put_back)
        session.commit()
        return len(put_back)
