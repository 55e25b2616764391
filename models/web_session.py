"""Sign-in to the dashboard: each one-time link's use, which is also the session it opened.

A link is signed and carries a random nonce; its first use inserts the row keyed by that nonce,
so a second use (the same link clicked twice, or replayed from a mail archive) finds the row and
is refused, in every process sharing the database. The session cookie names the same nonce:
signing out stamps `ended_at`, and a cookie whose row is ended opens nothing.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow


class WebSession(Base):
    __tablename__ = "web_sessions"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)  # the link's, never reused
    email: Mapped[str] = mapped_column(String(320))  # lower-cased; whom the link was made for
    used_at: Mapped[datetime] = mapped_column(default=utcnow)  # when the link was used
    ended_at: Mapped[datetime | None]  # signed out

    __table_args__ = (Index("ix_web_sessions_used_at", "used_at"),)
