"""Per-mailbox state of the IMAP poller: where it is in the mailbox, and how its connection fares.

The cursor (`uidvalidity`, `last_uid`) says which mails were already stored and flagged: the
poller fetches UIDs above `last_uid` while the folder keeps the same UIDVALIDITY (RFC 3501
section 2.3.1.1) and starts again from UID 1 when it changes. `added_at` is the moment the
mailbox was first seen, the default cut-off for old mail and the line between backfilled history
and new mail. The rest is what `helpdesk status` shows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Enum, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID, utcnow
from models.kinds import MailboxConnState as MailboxConnState


class MailboxState(Base):
    __tablename__ = "mailbox_states"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    # The `name` of the [[imap]] section; raw messages from it have source "imap:<name>".
    name: Mapped[str] = mapped_column(String(100), unique=True)
    server: Mapped[str] = mapped_column(String(300), default="")  # host:port
    user: Mapped[str] = mapped_column(String(320), default="")
    folder: Mapped[str] = mapped_column(String(300), default="INBOX")
    # UIDVALIDITY is an unsigned 32-bit number: too big for a signed 32-bit column.
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)

    state: Mapped[MailboxConnState] = mapped_column(
        Enum(MailboxConnState, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=MailboxConnState.NEW,
    )
    state_since: Mapped[datetime] = mapped_column(default=utcnow)
    holder: Mapped[str | None] = mapped_column(String(200))  # host:pid of the process polling it
    idle_supported: Mapped[bool | None] = mapped_column(Boolean)
    last_error: Mapped[str | None] = mapped_column(Text)  # the server's or the socket's own words
    last_error_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)  # consecutive failed attempts
    next_attempt_at: Mapped[datetime | None]
    last_connected_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]  # the last complete check of the folder

    stored_count: Mapped[int] = mapped_column(Integer, default=0)  # new rows in the raw queue
    duplicate_count: Mapped[int] = mapped_column(Integer, default=0)  # re-fetched, already stored
    backfill_count: Mapped[int] = mapped_column(Integer, default=0)  # stored as history (no acks)
    # Examined and older than the cut-off (mail more than a day older is not even examined).
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
