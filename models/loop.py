"""What closes the loop on a ticket: knowledge-base articles and their versions, the requester's
rating of a resolved ticket, and the lifecycle steps (reminders, auto-resolution, auto-close) taken.

An article is published from a resolved ticket's resolution (the technician's words, scrubbed of
the requester's personal data) and keeps every version; only published articles are suggested to
requesters or exported. A ticket has at most one rating (a later one replaces it). A lifecycle
step is unique per ticket, step and the moment its clock started, so it is taken once however many
timers race for it.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID, utcnow


class ArticleStatus(enum.StrEnum):
    PUBLISHED = "published"
    UNPUBLISHED = "unpublished"


class Article(Base):
    """A knowledge-base article: the current version's title and text, and where it came from."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(100))
    status: Mapped[ArticleStatus] = mapped_column(
        Enum(ArticleStatus, native_enum=False, length=20, values_callable=lambda e: [m.value for m in e]),
        default=ArticleStatus.PUBLISHED,
    )
    source_tickets: Mapped[list[Any]] = mapped_column(default=list)  # the tickets it was published from
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(320))


class ArticleVersion(Base):
    """One version of an article as it was written: who, when, and why."""

    __tablename__ = "kb_article_versions"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    article_id: Mapped[int] = mapped_column(ForeignKey("kb_articles.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    category: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by: Mapped[str] = mapped_column(String(320))
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (UniqueConstraint("article_id", "version", name="uq_kb_article_versions_version"),)


class Satisfaction(Base):
    """The requester's rating of a resolved ticket (1-5), their comment, and whose work it rates."""

    __tablename__ = "satisfaction"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), unique=True)
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)
    technician: Mapped[str | None] = mapped_column(String(320))  # the assignee when it was rated
    category: Mapped[str] = mapped_column(String(100))
    message_id: Mapped[int | None] = mapped_column(Integer)  # the messages.id of the rating reply


class LifecycleStep(Base):
    """A reminder, auto-resolution or auto-close taken on a ticket, once per clock start."""

    __tablename__ = "lifecycle_steps"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    step: Mapped[str] = mapped_column(String(30))
    since: Mapped[datetime]  # when the ticket entered the status whose clock this step belongs to
    at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("ticket_id", "step", "since", name="uq_lifecycle_steps_once"),)
