"""Technician assignment: who in the team should take a ticket now, with the reason, or why nobody.

A technician fits a ticket when they are active, within the tier bounds, skilled in its category,
on shift now and below their `max_open` load. Among those who fit:

* **Language** is a strong preference: when anyone who fits speaks the ticket's language, only they
  are considered; when nobody does, the others are, and the decision notes it. An undetermined
  language ("und" or empty) prefers no one.
* **Score** = skill + language + tier + load, with the named weights below. The weights make first
  line keep what it can do well and specialists stay free for the rest, while an urgent ticket
  goes to the most skilled, least loaded person whatever their tier.
* **Ties** go to whoever was assigned least recently (never assigned first), then to the lowest
  email, so the same facts always give the same answer.

Category rules. `triage` (the category routing leaves to the coordinator) goes to the lowest tier
present, first line generalists. A category nobody in the team has a skill in (no active,
non-excluded technician of any tier lists it) is handled the same way, as triage: a new or
misspelt category should not leave tickets unassigned. When somebody has the skill but cannot
take the ticket now (off shift, full), the ticket stays unassigned and the decision explains why
for each technician, for the coordinators' mail; the caller retries when shifts begin.

Everything here is pure: the caller passes the roster, the open load and the last assignment times.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from models.ticket import Priority
from routing.facts import DEFAULT_CATEGORY
from routing.people import MAX_TIER, MIN_TIER, Technician
from routing.shifts import describe_when, is_on_shift, next_shift_start, require_aware

# One skill level (1..5) in the ticket's category is worth this much.
SKILL_WEIGHT = 10.0
# Speaking the ticket's language. Language also filters (see the module doc), so within one
# decision this part only records the fallback; it is kept in the score to make reasons complete.
LANGUAGE_WEIGHT = 30.0
# Taken off per tier above first line, except for urgent tickets. 2.5 skill levels: a first-line
# technician at level 3 beats a tier-2 expert at level 5, one at level 2 does not.
TIER_WEIGHT = 25.0
# Times the free share of `max_open`: an idle technician gets all of it, a nearly full one almost
# none. Half of it equals one skill level, so a much less loaded colleague one level lower can win.
LOAD_WEIGHT = 20.0
# The level a first-line technician counts for triage when they list no `triage` skill.
TRIAGE_BASE_LEVEL = 1
# How much one open ticket weighs against `max_open`, by its priority.
LOAD_BY_PRIORITY: Mapping[Priority, float] = {
    Priority.LOW: 0.5,
    Priority.NORMAL: 1.0,
    Priority.HIGH: 1.5,
    Priority.URGENT: 2.0,
}
UNDETERMINED_LANGUAGES = frozenset({"", "und"})
# How many of those who fit a decision's reason lists, best first.
RANKING_SIZE = 5

# An open load: the priorities of the technician's open tickets, or a number already weighted.
OpenLoad = float | Sequence[Priority]


@dataclass(frozen=True)
class TicketNeeds:
    """What assignment needs to know about a ticket."""

    category: str
    priority: Priority
    language: str = "und"  # ISO 639-1, or "und" when undetermined


@dataclass(frozen=True)
class Rejection:
    """Why one technician cannot take the ticket now."""

    email: str
    handle: str
    why: str

    def line(self) -> str:
        return f"{self.handle}: {self.why}"


@dataclass(frozen=True)
class AssignmentDecision:
    """The chosen technician (or None), the score with its parts, and why the others were not."""

    technician: Technician | None
    score: float | None = None
    parts: Mapping[str, float] = field(default_factory=dict)
    ticket: TicketNeeds | None = None
    rejections: tuple[Rejection, ...] = ()
    notes: tuple[str, ...] = ()  # fallbacks taken and the tie-break used, in words
    ranking: tuple[tuple[str, float], ...] = ()  # (email, score) of everyone who fitted, best first
    load: float | None = None  # the chosen one's weighted open load before this ticket

    @property
    def email(self) -> str | None:
        return self.technician.email if self.technician is not None else None

    def reason(self) -> dict[str, Any]:
        """A JSON-able account of the decision, to store with the assignment event."""
        tech = self.technician
        data: dict[str, Any] = {
            "technician": self.email,
            "score": self.score,
            "parts": dict(self.parts),
            "notes": list(self.notes),
            "ranking": [{"email": email, "score": score} for email, score in self.ranking[:RANKING_SIZE]],
            "rejected": {rejection.email: rejection.why for rejection in self.rejections},
        }
        if self.ticket is not None:
            data["ticket"] = {
                "category": self.ticket.category,
                "priority": self.ticket.priority.value,
                "language": self.ticket.language,
            }
        if tech is not None:
            data["tier"] = tech.tier
            data["load"] = self.load
            data["max_open"] = tech.max_open
        return data

    def explanation(self) -> str:
        """One line per technician who could not take it, e.g. "bob: no skill in printing"."""
        return "\n".join([*self.notes, *(rejection.line() for rejection in self.rejections)])


def weighted_load(load: OpenLoad) -> float:
    """An open load as one number: a number as it is, a list of priorities by `LOAD_BY_PRIORITY`."""
    if isinstance(load, bool):
        raise TypeError("an open load is a number or a list of priorities, not a bool")
    if isinstance(load, int | float):
        return float(load)
    return sum(LOAD_BY_PRIORITY[Priority(priority)] for priority in load)


def _number(value: float) -> str:
    return f"{value:g}"


def choose_technician(
    ticket: TicketNeeds,
    technicians: Sequence[Technician],
    *,
    now: datetime,
    loads: Mapping[str, OpenLoad] | None = None,
    last_assigned: Mapping[str, datetime] | None = None,
    exclude: Collection[str] | Mapping[str, str] = (),
    min_tier: int = MIN_TIER,
    max_tier: int = MAX_TIER,
) -> AssignmentDecision:
    """Pick the best technician for `ticket` at `now`, or explain why nobody fits.

    `loads` and `last_assigned` are keyed by email (missing: no open tickets, never assigned).
    `exclude` lists emails not to choose, or maps them to the reason to show ("the current
    assignee"). `min_tier`/`max_tier` bound the tiers considered (escalation uses them).
    """
    require_aware(now)
    if not technicians:
        return AssignmentDecision(technician=None, ticket=ticket, notes=("no technicians are configured",))
    load_of = {email.lower(): weighted_load(load) for email, load in (loads or {}).items()}
    last_of = {email.lower(): at for email, at in (last_assigned or {}).items()}
    excluded = _exclusions(exclude)
    category = ticket.category
    notes: list[str] = []
    rejections: dict[str, str] = {}

    in_bounds: list[Technician] = []
    for tech in technicians:
        why = _standing_rejection(tech, excluded, min_tier, max_tier)
        if why is None:
            in_bounds.append(tech)
        else:
            rejections[tech.email] = why

    as_triage = category == DEFAULT_CATEGORY
    if not as_triage and not any(
        tech.active and tech.email not in excluded and tech.skill(category) > 0 for tech in technicians
    ):
        as_triage = True
        notes.append(f"nobody has a skill in {category}: handled as triage by the lowest tier")
    triage_tier = min((tech.tier for tech in in_bounds), default=min_tier)

    fitting: list[Technician] = []
    for tech in in_bounds:
        why = (
            _skill_rejection(tech, category, as_triage, triage_tier)
            or _shift_rejection(tech, now)
            or _load_rejection(tech, load_of.get(tech.email, 0.0))
        )
        if why is None:
            fitting.append(tech)
        else:
            rejections[tech.email] = why

    language = ticket.language.strip().lower()
    if language not in UNDETERMINED_LANGUAGES and fitting:
        speakers = [tech for tech in fitting if tech.speaks(language)]
        if speakers:
            for tech in fitting:
                if not tech.speaks(language):
                    rejections[tech.email] = f"does not speak {language} (someone who fits does)"
            fitting = speakers
        else:
            notes.append(f"nobody who fits speaks {language}: chosen regardless of language")

    ordered_rejections = tuple(
        Rejection(tech.email, tech.handle, rejections[tech.email])
        for tech in technicians
        if tech.email in rejections
    )
    if not fitting:
        return AssignmentDecision(
            technician=None, ticket=ticket, rejections=ordered_rejections, notes=tuple(notes)
        )

    scored = [
        _score(tech, ticket, category if not as_triage else DEFAULT_CATEGORY, load_of.get(tech.email, 0.0))
        for tech in fitting
    ]
    scored.sort(key=lambda item: _order(item[0], item[1], last_of))
    best, best_total, best_parts = scored[0]
    if len(scored) > 1 and scored[1][1] == best_total:
        runner_up = scored[1][0]
        same_time = last_of.get(best.email) == last_of.get(runner_up.email)
        notes.append(
            "tie on score broken by email order" if same_time else "tie on score: least recently assigned"
        )
    return AssignmentDecision(
        technician=best,
        score=best_total,
        parts=best_parts,
        ticket=ticket,
        rejections=ordered_rejections,
        notes=tuple(notes),
        ranking=tuple((tech.email, total) for tech, total, _parts in scored),
        load=load_of.get(best.email, 0.0),
    )


def _exclusions(exclude: Collection[str] | Mapping[str, str]) -> dict[str, str]:
    if isinstance(exclude, Mapping):
        return {email.lower(): why for email, why in exclude.items()}
    return {email.lower(): "excluded" for email in exclude}


def _standing_rejection(
    tech: Technician, excluded: Mapping[str, str], min_tier: int, max_tier: int
) -> str | None:
    if tech.email in excluded:
        return excluded[tech.email]
    if not tech.active:
        return "inactive"
    if tech.tier < min_tier:
        return f"tier {tech.tier}, below tier {min_tier}"
    if tech.tier > max_tier:
        return f"tier {tech.tier}, above tier {max_tier}"
    return None


def _skill_rejection(tech: Technician, category: str, as_triage: bool, triage_tier: int) -> str | None:
    if as_triage:
        if tech.tier != triage_tier:
            return f"tier {tech.tier}: triage goes to tier {triage_tier}"
        return None
    if tech.skill(category) <= 0:
        return f"no skill in {category}"
    return None


def _shift_rejection(tech: Technician, now: datetime) -> str | None:
    if is_on_shift(tech, now):
        return None
    start = next_shift_start(tech, now)
    if start is None:  # pragma: no cover - only an always-on schedule has no start, and it is on
        return "off shift"
    return f"off shift until {describe_when(start, tech.zone, now)}"


def _load_rejection(tech: Technician, load: float) -> str | None:
    if load >= tech.max_open:
        return f"at max_open {_number(load)}/{tech.max_open}"
    return None


def _score(
    tech: Technician, ticket: TicketNeeds, category: str, load: float
) -> tuple[Technician, float, dict[str, float]]:
    if category == DEFAULT_CATEGORY:
        level = tech.skill(DEFAULT_CATEGORY) or TRIAGE_BASE_LEVEL
    else:
        level = tech.skill(category)
    language = ticket.language.strip().lower()
    tier_penalty = 0.0 if ticket.priority is Priority.URGENT else TIER_WEIGHT * (tech.tier - MIN_TIER)
    parts = {
        "skill": SKILL_WEIGHT * level,
        "language": LANGUAGE_WEIGHT if tech.speaks(language) else 0.0,
        "tier": -tier_penalty,
        "load": round(LOAD_WEIGHT * max(0.0, 1.0 - load / tech.max_open), 4),
    }
    # Rounded so that equal facts give equal totals and the tie-break decides, not float noise.
    return tech, round(sum(parts.values()), 4), parts


def _order(tech: Technician, total: float, last_of: Mapping[str, datetime]) -> tuple[Any, ...]:
    last = last_of.get(tech.email)
    # Best score first; then never assigned, then the longest ago; then the email, for stability.
    return (-total, last is not None, last.timestamp() if last is not None else 0.0, tech.email)


def escalate(
    ticket: TicketNeeds,
    technicians: Sequence[Technician],
    *,
    now: datetime,
    current_assignee: str | None,
    loads: Mapping[str, OpenLoad] | None = None,
    last_assigned: Mapping[str, datetime] | None = None,
    from_tier: int | None = None,
) -> AssignmentDecision:
    """The best technician of the next tier up that has anyone who fits, never the current assignee.

    The tier escalated from is `from_tier`, else the current assignee's, else 0 (an unassigned
    ticket escalates to first line, then up). Tiers are tried one at a time, tier+1 first.
    """
    current_email = current_assignee.strip().lower() if current_assignee else None
    current = next((tech for tech in technicians if tech.email == current_email), None)
    base = from_tier if from_tier is not None else (current.tier if current is not None else MIN_TIER - 1)
    exclude = {current_email: "the current assignee"} if current_email else {}
    per_tier: dict[int, AssignmentDecision] = {}
    for tier in range(base + 1, MAX_TIER + 1):
        decision = choose_technician(
            ticket,
            technicians,
            now=now,
            loads=loads,
            last_assigned=last_assigned,
            exclude=exclude,
            min_tier=tier,
            max_tier=tier,
        )
        if decision.technician is not None:
            note = f"escalated from tier {base} to tier {tier}" if base >= MIN_TIER else f"tier {tier}"
            return replace(decision, notes=(note, *decision.notes))
        per_tier[tier] = decision

    # Nobody: each technician is explained by the attempt at their own tier.
    rejections: list[Rejection] = []
    for tech in technicians:
        if tech.email == current_email:
            rejections.append(Rejection(tech.email, tech.handle, "the current assignee"))
            continue
        attempt = per_tier.get(tech.tier)
        found = None
        if attempt is not None:
            found = next((r for r in attempt.rejections if r.email == tech.email), None)
        why = found.why if found is not None else f"tier {tech.tier}, not above tier {base}"
        rejections.append(Rejection(tech.email, tech.handle, why))
    if base >= MAX_TIER:
        note = f"already at the top tier {MAX_TIER}: nobody to escalate to"
    else:
        note = f"nobody above tier {base} can take it now"
    return AssignmentDecision(technician=None, ticket=ticket, rejections=tuple(rejections), notes=(note,))
