"""What `/metrics` reads of the database: counts only, no addresses, subjects or text.

Mail processed by outcome, the latency from storing to processing of recent mail, SLA breaches
of open tickets. Counted in the database, so every process that serves `/metrics` gives the same
figures for the whole desk, however many workers share it.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.raw_message import RawMessage, RawStatus
from models.ticket import OPEN_STATUSES, Ticket
from routing.sla import SlaStep

RECENT = timedelta(hours=1)


def processed_by_outcome(session: Session) -> dict[str, int]:
    rows = session.execute(
        select(RawMessage.outcome, func.count())
        .where(RawMessage.status == RawStatus.PROCESSED)
        .group_by(RawMessage.outcome)
    )
    return {str(outcome or "none"): int(count) for outcome, count in rows}


def recent_latencies(session: Session, *, now: datetime, within: timedelta = RECENT) -> list[float]:
    """Seconds from stored to processed of each mail processed within `within` before `now`."""
    rows = session.execute(
        select(RawMessage.received_at, RawMessage.processed_at).where(
            RawMessage.processed_at >= now - within, RawMessage.status == RawStatus.PROCESSED
        )
    )
    return [max(0.0, (done - got).total_seconds()) for got, done in rows if done is not None]


def sla_breaches(session: Session) -> dict[str, int]:
    """Open tickets past a target, by target ("first_response", "resolution")."""
    counts = {"first_response": 0, "resolution": 0}
    breaches = {step.value: step.target for step in SlaStep if step.is_breach}
    for (done,) in session.execute(select(Ticket.sla_done).where(Ticket.status.in_(list(OPEN_STATUSES)))):
        for step in done or []:
            if step in breaches:
                counts[breaches[step]] += 1
    return counts
