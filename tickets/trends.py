"""The figures of the dashboard's Reports page and of the weekly report, over a period.

Opened and resolved per day, first response and resolution (median, p90) per week, the share of
SLA targets met per week, the backlog by age, by category and priority, per technician; and how
routing is doing: the share decided by rule, model and default, the model's confidence, and how
often technicians corrected a model's category (`#category`), per model version: the accuracy
seen in production. Columns are read, not whole rows; clocks are computed with routing.sla.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.ticket import OPEN_STATUSES, EventKind, Ticket, TicketEvent
from routing.sla import SlaConfig, SlaFacts, paused_spans, sla_outcome
from tickets.dashboard import cache_for, fast_sla, status_changes

AGE_BUCKETS: tuple[tuple[str, timedelta], ...] = (
    ("< 1 day", timedelta(days=1)),
    ("1-3 days", timedelta(days=3)),
    ("3-7 days", timedelta(days=7)),
    ("1-2 weeks", timedelta(days=14)),
    ("2-4 weeks", timedelta(days=28)),
)
OLDER = "> 4 weeks"
CONFIDENCE_BINS = 10
EVENT_BATCH = 900


def _pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)


def median_p90(values: Sequence[float]) -> tuple[float | None, float | None]:
    return (round(statistics.median(values), 2) if values else None, _pct(values, 0.9))


@dataclass
class Trends:
    days: list[date] = field(default_factory=list)
    opened: list[int] = field(default_factory=list)
    resolved: list[int] = field(default_factory=list)
    weeks: list[date] = field(default_factory=list)  # Mondays
    first_response: list[tuple[float | None, float | None]] = field(default_factory=list)  # hours
    resolution: list[tuple[float | None, float | None]] = field(default_factory=list)
    sla_met: list[float | None] = field(default_factory=list)  # percent of judged targets met
    backlog_age: dict[str, int] = field(default_factory=dict)
    by_category: dict[str, int] = field(default_factory=dict)
    by_priority: dict[str, int] = field(default_factory=dict)
    per_technician: list[dict[str, Any]] = field(default_factory=list)
    decided_by: dict[str, int] = field(default_factory=dict)  # rule / model / default
    confidence: list[int] = field(default_factory=list)  # CONFIDENCE_BINS counts of model decisions
    corrections: list[dict[str, Any]] = field(default_factory=list)  # per model version


def _monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def trends(session: Session, *, now: datetime, days: int, sla: SlaConfig) -> Trends:
    """The figures for the `days` up to `now` (weeks: those that overlap the period)."""
    since = now - timedelta(days=days)
    result = Trends()
    result.days = [(since + timedelta(days=i + 1)).date() for i in range(days)]
    result.weeks = sorted({_monday(d) for d in result.days})
    rows = session.execute(
        select(
            Ticket.id,
            Ticket.created_at,
            Ticket.first_response_at,
            Ticket.resolved_at,
            Ticket.status,
            Ticket.priority,
            Ticket.category,
            Ticket.assignee,
            Ticket.updated_at,
        ).where(or_(Ticket.created_at >= since, Ticket.resolved_at >= since))
    ).all()
    decisions = _decisions(session, [r.id for r in rows if r.created_at >= since])
    opened: Counter[date] = Counter()
    resolved: Counter[date] = Counter()
    first: dict[date, list[float]] = defaultdict(list)
    resolution: dict[date, list[float]] = defaultdict(list)
    met: dict[date, list[bool]] = defaultdict(list)
    resolved_by: dict[str, list[float]] = defaultdict(list)
    model_of: dict[int, str] = {}
    decided: Counter[str] = Counter()
    bins = [0] * CONFIDENCE_BINS
    verdicts = _verdicts(
        session, [r for r in rows if r.resolved_at is not None and r.resolved_at >= since], now, sla
    )
    for r in rows:
        created = r.created_at >= since
        if created:
            opened[r.created_at.date()] += 1
            if r.first_response_at is not None:
                first[_monday(r.created_at.date())].append(
                    (r.first_response_at - r.created_at).total_seconds() / 3600
                )
            source, version, confidence = decisions[r.id]
            decided[source] += 1
            if source == "model":
                model_of[r.id] = version or "?"
                if confidence is not None:
                    bins[min(CONFIDENCE_BINS - 1, max(0, int(confidence * CONFIDENCE_BINS)))] += 1
        if r.resolved_at is not None and r.resolved_at >= since:
            resolved[r.resolved_at.date()] += 1
            hours = (r.resolved_at - r.created_at).total_seconds() / 3600
            resolution[_monday(r.resolved_at.date())].append(hours)
            if r.assignee:
                resolved_by[r.assignee].append(hours)
            met[_monday(r.resolved_at.date())].extend(verdicts[r.id])
    result.opened = [opened.get(d, 0) for d in result.days]
    result.resolved = [resolved.get(d, 0) for d in result.days]
    result.first_response = [median_p90(first.get(w, [])) for w in result.weeks]
    result.resolution = [median_p90(resolution.get(w, [])) for w in result.weeks]
    result.sla_met = [round(100 * sum(met[w]) / len(met[w]), 1) if met.get(w) else None for w in result.weeks]
    result.decided_by = dict(decided.most_common())
    result.confidence = bins
    result.corrections = _corrections(session, model_of)
    _backlog(session, result, now, resolved_by)
    return result


# What a ticket's routing decided never changes; a resolved ticket's SLA verdicts change only with
# the ticket (its `updated_at`). Kept by ticket, so a refresh of the page reads and computes only
# what is new since the last one.
Decision = tuple[str, str | None, float | None]  # source, model version, confidence
_decided: dict[str, dict[int, Decision]] = {}  # by database, as tickets.dashboard's cache
_judged: dict[str, dict[int, tuple[tuple[int, datetime], tuple[bool, ...]]]] = {}
MAX_CACHED = 200_000


def _decisions(session: Session, ids: list[int]) -> dict[int, Decision]:
    decided: dict[int, Decision] = cache_for(_decided, session)
    missing = [i for i in ids if i not in decided]
    if len(decided) + len(missing) > MAX_CACHED:
        decided.clear()
        missing = ids
    for start in range(0, len(missing), EVENT_BATCH):
        batch = missing[start : start + EVENT_BATCH]
        for number, routing in session.execute(select(Ticket.id, Ticket.routing).where(Ticket.id.in_(batch))):
            decision = (routing or {}).get("category") or {}
            confidence = decision.get("confidence")
            decided[number] = (
                str(decision.get("source") or "unknown"),
                str(decision["model_version"]) if decision.get("model_version") else None,
                float(confidence) if isinstance(confidence, int | float) else None,
            )
    return {i: decided.get(i, ("unknown", None, None)) for i in ids}


def _verdicts(
    session: Session, rows: Sequence[Any], now: datetime, sla: SlaConfig
) -> dict[int, tuple[bool, ...]]:
    """Each resolved ticket's verdicts: first response met, resolution met (those that are judged)."""
    keys = {r.id: (id(sla), r.updated_at) for r in rows}
    judged_of: dict[int, tuple[tuple[int, datetime], tuple[bool, ...]]] = cache_for(_judged, session)
    stale = [r for r in rows if (judged_of.get(r.id) or (None,))[0] != keys[r.id]]
    if stale:
        if len(judged_of) + len(stale) > MAX_CACHED:
            judged_of.clear()
        fast = fast_sla(sla, min(r.created_at for r in stale), now)
        changes = status_changes(session, [r.id for r in stale])
        for r in stale:
            facts = SlaFacts(
                created_at=r.created_at,
                priority=r.priority,
                status=r.status,
                first_response_at=r.first_response_at,
                resolved_at=r.resolved_at,
                paused=paused_spans(changes.get(r.id, [])),
            )
            outcome = sla_outcome(facts, now, fast)
            judged = tuple(v for v in (outcome.first_response_met, outcome.resolution_met) if v is not None)
            judged_of[r.id] = (keys[r.id], judged)
    return {r.id: judged_of[r.id][1] for r in rows}


