"""Fetching the new mail of one selected IMAP folder into the raw queue, batch by batch.

A pass: `UID SEARCH UID n:* SINCE d` finds the UIDs above the cursor (RFC 3501 section 6.4.4);
for each batch, `UID FETCH (INTERNALDATE RFC822.SIZE)` sorts out mail older than the cut-off and
groups the rest by size, `UID FETCH (BODY.PEEK[])` brings the bytes without setting \\Seen, the
group is stored and committed in one transaction, then flagged or moved, and only then the cursor
moves past it. A crash anywhere re-fetches at most one group, and the raw queue makes that a no-op.

Sizes. A mail whose RFC822.SIZE is over `max_message_size` (the cap of every intake path) is not
fetched: the start of its header is, and that is recorded in the quarantine with the size, the
UID and why, so `helpdesk quarantine list` shows who sent what; the mail itself stays on the
server untouched (not flagged, not moved) for a person to deal with, and the cursor moves past it.
The FETCH of the others may bring only what their announced sizes allow (`body_budget`): a server
that sends more is disconnected by the bounds of `intake.imap_bounds`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from intake.errors import StoreError
from intake.imap_bounds import ResponseBudget
from intake.imap_client import MailNotices, expect, mark_processed
from intake.imap_config import ImapMailboxConfig
from intake.raw_queue import Incoming, RawStore, split_message

log = logging.getLogger("helpdesk.intake.imap")

# SEARCH SINCE compares dates only, ignoring time and zone (RFC 3501 section 6.4.4): search a day
# wider, then compare each INTERNALDATE exactly.
SEARCH_SLACK = timedelta(days=1)

# Servers count a mail's size in their own way (line ends, a header they add): a literal may be
# this much, or a tenth, bigger than its RFC822.SIZE before the server counts as lying.
SIZE_SLACK = 64 * 1024
# Of a mail too large to fetch, this much of its header is kept (a partial FETCH, RFC 3501 6.4.5).
HEADER_PEEK = 64 * 1024
_CONTENT_FIELDS = (b"content-type:", b"content-transfer-encoding:", b"content-disposition:", b"mime-version:")

Mail = tuple[int, int, datetime]  # uid, size, INTERNALDATE


@dataclass(frozen=True)
class FetchReport:
    """What one check of a mailbox did."""

    mailbox: str
    uidvalidity: int | None = None
    stored: int = 0  # new rows in the raw queue
    duplicates: int = 0  # fetched again, already stored (a crash or a new UIDVALIDITY)
    backfilled: int = 0  # of `stored`: history, no acknowledgments
    skipped: int = 0  # examined and older than the cut-off, left alone
    too_large: int = 0  # over max_message_size: left on the server, recorded in the quarantine
    first_uid: int | None = None  # the range of UIDs stored or recognised
    last_uid: int | None = None


@dataclass
class Counts:
    found: int = 0  # UIDs the search returned
    stored: int = 0
    duplicates: int = 0
    backfilled: int = 0
    skipped: int = 0
    too_large: int = 0
    uids: list[int] = field(default_factory=list)  # stored or recognised, flagged

    def add(self, other: Counts) -> None:
        self.found += other.found
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.backfilled += other.backfilled
        self.skipped += other.skipped
        self.too_large += other.too_large
        self.uids += other.uids


@dataclass
class Cursor:
    """Where the poller is in the folder: everything up to `last_uid` is stored and flagged."""

    uidvalidity: int | None
    last_uid: int
    added_at: datetime  # the mailbox was first seen: the line between history and new mail

    def cutoff(self, config: ImapMailboxConfig) -> datetime:
        """Mail delivered before this is not imported: `since`, or else the moment of adding."""
        return config.since_datetime or self.added_at


def batched(items: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def by_bytes(mails: Sequence[Mail], limit: int) -> Iterator[list[Mail]]:
    """Consecutive groups of at most `limit` bytes (a bigger mail goes alone)."""
    group: list[Mail] = []
    total = 0
    for mail in mails:
        if group and total + mail[1] > limit:
            yield group
            group, total = [], 0
        group.append(mail)
        total += mail[1]
    if group:
        yield group


def allowance(size: int, cap: int) -> int:
    """The largest literal a mail announced at `size` bytes may come as (never over `cap`)."""
    return min(cap, size + max(size // 10, SIZE_SLACK))


def body_budget(config: ImapMailboxConfig, sizes: Sequence[int]) -> ResponseBudget:
    """What the answer to a FETCH of these mails' bodies may hold: their announced sizes, and room."""
    literals = [allowance(size, config.max_message_size) for size in sizes]
    return ResponseBudget(
        max_bytes=config.max_response_bytes + sum(literals),
        max_lines=config.max_response_lines + 3 * len(literals),
        max_literal=max(literals, default=0),
        timeout=config.command_timeout,
    )


