"""Technicians and coordinators: who works tickets, with skills, languages, tier and shifts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID, utcnow


class TechnicianRow(Base):
    """One technician as imported with `helpdesk technicians import` (re-import updates, never duplicates)."""

    __tablename__ = "technicians"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)  # named in their reply tokens
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    name: Mapped[str] = mapped_column(String(300))
    tier: Mapped[int] = mapped_column(Integer, default=1)
    languages: Mapped[list[str]] = mapped_column(default=list)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    max_open: Mapped[int] = mapped_column(Integer, default=10)
    shifts: Mapped[list[str]] = mapped_column(default=list)
    skills: Mapped[dict[str, Any]] = mapped_column(default=dict)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_assigned_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CoordinatorRow(Base):
    """A coordinator: told about what nobody can take, SLA trouble and escalations."""

    __tablename__ = "coordinators"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(300))
    language: Mapped[str] = mapped_column(String(10), default="en")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
