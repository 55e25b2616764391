"""What the dashboard reads of the queue: open tickets with their SLA clocks, filtered and sorted
by what falls due next, the SLA page's buckets, and the team's load and shifts.

Each page asks once: the tickets' columns (not whole rows), the status changes of the tickets it
shows in one query (for the time their resolution clock stood still), and the clocks computed
with routing.sla. A technician sees their own tickets and the unassigned ones; a coordinator all.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, func, or_, select
from sqlalchemy.orm import Session

from models.people import TechnicianRow
from models.ticket import (
    ACTIVE_STATUSES,
    OPEN_STATUSES,
    EventKind,
    Priority,
    Ticket,
    TicketEvent,
    TicketStatus,
)
from routing.assign import weighted_load
from routing.business_timeline import TimelineSla, with_timeline
from routing.people import Technician
from routing.shifts import is_on_shift, next_shift_start
from routing.sla import SlaConfig, SlaFacts, paused_spans, sla_outcome
from tickets.roster import technician_of
from tickets.sign_in import Viewer

Q = TypeVar("Q", bound=Select[*tuple[Any, ...]])
SOON = timedelta(hours=1)
LATER = timedelta(hours=4)
EVENT_BATCH = 900  # ids per IN (...): under SQLite's and PostgreSQL's bind limits
# The business time a page's clocks may need: tickets opened up to this long ago (older ones
# take the slower calendar walk), and due dates up to this far ahead.
TIMELINE_BACK = timedelta(days=120)
TIMELINE_AHEAD = timedelta(days=90)
_timelines: dict[tuple[int, datetime, datetime], tuple[SlaConfig, TimelineSla]] = {}


class SlaState(enum.StrEnum):
    OVERDUE = "overdue"
    WITHIN_1H = "1h"  # falls due within the hour
    WITHIN_4H = "4h"
    ON_TRACK = "ok"
    PAUSED = "paused"  # waiting on the requester: the clock stands still


@dataclass(frozen=True)
class QueueFilter:
    statuses: Collection[TicketStatus] = OPEN_STATUSES
    priority: Priority | None = None
    category: str | None = None
    assignee: str | None = None  # an address, or "" for the unassigned
    language: str | None = None
    sla: SlaState | None = None
    limit: int = 100


@dataclass(frozen=True)
class QueueRow:
    number: int
    subject: str
    status: TicketStatus
    priority: Priority
    category: str
    assignee: str | None
    language: str
    created_at: datetime
    due_at: datetime | None  # the next target: the first response, else the resolution
    due_what: str  # "first response" or "resolution" ("" when done)
    left: timedelta | None  # time left; negative when overdue
    state: SlaState


@dataclass(frozen=True)
class Queue:
    rows: list[QueueRow]
    total: int  # rows matching before the limit
    by_state: dict[SlaState, int]  # the tickets matching every filter but the SLA state's, by state
    unassigned: int  # ... of them without an assignee
    choices: dict[str, list[str]]  # what the filters can choose from


def visible_to(query: Q, who: Viewer) -> Q:
    """A query limited to what `who` may see."""
    if who.is_coordinator:
        return query
    return query.where(or_(Ticket.assignee == who.email, Ticket.assignee.is_(None)))


def may_see(ticket: Ticket, who: Viewer) -> bool:
    return who.is_coordinator or ticket.assignee is None or ticket.assignee == who.email


def status_changes(session: Session, ids: Sequence[int]) -> dict[int, list[tuple[datetime, TicketStatus]]]:
    """Each ticket's status changes in time order, for the spans its clock stood still."""
    found: dict[int, list[tuple[datetime, TicketStatus]]] = defaultdict(list)
    for start in range(0, len(ids), EVENT_BATCH):
        rows = session.execute(
            select(TicketEvent.ticket_id, TicketEvent.at, TicketEvent.new)
            .where(
                TicketEvent.ticket_id.in_(ids[start : start + EVENT_BATCH]),
                TicketEvent.kind == EventKind.STATUS.value,
            )
            .order_by(TicketEvent.id)
        )
        for ticket_id, at, new in rows:
            if new is not None and new in TicketStatus._value2member_map_:
                found[ticket_id].append((at, TicketStatus(new)))
    return found


