"""The transactional outbox: outgoing mail written in the same transaction as the change that caused it.

The sender delivers due rows and records each attempt; 4xx replies and connection errors are
retried with backoff until `deadline`, 5xx replies mark the row failed (RFC 5321 section 4.2.1).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID, utcnow
from models.kinds import OutboxStatus as OutboxStatus


class OutboxKind(enum.StrEnum):
    """Why a mail was written (the `kind` column keeps the value; outgoing `messages.kind` too)."""

    ACK = "ack"  # the acknowledgment of a new ticket
    RELAY = "relay"  # a technician's answer in the requester's thread
    ASSIGNED = "assigned"  # the requester hears who has their ticket
    WAITING = "waiting"
    RESOLVED = "resolved"
    REOPENED = "reopened"
    REFUSAL = "refusal"  # a staff mail that changed nothing, and why
    COMMAND_ERROR = "command_error"
    ASSIGNMENT = "assignment"  # the technician's assignment notice
    REQUESTER_REPLIED = "requester_replied"
    STRANGER_NOTICE = "stranger_notice"
    SLA_WARNING = "sla_warning"
    COORDINATOR = "coordinator"  # unassignable, escalated, SLA warning or breach
    DELIVERY_FAILED = "delivery_failed"
    DIGEST = "digest"  # held staff notices, folded into one mail
    REMINDER = "reminder"  # the requester is reminded that we wait for their answer
    AUTO_RESOLVED = "auto_resolved"  # no answer after the reminder: resolved, and they are told
    SELF_SERVICE = "self_service"  # the technician hears that the requester solved it themselves
    LOW_RATING = "low_rating"  # the coordinators hear of a low rating with a comment
    SIGN_IN = "sign_in"  # a one-time link to the dashboard, asked for on its sign-in page
    WEEKLY_REPORT = "weekly_report"  # the coordinators' weekly report


class OutboxMessage(Base):
    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ticket_id: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(30))  # an OutboxKind
    # Automatic mail (RFC 3834) counts against the per-address hourly limit.
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    recipient: Mapped[str] = mapped_column(String(320))  # the main recipient, lower-cased
    envelope_from: Mapped[str] = mapped_column(String(320))
    envelope_to: Mapped[list[str]] = mapped_column(default=list)
    message_id: Mapped[str] = mapped_column(String(998))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[OutboxStatus] = mapped_column(
        Enum(OutboxStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=OutboxStatus.PENDING,
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    deadline: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(200))  # host:pid of the sender holding it
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_recipient_created", "recipient", "created_at"),
        Index("ix_outbox_message_id", "message_id"),
    )