def refused_mail(header: bytes, note: str) -> bytes:
    """What is kept of a mail that was not fetched: its header (no MIME structure) and a note.

    Kept as a mail of its own so `helpdesk quarantine show` reads it like any other; a retry
    makes a ticket whose text says where the original is.
    """
    block, _ = split_message(header)
    complete = block if header != block or block.endswith(b"\n") else block.rpartition(b"\n")[0]
    kept: list[bytes] = []
    dropping = False
    for line in complete.replace(b"\r\n", b"\n").split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if not dropping and kept:
                kept.append(line)
            continue
        dropping = line.lower().startswith(_CONTENT_FIELDS)
        if not dropping and line:
            kept.append(line)
    kept += [
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
    ]
    return b"\r\n".join(kept) + b"\r\n\r\n" + note.encode() + b"\r\n"


class FolderFetcher:
    """Stores what is new in the selected folder; `on_advance` records each move of the cursor."""

    def __init__(
        self,
        config: ImapMailboxConfig,
        store: RawStore,
        cursor: Cursor,
        stop: threading.Event,
        on_advance: Callable[[Counts], None],
    ) -> None:
        self.config = config
        self._store = store
        self.cursor = cursor
        self._stop = stop
        self._on_advance = on_advance
        self.notices = MailNotices()  # what the server announced with its answers (one connection)

    def drain(self, client: Any, uidnext: int | None) -> FetchReport:
        """Search and fetch until a search finds nothing new (or `stop`)."""
        total = Counts()
        while not self._stop.is_set():
            counts = self._fetch_pass(client, uidnext)
            uidnext = None  # only true of the first search after SELECT
            total.add(counts)
            # A search finds nothing that arrived after the command before it; such mail is
            # announced with the search's own answer, and is searched for again at once.
            if not counts.found and not self.notices.take(client):
                break
        report = FetchReport(
            mailbox=self.config.name,
            uidvalidity=self.cursor.uidvalidity,
            stored=total.stored,
            duplicates=total.duplicates,
            backfilled=total.backfilled,
            skipped=total.skipped,
            too_large=total.too_large,
            first_uid=min(total.uids) if total.uids else None,
            last_uid=max(total.uids) if total.uids else None,
        )
        if report.first_uid is not None:
            extra = f", {report.duplicates} already stored" if report.duplicates else ""
            extra += f", {report.backfilled} as history (backfill)" if report.backfilled else ""
            log.info(
                "IMAP %s FETCHED %d new (uid %d-%d)%s",
                self.config.name,
                report.stored,
                report.first_uid,
                report.last_uid,
                extra,
            )
        return report

    def _fetch_pass(self, client: Any, uidnext: int | None) -> Counts:
        cursor = self.cursor
        cutoff = cursor.cutoff(self.config)
        criteria: list[Any] = ["UID", f"{cursor.last_uid + 1}:*", "SINCE", (cutoff - SEARCH_SLACK).date()]
        self.notices.take(client)  # what was announced so far, this search covers
        # "n:*" always includes the highest UID, even when it is below n (RFC 3501 section 6.4.8).
        uids = sorted(uid for uid in client.search(criteria) if uid > cursor.last_uid)
        counts = Counts(found=len(uids))
        for chunk in batched(uids, self.config.batch_size):
            if self._stop.is_set():
                return counts
            counts.add(self._fetch_chunk(client, chunk, cutoff))
        if uidnext is not None and uidnext - 1 > cursor.last_uid and not self._stop.is_set():
            # Every UID below UIDNEXT existed at SELECT and was either found above or is older than
            # the cut-off: never search for those again.
            self._advance(uidnext - 1, Counts())
        return counts

    def _fetch_chunk(self, client: Any, chunk: Sequence[int], cutoff: datetime) -> Counts:
        """Store one batch of UIDs, flag or move what was stored, then move the cursor past them."""
        done = Counts()
        skipped = 0
        meta = client.fetch(chunk, ["INTERNALDATE", "RFC822.SIZE"])
        wanted: list[Mail] = []
        too_large: list[Mail] = []
        cap = self.config.max_message_size
        for uid in chunk:
            item = meta.get(uid)
            if item is None:
                continue  # expunged since the search
            internal_date = item.get(b"INTERNALDATE") or cutoff
            if internal_date < cutoff:
                skipped += 1
                continue
            announced = item.get(b"RFC822.SIZE")
            # A server that does not say how big a mail is gets the benefit of the doubt, alone.
            size = int(announced) if announced is not None else cap
            (too_large if size > cap else wanted).append((uid, size, internal_date))
        # Recorded before the others are stored: a crash in between records them again, a no-op.
        refused = self._record_too_large(client, too_large) if too_large else 0
        groups = list(by_bytes(wanted, self.config.batch_bytes))
        if not groups:
            done.skipped, done.too_large = skipped, refused
            self._advance(chunk[-1], done)
            return done
        for index, group in enumerate(groups):
            first = index == 0
            part = Counts(skipped=skipped if first else 0, too_large=refused if first else 0)
            # The first UID not handled once this group is through (None: the chunk is done).
            stop_at = groups[index + 1][0][0] if index + 1 < len(groups) else None
            failure: StoreError | None = None
            try:
                stop_at = self._store_group(client, group, part) or stop_at
            except _GroupFailed as exc:
                failure, stop_at = exc.error, exc.uid
            # Flag first, then move the cursor: a crash in between re-fetches, never skips.
            mark_processed(client, self.config, part.uids)
            limit = stop_at if stop_at is not None else chunk[-1] + 1
            self._advance(max((uid for uid in chunk if uid < limit), default=self.cursor.last_uid), part)
            done.add(part)
            if failure is not None:
                raise failure
            if self._stop.is_set():
                break
        return done

    def _store_group(self, client: Any, group: Sequence[Mail], part: Counts) -> int | None:
        """Fetch a group and store it in one transaction; returns the UID it stopped at on `stop`.

        One commit (one disk flush) for the group, not one per mail: the group is flagged only
        after that commit, so a crash in between re-fetches it, and the raw queue's keys make
        that a no-op. When the commit fails, nothing of the group is stored or flagged.
        """
        config, cursor = self.config, self.cursor
        assert cursor.uidvalidity is not None
        expect(client, body_budget(config, [size for _, size, _ in group]))
        bodies = client.fetch([uid for uid, _, _ in group], ["BODY.PEEK[]"])
        if self._stop.is_set():
            return group[0][0]
        uids: list[tuple[int, bool]] = []
        mails: list[Incoming] = []
        for uid, _, internal_date in group:
            body = bodies.get(uid, {}).get(b"BODY[]")
            if body is None:
                continue  # expunged since the search
            backfill = internal_date < cursor.added_at
            uids.append((uid, backfill))
            key = config.source_key(cursor.uidvalidity, uid)
            mails.append(Incoming(body, config.source, key, backfill=backfill))
        if not mails:
            return None
        try:
            results = list(self._store.store_many(mails, commit_every=len(mails)))
        except StoreError as exc:
            raise _GroupFailed(exc, group[0][0]) from exc
        for (uid, backfill), result in zip(uids, results, strict=True):
            part.uids.append(uid)
            if result.duplicate:
                part.duplicates += 1
            else:
                part.stored += 1
                part.backfilled += int(backfill)
        return None

    def _record_too_large(self, client: Any, mails: Sequence[Mail]) -> int:
        """Quarantine what can be kept of mails over `max_message_size`; the mails stay on the server."""
        config, cursor = self.config, self.cursor
        assert cursor.uidvalidity is not None
        uids = [uid for uid, _, _ in mails]
        expect(
            client,
            ResponseBudget(
                max_bytes=config.max_response_bytes + len(uids) * (HEADER_PEEK + SIZE_SLACK),
                max_lines=config.max_response_lines + 3 * len(uids),
                max_literal=HEADER_PEEK,
                timeout=config.command_timeout,
            ),
        )
        heads = client.fetch(uids, [f"BODY.PEEK[HEADER]<0.{HEADER_PEEK}>"])
        refused: list[Incoming] = []
        for uid, size, _ in mails:
            item = heads.get(uid, {})
            header = next((value for key, value in item.items() if key.startswith(b"BODY[HEADER]")), b"")
            why = (
                f"too large: {size} bytes, over max_message_size {config.max_message_size} "
                f"({config.source} uid {uid}); left on the server, not fetched"
            )
            refused.append(
                Incoming(
                    refused_mail(header if isinstance(header, bytes) else b"", why),
                    config.source,
                    config.source_key(cursor.uidvalidity, uid),
                    refused=why,
                    size=size,
                )
            )
        results = list(self._store.store_many(refused, commit_every=len(refused)))
        for (uid, size, _), result in zip(mails, results, strict=True):
            log.warning(
                "IMAP %s REFUSED uid %d: %d bytes over max_message_size %d; left on the server%s",
                config.name,
                uid,
                size,
                config.max_message_size,
                "" if result.duplicate else f", quarantined as raw={result.raw_id}",
            )
        return sum(not result.duplicate for result in results)

    def _advance(self, last_uid: int, part: Counts) -> None:
        self.cursor.last_uid = max(self.cursor.last_uid, last_uid)
        self._on_advance(part)


class _GroupFailed(Exception):
    """The raw queue could not store the group that starts at `uid`; nothing of it is flagged."""

    def __init__(self, error: StoreError, uid: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.uid = uid
