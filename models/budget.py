"""Hourly budgets on outgoing mail, and the staff notices a budget held back for a digest.

Every process sharing the database counts against the same rows, so a budget holds however
many workers run. A budget is a set of counters per scope ("auto", "auto-domain:example.com",
"staff:alice@example.test", ...) in five-minute windows; the last hour is the sum of the last
twelve windows.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID, utcnow


class MailBudget(Base):
    """How many mails one scope sent, and how many it stopped, in one window."""

    __tablename__ = "mail_budget"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    scope: Mapped[str] = mapped_column(String(400))
    window_start: Mapped[datetime]
    sent: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)

    __table_args__ = (
        UniqueConstraint("scope", "window_start", name="uq_mail_budget_scope_window"),
        Index("ix_mail_budget_window_start", "window_start"),
    )


class HeldNotice(Base):
    """A notice to a technician or coordinator that their hourly budget held back for a digest."""

    __tablename__ = "held_notices"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    recipient: Mapped[str] = mapped_column(String(320))  # lower-cased
    recipient_name: Mapped[str] = mapped_column(String(300), default="")
    language: Mapped[str] = mapped_column(String(10), default="en")
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))  # assignment, sla_warning, coordinator, ...
    summary: Mapped[str] = mapped_column(Text, default="")  # one line: what the notice said
    reply_to: Mapped[str] = mapped_column(String(320))  # the signed address that works for this ticket
    digest_outbox_id: Mapped[int | None] = mapped_column(Integer)  # the digest that carried it
    digested_at: Mapped[datetime | None]

    # Migration 0005 also makes ix_held_notices_pending, a partial index of the notices still
    # waiting for a digest (not declared here: see the note on Ticket's indexes).
    __table_args__ = (Index("ix_held_notices_recipient_digested", "recipient", "digested_at"),)
