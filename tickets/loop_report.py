"""The loop's part of `helpdesk report`: how satisfied requesters were, and what closed itself.

Ratings given in the period, on average and per technician, category and ISO week; tickets
requesters solved themselves with an article; articles offered and published; reminders,
auto-resolutions and auto-closes of the lifecycle timer.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.loop import Satisfaction
from models.ticket import EventKind, TicketEvent
from tickets.feedback import LOW_RATING
from tickets.lifecycle import AUTO_CLOSED, AUTO_RESOLVED, REMINDER


def _ratings(values: Iterable[int]) -> dict[str, Any]:
    ratings = list(values)
    return {
        "count": len(ratings),
        "average": round(sum(ratings) / len(ratings), 2) if ratings else None,
        "low": sum(1 for r in ratings if r <= LOW_RATING),
    }


def week_of(at: datetime) -> str:
    year, week, _ = at.isocalendar()
    return f"{year}-W{week:02d}"


def satisfaction_report(session: Session, since: datetime) -> dict[str, Any]:
    rows = session.execute(
        select(Satisfaction.rating, Satisfaction.technician, Satisfaction.category, Satisfaction.at).where(
            Satisfaction.at >= since
        )
    ).all()
    groups: dict[str, defaultdict[str, list[int]]] = {
        "by_technician": defaultdict(list),
        "by_category": defaultdict(list),
        "by_week": defaultdict(list),
    }
    for row in rows:
        groups["by_technician"][row.technician or "(unassigned)"].append(row.rating)
        groups["by_category"][row.category].append(row.rating)
        groups["by_week"][week_of(row.at)].append(row.rating)
    return {
        **_ratings(r.rating for r in rows),
        **{name: {key: _ratings(v) for key, v in sorted(group.items())} for name, group in groups.items()},
    }


def loop_report(session: Session, since: datetime) -> dict[str, Any]:
    kinds = (EventKind.SELF_SERVICE, EventKind.KB_SUGGESTED, EventKind.KB_PUBLISHED)
    counted = Counter(
        dict(
            session.execute(
                select(TicketEvent.kind, func.count())
                .where(TicketEvent.at >= since, TicketEvent.kind.in_([k.value for k in kinds]))
                .group_by(TicketEvent.kind)
            ).all()
        )
    )
    steps = Counter(
        dict(
            session.execute(
                select(TicketEvent.new, func.count())
                .where(TicketEvent.at >= since, TicketEvent.kind == EventKind.LIFECYCLE.value)
                .group_by(TicketEvent.new)
            ).all()
        )
    )
    return {
        "satisfaction": satisfaction_report(session, since),
        "self_service": counted[EventKind.SELF_SERVICE.value],
        "knowledge": {
            "acknowledgments_with_articles": counted[EventKind.KB_SUGGESTED.value],
            "published": counted[EventKind.KB_PUBLISHED.value],
        },
        "lifecycle": {
            "reminders": steps[REMINDER],
            "auto_resolved": steps[AUTO_RESOLVED],
            "auto_closed": steps[AUTO_CLOSED],
        },
    }
