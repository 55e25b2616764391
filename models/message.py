"""Every mail on a ticket, in and out, its attachments, and the Message-IDs it referenced.

`messages.message_id` is unique: it is how a reply finds its ticket (In-Reply-To/References,
RFC 5322 section 3.6.4). `message_refs` keeps every id a stored mail referenced, so a mail that
arrives after a reply to it still joins that reply's ticket.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, BigID, utcnow

if TYPE_CHECKING:
    from models.ticket import Ticket


class MessageKind(enum.StrEnum):
    REQUESTER = "requester"  # from the requester or a participant
    TECHNICIAN = "technician"  # a technician's reply relayed to the requester
    NOTE = "note"  # internal note
    AUTOMATIC = "automatic"  # auto-reply or bulk mail that joined a ticket
    BOUNCE = "bounce"  # a delivery status notification
    ACK = "ack"  # our acknowledgment
    NOTIFICATION = "notification"  # our status mail
    STRANGER = "stranger"  # from someone not on the ticket: an internal note for staff


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # in | out
    kind: Mapped[str] = mapped_column(String(20))
    message_id: Mapped[str] = mapped_column(String(998), unique=True)  # without angle brackets
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    references: Mapped[list[str]] = mapped_column(default=list)
    from_addr: Mapped[str] = mapped_column(String(320))
    from_name: Mapped[str] = mapped_column(String(300), default="")
    to_addrs: Mapped[list[str]] = mapped_column(default=list)
    cc_addrs: Mapped[list[str]] = mapped_column(default=list)
    subject: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")  # the whole text body (HTML converted)
    new_text: Mapped[str] = mapped_column(Text, default="")  # without quoted history and signature
    internal: Mapped[bool] = mapped_column(Boolean, default=False)
    language: Mapped[str | None] = mapped_column(String(10))
    sent_at: Mapped[datetime | None]  # the Date header
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    raw_id: Mapped[int | None] = mapped_column(ForeignKey("raw_messages.id", ondelete="SET NULL"))
    outbox_id: Mapped[int | None] = mapped_column(Integer)

    ticket: Mapped[Ticket] = relationship(back_populates="messages")
    attachments: Mapped[list[Attachment]] = relationship(back_populates="message", order_by="Attachment.id")


class MessageRef(Base):
    """A Message-ID that an inbound mail referenced (In-Reply-To or References)."""

    __tablename__ = "message_refs"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    ref: Mapped[str] = mapped_column(String(998))

    __table_args__ = (Index("ix_message_refs_ref", "ref"),)


class Attachment(Base):
    """An attachment as received. Over a cap it is kept as a record (name, size, why) without content."""

    __tablename__ = "attachments"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(255))  # sanitised
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes | None] = mapped_column(LargeBinary)
    omitted: Mapped[str | None] = mapped_column(Text)  # why the content was not kept

    message: Mapped[Message] = relationship(back_populates="attachments")
