"""The durable raw inbound queue: every accepted mail, byte for byte, before anything parses it.

A row is written and committed before the SMTP listener answers 250, before an IMAP message is
flagged, before `helpdesk ingest` exits 0. The worker then moves it from `received` to
`processed` (or `failed`, the quarantine) in the same transaction as the ticket change it causes.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID, utcnow
from models.kinds import RawStatus as RawStatus


class RawOutcome(enum.StrEnum):
    TICKET = "ticket"  # opened a new ticket
    REPLY = "reply"  # appended to an existing ticket
    STRANGER = "stranger"  # kept as a note on a ticket its sender is not on
    AUTOMATIC = "automatic"  # auto-reply, bulk, bounce, our own mail or a loop: recorded, not answered
    BOUNCE = "bounce"  # a delivery status notification attached to its ticket
    DUPLICATE = "duplicate"  # the same Message-ID was already processed


class RawMessage(Base):
    __tablename__ = "raw_messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Where it came from: "smtp", "ingest", "imap:<mailbox name>".
    source: Mapped[str] = mapped_column(String(100))
    # Per-source identity, e.g. "imap:support:<uidvalidity>:<uid>": a re-fetch is a no-op.
    source_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    # sha256 of the Message-ID (RFC 5322), or of the content when there is none: a re-delivery is a no-op.
    dedupe_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str | None] = mapped_column(Text)
    envelope_from: Mapped[str | None] = mapped_column(String(998))
    envelope_to: Mapped[list[str]] = mapped_column(default=list)
    size: Mapped[int] = mapped_column(Integer)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    # Mail imported from a mailbox's history: becomes a ticket, never gets an acknowledgment.
    backfill: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who the sender is proven to be (models.sender_auth.SenderAuth): result, domain, method, by.
    sender_auth: Mapped[dict[str, Any] | None]

    status: Mapped[RawStatus] = mapped_column(
        Enum(RawStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=RawStatus.RECEIVED,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_until: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(20))
    detail: Mapped[str | None] = mapped_column(Text)  # e.g. why a mail counted as automatic
    error: Mapped[str | None] = mapped_column(Text)  # why it is quarantined
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    processed_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_raw_messages_status_id", "status", "id"),)
