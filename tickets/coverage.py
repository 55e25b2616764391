"""The coverage page's reading: the active roster, the categories and languages the desk sees, and
the next week's on-duty grid computed by routing.coverage."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.people import TechnicianRow
from models.ticket import OPEN_STATUSES, Ticket
from routing.coverage import HOURS, Coverage, coverage
from tickets.roster import technician_of


def week_coverage(
    session: Session, *, now: datetime, categories: Collection[str], hours: int = HOURS
) -> Coverage:
    """The next `hours` from the current hour; the languages of open tickets count even if nobody speaks them."""
    technicians = [technician_of(row) for row in session.scalars(select(TechnicianRow))]
    asked = session.scalars(select(Ticket.language).where(Ticket.status.in_(list(OPEN_STATUSES))).distinct())
    languages = [lang for lang in asked if lang and lang != "und"]
    return coverage(
        technicians,
        now,
        hours=hours,
        languages=languages,
        categories=[c for c in categories if c != "triage"],
    )
