"""The IMAP poller's record of each mailbox (`mailbox_states`), and the snapshot `helpdesk status` reads.

Each write is its own short transaction: the poller's cursor moves only after the mails below it
were stored and flagged on the server, and a failed write costs a re-fetch (a no-op thanks to
the raw queue's dedupe), never a lost mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from models.base import utcnow
from models.mailbox_state import MailboxConnState, MailboxState

log = logging.getLogger("helpdesk.intake.imap")


@dataclass(frozen=True)
class MailboxStatus:
    """One mailbox as the poller last recorded it."""

    name: str
    server: str
    user: str
    folder: str
    state: MailboxConnState
    state_since: datetime
    uidvalidity: int | None
    last_uid: int
    added_at: datetime
    holder: str | None
    idle_supported: bool | None
    last_error: str | None
    last_error_at: datetime | None
    failures: int
    next_attempt_at: datetime | None
    last_connected_at: datetime | None
    last_success_at: datetime | None
    stored_count: int
    duplicate_count: int
    backfill_count: int
    skipped_count: int

    @classmethod
    def from_row(cls, row: MailboxState) -> MailboxStatus:
        return cls(**{f.name: getattr(row, f.name) for f in fields(cls)})


def mailbox_statuses(sessions: sessionmaker[Session]) -> list[MailboxStatus]:
    """Every mailbox the pollers have recorded, by name (for `helpdesk status`)."""
    with sessions() as session:
        rows = session.scalars(select(MailboxState).order_by(MailboxState.name)).all()
        return [MailboxStatus.from_row(row) for row in rows]


class MailboxStateStore:
    """Reads and writes the `mailbox_states` row of one mailbox."""

    def __init__(
        self, sessions: sessionmaker[Session], name: str, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._sessions = sessions
        self.name = name
        self._clock = clock

    def load(self, *, server: str, user: str, folder: str, holder: str | None) -> MailboxStatus:
        """The mailbox's row, created on first sight; `added_at` is then set to now, in whole seconds.

        Whole seconds because INTERNALDATE has no fraction (RFC 3501 date-time): a mail that
        arrives within the second the mailbox was added counts as new, not as history.
        """
        now = self._clock()
        for _ in range(2):
            with self._sessions() as session:
                row = session.scalar(select(MailboxState).where(MailboxState.name == self.name))
                if row is None:
                    row = MailboxState(
                        name=self.name,
                        added_at=now.replace(microsecond=0),
                        state=MailboxConnState.NEW,
                        state_since=now,
                        last_uid=0,
                        failures=0,
                        stored_count=0,
                        duplicate_count=0,
                        backfill_count=0,
                        skipped_count=0,
                    )
                    session.add(row)
                row.server, row.user, row.folder, row.holder = server, user, folder, holder
                row.updated_at = now
                try:
                    session.commit()
                except IntegrityError:  # another process created it a moment ago: read theirs
                    session.rollback()
                    continue
                return MailboxStatus.from_row(row)
        raise RuntimeError(f"cannot create the state of mailbox {self.name!r}")

    def update(self, **values: object) -> None:
        """Set columns of the row (names as in `MailboxState`)."""
        values.setdefault("updated_at", self._clock())
        with self._sessions() as session:
            session.execute(update(MailboxState).where(MailboxState.name == self.name).values(**values))
            session.commit()

    def advance(
        self,
        *,
        last_uid: int,
        stored: int = 0,
        duplicates: int = 0,
        backfilled: int = 0,
        skipped: int = 0,
        **values: object,
    ) -> None:
        """Move the cursor and add to the counters, in one write."""
        self.update(
            last_uid=last_uid,
            stored_count=MailboxState.stored_count + stored,
            duplicate_count=MailboxState.duplicate_count + duplicates,
            backfill_count=MailboxState.backfill_count + backfilled,
            skipped_count=MailboxState.skipped_count + skipped,
            **values,
        )


class StateRecorder:
    """A poller's writes to its row: state changes only when the state changes, and a database that
    is down is logged once and never raised (a lost write costs a re-fetch, not a mail)."""

    def __init__(self, store: MailboxStateStore, clock: Callable[[], datetime] = utcnow) -> None:
        self._store = store
        self._clock = clock
        self.recorded: MailboxConnState | None = None  # what the row says, as far as we know
        self._problem: str | None = None

    def record(self, state: MailboxConnState | None, **values: object) -> None:
        """Set `state` (with `state_since`, when it changes) and other columns."""
        if state is not None and state is not self.recorded:
            values.update(state=state, state_since=self._clock())
        if values:
            self._write(lambda: self._store.update(**values), state)

    def advance(self, last_uid: int, stored: int, duplicates: int, backfilled: int, skipped: int) -> None:
        """Move the cursor and add to the counters; new mail means the state is `fetching`."""
        values: dict[str, object] = {}
        state = MailboxConnState.FETCHING if stored or duplicates else None
        if state is not None and state is not self.recorded:
            values.update(state=state, state_since=self._clock())
        self._write(
            lambda: self._store.advance(
                last_uid=last_uid,
                stored=stored,
                duplicates=duplicates,
                backfilled=backfilled,
                skipped=skipped,
                **values,
            ),
            state,
        )

    def _write(self, action: Callable[[], None], state: MailboxConnState | None) -> None:
        try:
            action()
        except SQLAlchemyError as exc:
            text = str(exc).splitlines()[0]
            if text != self._problem:
                log.warning("IMAP %s cannot record its state: %s", self._store.name, text)
            self._problem = text
            self.recorded = None  # unknown now: the next state change is written for sure
            return
        if self._problem is not None:
            log.info("IMAP %s records its state again", self._store.name)
        self._problem = None
        if state is not None:
            self.recorded = state
