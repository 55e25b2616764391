"""The figures of `helpdesk report`: what happened to tickets in a period, for coordinators.

Tickets opened and resolved, what is open and with whom, how routing decided, SLA targets met
and missed, first-response and resolution times; satisfaction, self-service and the lifecycle
timer (`tickets.loop_report`). The command line adds what waits in the
quarantine and renders it (helpdesk/report.py).
"""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.ticket import OPEN_STATUSES, Ticket
from routing.sla import SlaConfig, sla_outcome
from tickets.loop_report import loop_report
from tickets.sla_timer import ticket_facts


def _hours(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p90": None}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), 2),
        "p90": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))], 2),
    }


def ticket_report(session: Session, *, now: datetime, days: int, sla: SlaConfig) -> dict[str, Any]:
    since = now - timedelta(days=days)
    opened = list(session.scalars(select(Ticket).where(Ticket.created_at >= since)))
    resolved = list(session.scalars(select(Ticket).where(Ticket.resolved_at >= since)))
    open_now = list(session.scalars(select(Ticket).where(Ticket.status.in_(OPEN_STATUSES))))
    first_response = [
        (t.first_response_at - t.created_at).total_seconds() / 3600 for t in opened if t.first_response_at
    ]
    resolution = [(t.resolved_at - t.created_at).total_seconds() / 3600 for t in resolved if t.resolved_at]
    routed_by: Counter[str] = Counter()
    for t in opened:
        routed_by[str((t.routing or {}).get("category", {}).get("source", "unknown"))] += 1
    met = missed = 0
    missed_tickets: list[int] = []
    for t in opened:
        outcome = sla_outcome(ticket_facts(session, t), now, sla)
        verdicts = [v for v in (outcome.first_response_met, outcome.resolution_met) if v is not None]
        if verdicts and all(verdicts):
            met += 1
        elif any(v is False for v in verdicts):
            missed += 1
            missed_tickets.append(t.id)
    return {
        "period": {"from": since.isoformat(), "to": now.isoformat(), "days": days},
        "opened": len(opened),
        "resolved": len(resolved),
        "open_now": {
            "total": len(open_now),
            "by_status": dict(Counter(t.status.value for t in open_now)),
            "by_priority": dict(Counter(t.priority.value for t in open_now)),
            "by_category": dict(Counter(t.category for t in open_now).most_common()),
            "by_assignee": dict(Counter(t.assignee or "(unassigned)" for t in open_now).most_common()),
            "oldest": [
                {
                    "number": t.id,
                    "subject": t.subject,
                    "age_hours": round((now - t.created_at).total_seconds() / 3600, 1),
                }
                for t in sorted(open_now, key=lambda t: t.created_at)[:5]
            ],
        },
        "opened_by_category": dict(Counter(t.category for t in opened).most_common()),
        "routed_by": dict(routed_by),
        "first_response_hours": _hours(first_response),
        "resolution_hours": _hours(resolution),
        "sla": {"met": met, "missed": missed, "missed_tickets": missed_tickets[:20]},
        **loop_report(session, since),
    }
