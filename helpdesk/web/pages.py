"""The dashboard's pages: Queue, Ticket, Team, SLA, Coverage, Reports. Each reads through tickets/
(no SQL here) in one read-only session and renders a template; charts come from charts.py.

A technician sees their own tickets and the unassigned ones: the queue is filtered so, and a
ticket of someone else answers 404, the same as a ticket that does not exist.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from starlette.requests import Request
from starlette.responses import Response

from helpdesk.web import charts
from helpdesk.web.app import Dashboard, Handler
from helpdesk.web.weekly import report_charts
from models.ticket import OPEN_STATUSES, EventKind, Priority, TicketStatus
from notify.tokens import coordinator_token, work_token
from routing.shifts import describe_when
from routing.sla import sla_outcome
from tickets.coverage import week_coverage
from tickets.dashboard import QueueFilter, SlaState, group_by_state, may_see, queue, team
from tickets.queries import ticket_record
from tickets.roster import coordinator_by_email, technician_by_email
from tickets.sign_in import Viewer
from tickets.similar import similar_resolved
from tickets.sla_timer import ticket_facts
from tickets.trends import trends

REPORT_DAYS = 28
# The reports' figures are weeks and days: computed at most this often, so that the pages'
# refreshes on a desk of tens of thousands of tickets stay cheap (the page says as of when).
REPORT_FRESH = timedelta(minutes=5)
_figures: dict[tuple[int, int], tuple[datetime, Any]] = {}


def clock_text(left: timedelta | None) -> str:
    """ "2h 05m left", "overdue 1d 3h", or "—"."""
    if left is None:
        return "—"
    seconds = abs(int(left.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    text = f"{days}d {hours}h" if days else f"{hours}h {rest // 60:02d}m"
    return f"overdue {text}" if left.total_seconds() < 0 else f"{text} left"


def _choice(value: str | None, allowed: list[str]) -> str | None:
    return value if value in allowed else None


def queue_page(request: Request, who: Viewer, board: Dashboard) -> Response:
    q = request.query_params
    status = q.get("status", "")
    statuses = [TicketStatus(status)] if status in TicketStatus._value2member_map_ else list(OPEN_STATUSES)
    which = QueueFilter(
        statuses=statuses,
        priority=Priority(q["priority"]) if q.get("priority") in Priority._value2member_map_ else None,
        category=q.get("category") or None,
        assignee=q.get("assignee") if "assignee" in q and q.get("assignee") != "*" else None,
        language=q.get("language") or None,
        sla=SlaState(q["sla"]) if q.get("sla") in SlaState._value2member_map_ else None,
    )
    with board.readers() as session:
        found = queue(session, who, which, now=board.clock(), sla=board.settings.sla)
    return board.page(
        request,
        "queue.html.j2",
        who=who,
        title="Queue",
        queue=found,
        filters={
            **{k: q.get(k, "") for k in ("status", "priority", "category", "language", "sla")},
            "assignee": q.get("assignee", "*"),
        },
        statuses=[s.value for s in TicketStatus],
        priorities=[p.value for p in Priority],
        sla_states=[s.value for s in SlaState],
        states=SlaState,
        clock_text=clock_text,
    )


def ticket_page(request: Request, who: Viewer, board: Dashboard) -> Response:
    try:
        number = int(request.path_params["number"])
    except (KeyError, ValueError):
        number = 0
    now = board.clock()
    with board.readers() as session:
        record = ticket_record(session, number) if number > 0 else None
        if record is None or not may_see(record.ticket, who):
            return board.page(request, "not_found.html.j2", who=who, title="Not found", status=404)
        ticket = record.ticket
        assigned = [e for e in ticket.events if e.kind == EventKind.ASSIGNED.value]
        outcome = sla_outcome(ticket_facts(session, ticket), now, board.settings.sla)
        first_text = next((m.new_text or m.text for m in ticket.messages if m.direction == "in"), "")
        similar = similar_resolved(session, ticket, first_text)
        context: dict[str, Any] = {
            "who": who,
            "title": f"#{ticket.id}",
            "ticket": ticket,
            "record": record,
            "routing": ticket.routing or {},
            "assignment": dict(assigned[-1].data or {}) if assigned else None,
            "outcome": outcome,
            "first_left": clock_text(outcome.first_response_due - now)
            if ticket.first_response_at is None
            else None,
            "resolution_left": clock_text(outcome.resolution_due - now)
            if ticket.status in OPEN_STATUSES
            else None,
            "similar": similar,
            "commands": commands(
                ticket.id, ticket.category, ticket.priority, ticket.status, ticket.routing or {}
            ),
            "reply_to": _reply_address(session, board, who, ticket, now),
            "subject": f"Re: [#{ticket.id}] {ticket.subject}",
        }
        if context["reply_to"]:
            context["mailto"] = mailto(context["reply_to"], context["subject"], "")
        return board.page(request, "ticket.html.j2", **context)


def _reply_address(session: Any, board: Dashboard, who: Viewer, ticket: Any, now: datetime) -> str | None:
    """A reply address signed for the viewer, so the commands below can be sent from their mail:
    any ticket's for a coordinator; for a technician only their own ticket's, as their mail has
    (the dashboard gives nobody a power the desk's mail does not)."""
    identity = board.settings.identity
    number = int(ticket.id)
    if who.is_coordinator:
        found = coordinator_by_email(session, who.email)
        if found is None:
            return None
        return identity.plus_address(coordinator_token(identity.secret, number, found[0], now=now))
    member = technician_by_email(session, who.email)
    if member is None or ticket.assignee != who.email:
        return None
    return identity.plus_address(work_token(identity.secret, number, member.id, now=now))


def commands(
    number: int, category: str, priority: Priority, status: TicketStatus, routing: dict[str, Any]
) -> list[tuple[str, str]]:
    """The mail commands that would act on this ticket now, each with what it does."""
    found: list[tuple[str, str]] = []
    if status in (TicketStatus.NEW, TicketStatus.OPEN):
        found.append(("#status in_progress", "say it is being worked"))
    if (routing.get("category") or {}).get("source") != "rule" or category == "triage":
        found.append((f"#category {category}", "correct the category (the next retrain learns from it)"))
    if priority is not Priority.URGENT:
        higher = {Priority.LOW: "normal", Priority.NORMAL: "high", Priority.HIGH: "urgent"}[priority]
        found.append((f"#priority {higher}", "raise the priority (its SLA targets tighten)"))
    found += [
        ("#assign EMAIL", "give it to someone else"),
        ("#escalate REASON", "hand it to the next tier"),
        ("#note TEXT", "an internal note, never sent to the requester"),
        ("#resolve RESOLUTION", "resolve it; the requester is told"),
    ]
    return found


def team_page(request: Request, who: Viewer, board: Dashboard) -> Response:
    now = board.clock()
    with board.readers() as session:
        members = team(session, now=now)
    return board.page(
        request,
        "team.html.j2",
        who=who,
        title="Team",
        members=members,
        when=lambda at, zone: describe_when(at, zone, now) if at else "—",
        chart=charts.hbars(
            "Open load against max_open (%)",
            [(m.technician.name, round(100 * m.load / max(m.technician.max_open, 1))) for m in members],
            unit="%",
            width=560,
            limit=100,
        ),
    )


def sla_page(request: Request, who: Viewer, board: Dashboard) -> Response:
    with board.readers() as session:
        found = queue(session, who, QueueFilter(limit=100_000), now=board.clock(), sla=board.settings.sla)
    grouped = group_by_state(found.rows)
    # What can still be saved first, then what is lost already.
    sections = [
        ("Breaching within 1 hour", "1h", grouped[SlaState.WITHIN_1H]),
        ("Breaching within 4 hours", "4h", grouped[SlaState.WITHIN_4H]),
        ("Breached", "overdue", grouped[SlaState.OVERDUE]),
    ]
    by_assignee: dict[str, int] = {}
    for row in grouped[SlaState.OVERDUE]:
        by_assignee[row.assignee or "(unassigned)"] = by_assignee.get(row.assignee or "(unassigned)", 0) + 1
    chart = charts.hbars("Breached, with whom", sorted(by_assignee.items(), key=lambda kv: -kv[1])[:15])
    return board.page(
        request, "sla.html.j2", who=who, title="SLA", sections=sections, chart=chart, clock_text=clock_text
    )


def coverage_page(request: Request, who: Viewer, board: Dashboard) -> Response:
    zone = board.settings.sla.hours.zone
    with board.readers() as session:
        grid = week_coverage(session, now=board.clock(), categories=board.settings.routing.categories)
    languages = sorted(grid.by_language.items())
    skills = sorted(grid.by_skill.items())
    return board.page(
        request,
        "coverage.html.j2",
        who=who,
        title="Coverage",
        grid=grid,
        zone=zone.key,
        languages=[(name, grid.gap_hours(c)) for name, c in languages],
        skills=[(name, grid.gap_hours(c)) for name, c in skills],
        gaps=_gap_spans(grid.gaps(), grid.start, zone),
        language_chart=charts.coverage_grid("Technicians on shift per language", languages, grid.start, zone),
        skill_chart=charts.coverage_grid(
            "Technicians with skill ≥ 3 on shift, per category", skills, grid.start, zone
        ),
        total_chart=charts.coverage_grid(
            "Technicians on shift", [("everyone", grid.total)], grid.start, zone
        ),
    )


def _gap_spans(gaps: list[tuple[str, str, int]], start: datetime, zone: ZoneInfo) -> list[dict[str, str]]:
    """Consecutive gap hours of one language or skill as one span: "pl: Mon 18:00 - Tue 06:00"."""
    spans: list[dict[str, str]] = []
    last: tuple[str, str, int] | None = None
    for kind, name, hour in gaps:
        if last is not None and (last[0], last[1]) == (kind, name) and last[2] == hour - 1:
            spans[-1]["until"] = f"{(start + timedelta(hours=hour + 1)).astimezone(zone):%a %H:00}"
        else:
            spans.append(
                {
                    "kind": kind,
                    "name": name,
                    "from": f"{(start + timedelta(hours=hour)).astimezone(zone):%a %d %H:00}",
                    "until": f"{(start + timedelta(hours=hour + 1)).astimezone(zone):%a %H:00}",
                }
            )
        last = (kind, name, hour)
    return spans


def figures_of(board: Dashboard, days: int) -> tuple[datetime, Any]:
    """The trends of the last `days`, and when they were computed (at most REPORT_FRESH ago)."""
    now = board.clock()
    key = (id(board), days)
    cached = _figures.get(key)
    if cached is None or not timedelta(0) <= now - cached[0] < REPORT_FRESH:
        with board.readers() as session:
            cached = (now, trends(session, now=now, days=days, sla=board.settings.sla))
        _figures[key] = cached
    return cached


def reports_page(request: Request, who: Viewer, board: Dashboard) -> Response:
    as_of, figures = figures_of(board, REPORT_DAYS)
    return board.page(
        request,
        "reports.html.j2",
        who=who,
        title="Reports",
        figures=figures,
        days=REPORT_DAYS,
        as_of=as_of,
        charts=report_charts(figures),
    )


def mailto(address: str, subject: str, body: str) -> str:
    return f"mailto:{address}?subject={quote(subject)}&body={quote(body)}"


PAGES: tuple[tuple[str, Handler], ...] = (
    ("/queue", queue_page),
    ("/tickets/{number}", ticket_page),
    ("/team", team_page),
    ("/sla", sla_page),
    ("/coverage", coverage_page),
    ("/reports", reports_page),
)