def fast_sla(sla: SlaConfig, earliest: datetime | None, now: datetime) -> SlaConfig:
    """`sla` with its business time from `earliest` (or less far back) to well after `now` laid out
    once; kept for the day, so the pages of the next refreshes reuse it."""
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = max(earliest or day, day - TIMELINE_BACK).replace(hour=0, minute=0, second=0, microsecond=0)
    key = (id(sla), start, day)
    found = _timelines.get(key)
    if found is None or found[0] is not sla:
        if len(_timelines) > 8:
            _timelines.clear()
        found = (sla, with_timeline(sla, start, day + TIMELINE_AHEAD))
        _timelines[key] = found
    return found[1]


def due_of(facts: SlaFacts, now: datetime, sla: SlaConfig) -> tuple[datetime | None, str]:
    """A ticket's next due time and what falls due then; no time while its clock stands still."""
    if facts.status not in OPEN_STATUSES:
        return None, ""
    outcome = sla_outcome(facts, now, sla)
    if facts.first_response_at is None:
        return outcome.first_response_due, "first response"
    if facts.status is TicketStatus.WAITING:
        return None, "resolution"
    return outcome.resolution_due, "resolution"


def state_of(due: datetime | None, status: TicketStatus, now: datetime) -> tuple[timedelta | None, SlaState]:
    if due is None:
        return None, SlaState.PAUSED if status is TicketStatus.WAITING else SlaState.ON_TRACK
    left = due - now
    if left < timedelta(0):
        return left, SlaState.OVERDUE
    if left <= SOON:
        return left, SlaState.WITHIN_1H
    if left <= LATER:
        return left, SlaState.WITHIN_4H
    return left, SlaState.ON_TRACK


# The queue's rows with their due times, kept by ticket while it is unchanged. Every change to a
# ticket stamps its `updated_at` (the column's onupdate, for the ORM and Core updates alike), and
# a due time moves only when the ticket does: so a refresh reads two columns of each open ticket
# and the whole row, and computes the clock, only of the tickets that changed since.
_Cached = tuple[tuple[int, datetime], Any, datetime | None, str]  # (policy, updated_at), row, due, what
_rows: dict[str, dict[int, _Cached]] = {}  # by database: a process may read more than one
MAX_CACHED = 200_000


def cache_for(caches: dict[str, dict[int, Any]], session: Session) -> dict[int, Any]:
    """The per-ticket cache of the database `session` reads (ticket numbers are per database)."""
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    return caches.setdefault(engine.url.render_as_string(hide_password=True), {})


_COLUMNS = (
    Ticket.id,
    Ticket.subject,
    Ticket.status,
    Ticket.priority,
    Ticket.category,
    Ticket.assignee,
    Ticket.language,
    Ticket.created_at,
    Ticket.first_response_at,
    Ticket.resolved_at,
    Ticket.updated_at,
)


def _refresh(
    session: Session, cache: dict[int, _Cached], ids: list[int], *, now: datetime, sla: SlaConfig
) -> None:
    """Read the rows of `ids` and compute their due times into `cache`."""
    if len(cache) + len(ids) > MAX_CACHED:
        cache.clear()
    fresh: list[Any] = []
    for start in range(0, len(ids), EVENT_BATCH):
        fresh.extend(
            session.execute(select(*_COLUMNS).where(Ticket.id.in_(ids[start : start + EVENT_BATCH])))
        )
    if not fresh:
        return
    fast = fast_sla(sla, min(t.created_at for t in fresh), now)
    changes = status_changes(session, [t.id for t in fresh if t.first_response_at is not None])
    for t in fresh:
        facts = SlaFacts(
            created_at=t.created_at,
            priority=t.priority,
            status=t.status,
            first_response_at=t.first_response_at,
            resolved_at=t.resolved_at,
            paused=paused_spans(changes.get(t.id, [])),
        )
        cache[t.id] = ((id(sla), t.updated_at), t, *due_of(facts, now, fast))


