"""Who may sign in to the dashboard, each one-time link used once, and the sessions it opened.

The dashboard (helpdesk/web) signs links and cookies; what must hold across every process that
shares the database lives here: a link's nonce is inserted when it is first used, so a second
use fails on the primary key wherever it is tried, and signing out stamps the row so the cookie
that names it opens nothing more. Who someone is (coordinator or technician) is read from the
roster at every request: a coordinator or technician made inactive loses the dashboard at once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.people import CoordinatorRow, TechnicianRow
from models.web_session import WebSession


class Role(enum.StrEnum):
    COORDINATOR = "coordinator"  # sees every ticket
    TECHNICIAN = "technician"  # sees their own tickets and the unassigned ones


@dataclass(frozen=True)
class Viewer:
    """Someone signed in to the dashboard."""

    email: str
    name: str
    role: Role
    language: str = "en"  # what the sign-in mail is written in: theirs (a technician's first)

    @property
    def is_coordinator(self) -> bool:
        return self.role is Role.COORDINATOR


def viewer(session: Session, email: str) -> Viewer | None:
    """The active coordinator or technician with this address (a coordinator first), else None."""
    address = email.strip().lower()
    coordinator = session.execute(
        select(CoordinatorRow.name, CoordinatorRow.language).where(
            CoordinatorRow.email == address, CoordinatorRow.active.is_(True)
        )
    ).first()
    if coordinator is not None:
        return Viewer(address, coordinator.name, Role.COORDINATOR, coordinator.language or "en")
    technician = session.execute(
        select(TechnicianRow.name, TechnicianRow.languages).where(
            TechnicianRow.email == address, TechnicianRow.active.is_(True)
        )
    ).first()
    if technician is not None:
        languages = list(technician.languages or [])
        return Viewer(address, technician.name, Role.TECHNICIAN, languages[0] if languages else "en")
    return None


def use_link(session: Session, nonce: str, email: str, *, now: datetime) -> bool:
    """Record the first use of the link with `nonce`; False when it was used before (anywhere)."""
    try:
        with session.begin_nested():
            session.add(WebSession(nonce=nonce, email=email.strip().lower(), used_at=now))
    except IntegrityError:
        return False
    return True


def session_is_open(session: Session, nonce: str, email: str, *, since: datetime) -> bool:
    """Whether the session opened with `nonce` is still open: for `email`, not ended, used after `since`."""
    row = session.get(WebSession, nonce)
    return (
        row is not None
        and row.email == email.strip().lower()
        and row.ended_at is None
        and row.used_at >= since
    )


def end_session(session: Session, nonce: str, *, now: datetime) -> None:
    row = session.get(WebSession, nonce)
    if row is not None and row.ended_at is None:
        row.ended_at = now


def forget_sessions(session: Session, *, before: datetime) -> int:
    """Delete link uses older than any link or session could be (kept longer would only grow)."""
    result = session.execute(delete(WebSession).where(WebSession.used_at < before))
    return int(getattr(result, "rowcount", 0) or 0)
