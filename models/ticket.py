"""Tickets, the people on them, and the event log of every change with who and why."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Enum, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigID, utcnow
from models.kinds import ACTIVE_STATUSES as ACTIVE_STATUSES
from models.kinds import DONE_STATUSES as DONE_STATUSES
from models.kinds import OPEN_STATUSES as OPEN_STATUSES
from models.kinds import PAUSED_STATUSES as PAUSED_STATUSES
from models.kinds import Priority as Priority
from models.kinds import TicketStatus as TicketStatus

if TYPE_CHECKING:
    from models.message import Message


def _enum(cls: type[enum.StrEnum]) -> Enum:
    return Enum(cls, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e])


# The tag of a ticket an upstream filter marked as spam: it waits for the coordinator, no mail.
SPAM_TAG = "spam"


class EventKind(enum.StrEnum):
    """What a `TicketEvent` records (the `kind` column keeps the value)."""

    CREATED = "created"
    ROUTED = "routed"
    STATUS = "status"
    PRIORITY = "priority"
    CATEGORY = "category"
    REPLY = "reply"  # a requester's or participant's mail on the ticket
    REOPENED = "reopened"
    REPLIED = "replied"  # a technician's answer relayed to the requester
    NOTE = "note"
    PARTICIPANT_ADDED = "participant_added"
    AUTOMATIC_MAIL = "automatic_mail"
    STRANGER_MAIL = "stranger_mail"
    OMITTED = "omitted"  # the per-mail caps left parts of a mail out
    ASSIGNED = "assigned"
    UNASSIGNED = "unassigned"
    ASSIGNMENT_NOTE = "assignment_note"
    ASSIGNMENT_SKIPPED = "assignment_skipped"
    ESCALATED = "escalated"
    SLA = "sla"
    ACK_SKIPPED = "ack_skipped"
    REPLY_TO_IGNORED = "reply_to_ignored"
    MAIL_SUPPRESSED = "mail_suppressed"
    NOTICE_HELD = "notice_held"
    REFUSED = "refused"
    COMMANDS_REFUSED = "commands_refused"
    DELIVERY_FAILED = "delivery_failed"
    DELIVERY_REPORT = "delivery_report"
    LIFECYCLE = "lifecycle"  # a reminder, auto-resolution or auto-close by the lifecycle timer
    SATISFACTION = "satisfaction"  # the requester rated the resolved ticket
    SELF_SERVICE = "self_service"  # the requester said an article (or they themselves) solved it
    KB_SUGGESTED = "kb_suggested"  # articles offered in the acknowledgment
    KB_PUBLISHED = "kb_published"  # the resolution became (a version of) an article


class Ticket(Base):
    __tablename__ = "tickets"

    # The human ticket number, shown as [#N] in subjects.
    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[TicketStatus] = mapped_column(_enum(TicketStatus), default=TicketStatus.NEW)
    category: Mapped[str] = mapped_column(String(100), default="triage")
    priority: Mapped[Priority] = mapped_column(_enum(Priority), default=Priority.NORMAL)
    requester: Mapped[str] = mapped_column(String(320))  # lower-cased address
    requester_name: Mapped[str] = mapped_column(String(300), default="")
    assignee: Mapped[str | None] = mapped_column(String(320))  # technician address
    assigned_at: Mapped[datetime | None]
    language: Mapped[str] = mapped_column(String(10), default="en")
    tags: Mapped[list[str]] = mapped_column(default=list)
    # Why the category and priority are what they are: rule name or model version, confidence, terms.
    routing: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    first_response_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(Text)  # the note a technician resolved it with
    # SLA steps already taken (warnings sent, breaches escalated), so the timer never repeats one.
    sla_done: Mapped[list[str]] = mapped_column(default=list)
    # Tickets opened from a reply to a closed ticket point back at it.
    follow_up_of: Mapped[int | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))

    messages: Mapped[list[Message]] = relationship(
        back_populates="ticket", order_by="Message.id", viewonly=True
    )
    events: Mapped[list[TicketEvent]] = relationship(
        back_populates="ticket", order_by="TicketEvent.id", viewonly=True
    )
    participants: Mapped[list[Participant]] = relationship(
        back_populates="ticket", order_by="Participant.id", viewonly=True
    )

    __table_args__ = (
        Index("ix_tickets_status", "status"),
        Index("ix_tickets_requester", "requester"),
        Index("ix_tickets_assignee_status", "assignee", "status"),
        Index("ix_tickets_created_at", "created_at"),
        # Migration 0005 also makes ix_tickets_resolved_at_resolved, a partial index for the
        # similar-ticket search. It is not declared here: an index's `postgresql_where` loads the
        # PostgreSQL dialect into every command, a tenth of what `helpdesk status` takes.
    )


class Participant(Base):
    """An address on a ticket: its requester, people in Cc, technicians who worked it."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # lower-cased
    name: Mapped[str] = mapped_column(String(300), default="")
    role: Mapped[str] = mapped_column(String(20))  # requester | cc | technician
    # A participant who only appears in Cc does not get status mail unless they wrote to us.
    notify: Mapped[bool] = mapped_column(Boolean, default=True)

    ticket: Mapped[Ticket] = relationship(back_populates="participants")

    __table_args__ = (UniqueConstraint("ticket_id", "address", name="uq_participants_ticket_address"),)


class TicketEvent(Base):
    """One change to a ticket: who did it, what changed, and why."""

    __tablename__ = "ticket_events"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(320))  # an address, "system", "rule:<name>", "model:<version>"
    kind: Mapped[str] = mapped_column(String(40))  # an EventKind
    old: Mapped[str | None] = mapped_column(Text)
    new: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    message_id: Mapped[int | None] = mapped_column(Integer)  # the messages.id that caused it, if any

    ticket: Mapped[Ticket] = relationship(back_populates="events")