def queue(session: Session, who: Viewer, which: QueueFilter, *, now: datetime, sla: SlaConfig) -> Queue:
    query = visible_to(select(Ticket.id, Ticket.updated_at), who).where(
        Ticket.status.in_(list(which.statuses))
    )
    if which.priority is not None:
        query = query.where(Ticket.priority == which.priority)
    if which.category:
        query = query.where(Ticket.category == which.category)
    if which.assignee is not None:
        query = query.where(
            Ticket.assignee.is_(None) if which.assignee == "" else Ticket.assignee == which.assignee
        )
    if which.language:
        query = query.where(Ticket.language == which.language)
    marks = session.execute(query).all()
    policy = id(sla)
    cache: dict[int, _Cached] = cache_for(_rows, session)
    stale = [number for number, updated in marks if (cache.get(number) or (None,))[0] != (policy, updated)]
    if stale:
        _refresh(session, cache, stale, now=now, sla=sla)
    cached = [cache[number] for number, _ in marks if number in cache]
    far = now + timedelta(days=36500)
    picked: list[tuple[datetime, int, int, Any, datetime | None, str, timedelta | None, SlaState]] = []
    by_state = dict.fromkeys(SlaState, 0)
    for _, t, due, what in cached:
        left, state = state_of(due, t.status, now)
        by_state[state] += 1
        if which.sla is None or state is which.sla:
            picked.append((due or far, -t.priority.rank, t.id, t, due, what, left, state))
    picked.sort(key=lambda p: (p[0], p[1], p[2]))
    rows = [
        QueueRow(
            t.id, t.subject, t.status, t.priority, t.category, t.assignee, t.language,
            t.created_at, due, what, left, state,
        )
        for *_, t, due, what, left, state in picked[: which.limit]
    ]  # fmt: skip
    tickets = [t for _, t, _, _ in cached]
    unassigned = sum(1 for t in tickets if t.assignee is None)
    choices = _choices(session, who, which, tickets)
    return Queue(rows, len(picked), by_state, unassigned, choices)


def _choices(
    session: Session, who: Viewer, which: QueueFilter, tickets: Sequence[Any]
) -> dict[str, list[str]]:
    """What the filters can choose from: the values of the open tickets `who` may see. Read off
    the rows already fetched when no filter narrowed them, else in one query."""
    narrowed = (which.priority, which.category, which.assignee, which.language) != (None, None, None, None)
    if not narrowed and set(which.statuses) == set(OPEN_STATUSES):
        combos: Iterable[tuple[Any, Any, Any]] = ((t.category, t.language, t.assignee) for t in tickets)
    else:
        query = visible_to(select(Ticket.category, Ticket.language, Ticket.assignee), who)
        combos = session.execute(query.where(Ticket.status.in_(list(OPEN_STATUSES))).distinct()).all()
    found: dict[str, set[str]] = {"category": set(), "language": set(), "assignee": set()}
    for category, language, assignee in combos:
        for key, value in (("category", category), ("language", language), ("assignee", assignee)):
            if value:
                found[key].add(str(value))
    return {key: sorted(values) for key, values in found.items()}


@dataclass(frozen=True)
class TeamMember:
    technician: Technician
    on_shift: bool
    next_shift: datetime | None
    open_count: int
    load: float  # weighted by priority, as assignment counts it

    @property
    def full(self) -> bool:
        return self.load >= self.technician.max_open


def team(session: Session, *, now: datetime) -> list[TeamMember]:
    """Every active technician: on shift now, open load against max_open, next shift."""
    priorities: dict[str, list[Priority]] = defaultdict(list)
    rows = session.execute(
        select(Ticket.assignee, Ticket.priority, func.count())
        .where(Ticket.status.in_(list(ACTIVE_STATUSES)), Ticket.assignee.is_not(None))
        .group_by(Ticket.assignee, Ticket.priority)
    )
    for assignee, priority, count in rows:
        if assignee is None:
            continue
        priorities[assignee].extend([priority] * int(count))
    members = []
    for row in session.scalars(select(TechnicianRow).where(TechnicianRow.active.is_(True))):
        tech = technician_of(row)
        on = is_on_shift(tech, now)
        held = priorities.get(tech.email, [])
        members.append(
            TeamMember(tech, on, None if on else next_shift_start(tech, now), len(held), weighted_load(held))
        )
    members.sort(key=lambda m: (not m.on_shift, -m.load / max(m.technician.max_open, 1), m.technician.email))
    return members


def group_by_state(rows: Iterable[QueueRow]) -> dict[SlaState, list[QueueRow]]:
    grouped: dict[SlaState, list[QueueRow]] = {state: [] for state in SlaState}
    for row in rows:
        grouped[row.state].append(row)
    return grouped
