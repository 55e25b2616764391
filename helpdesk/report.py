"""`helpdesk report`: what the desk did in a period, for coordinators, in JSON or for people.

The figures are the tickets' (tickets/report.py) and the quarantine's (intake/quarantine.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from helpdesk.terminal import cell
from intake.quarantine import quarantined_count
from routing.sla import SlaConfig
from tickets.report import ticket_report


def build_report(session: Session, *, now: datetime, days: int, sla: SlaConfig) -> dict[str, Any]:
    return {**ticket_report(session, now=now, days=days, sla=sla), "quarantined": quarantined_count(session)}


NONE = "—"  # a figure there is nothing to compute from (no ticket answered yet, ...)


def hours(value: float | None) -> str:
    return NONE if value is None else f"{value} h"


def listed(counts: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or NONE


def render_report(report: dict[str, Any]) -> str:
    period = report["period"]
    open_now = report["open_now"]
    lines = [
        f"Helpdesk report, last {period['days']} days (to {period['to'][:16]})",
        "",
        f"  opened {report['opened']}   resolved {report['resolved']}   open now {open_now['total']}"
        f"   quarantined mail {report['quarantined']}",
        f"  SLA: {report['sla']['met']} met, {report['sla']['missed']} missed"
        + (
            f" (#{', #'.join(map(str, report['sla']['missed_tickets']))})"
            if report["sla"]["missed_tickets"]
            else ""
        ),
        f"  first response: median {hours(report['first_response_hours']['median'])},"
        f" p90 {hours(report['first_response_hours']['p90'])}",
        f"  resolution:     median {hours(report['resolution_hours']['median'])},"
        f" p90 {hours(report['resolution_hours']['p90'])}",
        f"  routed by: {listed(report['routed_by'])}",
        "",
        "Open now:",
        "  by status:   " + listed(open_now["by_status"]),
        "  by priority: " + listed(open_now["by_priority"]),
        "  by category: " + listed(open_now["by_category"]),
        "  by assignee: " + listed(open_now["by_assignee"]),
    ]
    if open_now["oldest"]:
        lines.append("  oldest:")
        lines.extend(
            f"    #{t['number']} {t['subject'][:60]} ({t['age_hours']} h)" for t in open_now["oldest"]
        )
    lines.append("")
    lines.append("Opened by category: " + listed(report["opened_by_category"]))
    lines.extend(_loop_lines(report))
    return "\n".join(cell(line) for line in lines)  # subjects and names are mail-derived


def _loop_lines(report: dict[str, Any]) -> list[str]:
    """Satisfaction per technician, category and week; self-service; what the lifecycle timer did."""
    rated, cycle = report["satisfaction"], report["lifecycle"]

    def figure(group: dict[str, Any]) -> str:
        return f"{group['average']} avg of {group['count']}" + (
            f", {group['low']} low" if group["low"] else ""
        )

    lines = ["", f"Satisfaction: {figure(rated) if rated['count'] else 'no ratings'}"]
    for name, title in (("by_technician", "technician"), ("by_category", "category"), ("by_week", "week")):
        for key, group in rated[name].items():
            lines.append(f"  {title} {key}: {figure(group)}")
    lines.append(
        f"Self-service: {report['self_service']} solved by requesters   knowledge: "
        f"{report['knowledge']['acknowledgments_with_articles']} acknowledgments offered articles, "
        f"{report['knowledge']['published']} published"
    )
    lines.append(
        f"Lifecycle: {cycle['reminders']} reminders, {cycle['auto_resolved']} resolved without an answer, "
        f"{cycle['auto_closed']} closed"
    )
    return lines