def _backlog(session: Session, result: Trends, now: datetime, resolved_by: dict[str, list[float]]) -> None:
    ages: Counter[str] = Counter()
    category: Counter[str] = Counter()
    priority: Counter[str] = Counter()
    held: Counter[str] = Counter()
    rows = session.execute(
        select(Ticket.created_at, Ticket.category, Ticket.priority, Ticket.assignee).where(
            Ticket.status.in_(list(OPEN_STATUSES))
        )
    )
    for created_at, cat, prio, assignee in rows:
        age = now - created_at
        ages[next((label for label, limit in AGE_BUCKETS if age < limit), OLDER)] += 1
        category[cat] += 1
        priority[prio.value] += 1
        held[assignee or ""] += 1
    result.backlog_age = {label: ages.get(label, 0) for label in [*(b[0] for b in AGE_BUCKETS), OLDER]}
    result.by_category = dict(category.most_common())
    result.by_priority = {p: priority[p] for p in ("urgent", "high", "normal", "low") if p in priority}
    people = sorted({*held, *resolved_by} - {""})
    result.per_technician = [
        {
            "technician": who,
            "open": held.get(who, 0),
            "resolved": len(resolved_by.get(who, [])),
            "median_hours": median_p90(resolved_by.get(who, []))[0],
        }
        for who in people
    ]
    if held.get(""):
        result.per_technician.append(
            {"technician": "", "open": held[""], "resolved": 0, "median_hours": None}
        )


def _corrections(session: Session, model_of: dict[int, str]) -> list[dict[str, Any]]:
    """Per model version: its category decisions in the period, and how many staff corrected by hand."""
    ids = list(model_of)
    corrected: set[int] = set()
    for start in range(0, len(ids), EVENT_BATCH):
        corrected.update(
            session.scalars(
                select(TicketEvent.ticket_id)
                .where(
                    TicketEvent.ticket_id.in_(ids[start : start + EVENT_BATCH]),
                    TicketEvent.kind == EventKind.CATEGORY.value,
                )
                .distinct()
            )
        )
    decided: Counter[str] = Counter(model_of.values())
    fixed: Counter[str] = Counter(model_of[t] for t in corrected)
    return [
        {
            "model_version": version,
            "decided": count,
            "corrected": fixed.get(version, 0),
            "rate": round(100 * fixed.get(version, 0) / count, 1),
        }
        for version, count in sorted(decided.items())
    ]
