"""Assignment: who fits, how they are scored, ties, urgent tickets, escalation, and why nobody fits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from models.ticket import Priority
from routing.assign import (
    LOAD_WEIGHT,
    SKILL_WEIGHT,
    TIER_WEIGHT,
    TicketNeeds,
    choose_technician,
    escalate,
    weighted_load,
)
from routing.people import Technician
from routing.shifts import parse_schedule

WARSAW = ZoneInfo("Europe/Warsaw")
# Monday 2026-01-12, 10:00 in Warsaw.
NOW = datetime(2026, 1, 12, 10, 0, tzinfo=WARSAW)
PRINTING_PL = TicketNeeds(category="printing", priority=Priority.NORMAL, language="pl")


def tech(handle: str, **overrides: Any) -> Technician:
    values: dict[str, Any] = {
        "name": handle.title(),
        "email": f"{handle}@example.test",
        "schedule": parse_schedule(["mon-fri 08:00-16:00"]),
        "tier": 1,
        "languages": ("pl", "en"),
        "timezone": "Europe/Warsaw",
        "max_open": 12,
        "skills": {"printing": 3},
        "active": True,
    }
    values.update(overrides)
    if isinstance(values["schedule"], str):
        values["schedule"] = parse_schedule([values["schedule"]])
    values["skills"] = MappingProxyType(dict(values["skills"]))
    return Technician(**values)


def chosen(decision: Any) -> str | None:
    return decision.technician.handle if decision.technician is not None else None


def test_picks_the_polish_printing_expert_on_shift() -> None:
    team = [
        tech("ola", skills={"printing": 2}),
        tech("piotr", skills={"printing": 5}, schedule="mon-fri 12:00-20:00"),  # off shift at 10:00
        tech("john", skills={"printing": 5}, languages=("en",)),
        tech("alicja", skills={"printing": 5}),
    ]
    decision = choose_technician(PRINTING_PL, team, now=NOW)
    assert chosen(decision) == "alicja"
    why = {r.handle: r.why for r in decision.rejections}
    assert why["piotr"] == "off shift until Mon 12:00 Europe/Warsaw"
    assert why["john"] == "does not speak pl (someone who fits does)"
    assert [email for email, _ in decision.ranking] == ["alicja@example.test", "ola@example.test"]
    assert decision.parts == {"skill": 50.0, "language": 30.0, "tier": -0.0, "load": LOAD_WEIGHT}
    assert decision.score == 100.0


def test_speakers_of_other_languages_when_nobody_who_fits_speaks_it() -> None:
    team = [tech("john", skills={"printing": 2}, languages=("en",)), tech("dana", languages=("de",))]
    decision = choose_technician(TicketNeeds("printing", Priority.NORMAL, "fr"), team, now=NOW)
    assert chosen(decision) == "dana"
    assert "nobody who fits speaks fr: chosen regardless of language" in decision.notes


def test_an_undetermined_language_prefers_no_one() -> None:
    team = [tech("ola", skills={"printing": 2}), tech("john", skills={"printing": 4}, languages=("en",))]
    decision = choose_technician(TicketNeeds("printing", Priority.NORMAL, "und"), team, now=NOW)
    assert chosen(decision) == "john"


def test_nobody_fits_explains_each_technician() -> None:
    team = [
        tech("alicja"),
        tech("bob", skills={"network": 4}),
        tech("carol", schedule="24/7"),
        tech("dave", active=False),
    ]
    at = datetime(2026, 1, 12, 17, 0, tzinfo=WARSAW)  # Monday, after alicja's shift
    decision = choose_technician(PRINTING_PL, team, now=at, loads={"carol@example.test": 12})
    assert decision.technician is None
    assert decision.explanation() == "\n".join(
        [
            "alicja: off shift until Tue 08:00 Europe/Warsaw",
            "bob: no skill in printing",
            "carol: at max_open 12/12",
            "dave: inactive",
        ]
    )
    assert decision.reason()["technician"] is None
    assert decision.reason()["rejected"]["bob@example.test"] == "no skill in printing"


def test_no_technicians_at_all() -> None:
    decision = choose_technician(PRINTING_PL, [], now=NOW)
    assert decision.technician is None
    assert decision.explanation() == "no technicians are configured"


def test_a_category_nobody_has_goes_to_first_line_as_triage() -> None:
    team = [tech("ola", skills={"network": 2}), tech("tomasz", tier=2, skills={"network": 5})]
    decision = choose_technician(TicketNeeds("plotters", Priority.NORMAL, "pl"), team, now=NOW)
    assert chosen(decision) == "ola"
    assert decision.notes[0] == "nobody has a skill in plotters: handled as triage by the lowest tier"


def test_triage_goes_to_first_line_generalists() -> None:
    team = [
        tech("ola", skills={"network": 2}),
        tech("ewa", skills={"triage": 4}),
        tech("tomasz", tier=2, skills={"triage": 5}),
    ]
    decision = choose_technician(TicketNeeds("triage", Priority.HIGH, "pl"), team, now=NOW)
    assert chosen(decision) == "ewa"
    assert {r.handle: r.why for r in decision.rejections}["tomasz"] == "tier 2: triage goes to tier 1"


def test_less_loaded_wins_at_equal_skill_and_priorities_weigh() -> None:
    team = [tech("ala"), tech("ola")]
    loads = {"ala@example.test": [Priority.URGENT, Priority.URGENT], "ola@example.test": [Priority.LOW] * 6}
    decision = choose_technician(PRINTING_PL, team, now=NOW, loads=loads)
    assert chosen(decision) == "ola"  # 6 low = 3.0 against 2 urgent = 4.0
    assert decision.load == 3.0
    assert decision.parts["load"] == LOAD_WEIGHT * (1 - 3 / 12)


def test_a_full_technician_does_not_fit() -> None:
    team = [tech("ala", skills={"printing": 5}), tech("ola", skills={"printing": 1})]
    decision = choose_technician(
        PRINTING_PL, team, now=NOW, loads={"ala@example.test": [Priority.URGENT] * 6}
    )
    assert chosen(decision) == "ola"
    assert decision.rejections[0].why == "at max_open 12/12"
    weighted = choose_technician(PRINTING_PL, team, now=NOW, loads={"ALA@example.test": 12.5})
    assert weighted.rejections[0].why == "at max_open 12.5/12"


def test_ties_go_to_the_least_recently_assigned_never_assigned_first() -> None:
    team = [tech("ala"), tech("ola"), tech("ula")]
    last = {"ala@example.test": NOW - timedelta(hours=1), "ola@example.test": NOW - timedelta(hours=5)}
    decision = choose_technician(PRINTING_PL, team, now=NOW, last_assigned=last)
    assert chosen(decision) == "ula"
    assert "tie on score: least recently assigned" in decision.notes
    last["ula@example.test"] = NOW
    assert chosen(choose_technician(PRINTING_PL, team, now=NOW, last_assigned=last)) == "ola"


def test_ties_with_the_same_history_go_by_email() -> None:
    team = [tech("ula"), tech("ala")]
    decision = choose_technician(PRINTING_PL, team, now=NOW)
    assert chosen(decision) == "ala"
    assert "tie on score broken by email order" in decision.notes


def test_lowest_tier_able_first_but_urgent_goes_to_the_best() -> None:
    team = [tech("ola", skills={"printing": 3}), tech("tomasz", tier=2, skills={"printing": 5})]
    assert SKILL_WEIGHT * 3 > SKILL_WEIGHT * 5 - TIER_WEIGHT
    assert chosen(choose_technician(PRINTING_PL, team, now=NOW)) == "ola"
    urgent = TicketNeeds("printing", Priority.URGENT, "pl")
    decision = choose_technician(urgent, team, now=NOW)
    assert chosen(decision) == "tomasz"
    assert decision.parts["tier"] == 0.0


def test_exclusions_and_tier_bounds() -> None:
    team = [tech("ola"), tech("tomasz", tier=2), tech("zofia", tier=3)]
    decision = choose_technician(PRINTING_PL, team, now=NOW, exclude=["OLA@example.test"], max_tier=2)
    assert chosen(decision) == "tomasz"
    why = {r.handle: r.why for r in decision.rejections}
    assert why == {"ola": "excluded", "zofia": "tier 3, above tier 2"}
    decision = choose_technician(PRINTING_PL, team, now=NOW, min_tier=3)
    assert chosen(decision) == "zofia"
    assert {r.handle: r.why for r in decision.rejections}["ola"] == "tier 1, below tier 3"


def test_escalation_goes_to_the_next_tier_excluding_the_current_assignee() -> None:
    team = [
        tech("ola", tier=1),
        tech("ewa", tier=1, skills={"printing": 5}),
        tech("tomasz", tier=2, skills={"printing": 2}),
        tech("zofia", tier=3, skills={"printing": 5}),
    ]
    decision = escalate(PRINTING_PL, team, now=NOW, current_assignee="ola@example.test")
    assert chosen(decision) == "tomasz"
    assert decision.notes[0] == "escalated from tier 1 to tier 2"


def test_escalation_skips_a_tier_where_nobody_fits() -> None:
    team = [
        tech("ola", tier=1),
        tech("tomasz", tier=2, skills={"printing": 5}, schedule="sat 10:00-14:00"),
        tech("zofia", tier=3, skills={"printing": 1}),
    ]
    decision = escalate(PRINTING_PL, team, now=NOW, current_assignee="ola@example.test")
    assert chosen(decision) == "zofia"
    assert decision.notes[0] == "escalated from tier 1 to tier 3"


def test_escalation_never_returns_the_current_assignee() -> None:
    team = [tech("ola", tier=1), tech("tomasz", tier=2)]
    decision = escalate(PRINTING_PL, team, now=NOW, current_assignee="tomasz@example.test")
    assert decision.technician is None
    assert decision.explanation() == "\n".join(
        [
            "nobody above tier 2 can take it now",
            "ola: tier 1, not above tier 2",
            "tomasz: the current assignee",
        ]
    )


def test_escalation_with_nobody_above_explains_each() -> None:
    team = [
        tech("ola", tier=1),
        tech("tomasz", tier=2, skills={"network": 5}),
        tech("zofia", tier=3, schedule="sat 10:00-14:00"),
    ]
    decision = escalate(PRINTING_PL, team, now=NOW, current_assignee="ola@example.test")
    assert decision.technician is None
    assert decision.explanation() == "\n".join(
        [
            "nobody above tier 1 can take it now",
            "ola: the current assignee",
            "tomasz: no skill in printing",
            "zofia: off shift until Sat 10:00 Europe/Warsaw",
        ]
    )


def test_escalation_from_the_top_tier() -> None:
    team = [tech("ola", tier=1), tech("zofia", tier=3)]
    decision = escalate(PRINTING_PL, team, now=NOW, current_assignee="zofia@example.test")
    assert decision.technician is None
    assert decision.notes == ("already at the top tier 3: nobody to escalate to",)


def test_escalating_an_unassigned_ticket_starts_at_first_line() -> None:
    team = [tech("ola", tier=1), tech("tomasz", tier=2, skills={"printing": 5})]
    decision = escalate(PRINTING_PL, team, now=NOW, current_assignee=None)
    assert chosen(decision) == "ola"


def test_the_reason_is_json() -> None:
    decision = choose_technician(PRINTING_PL, [tech("ala"), tech("ola")], now=NOW)
    reason = json.loads(json.dumps(decision.reason()))
    assert reason["technician"] == "ala@example.test"
    assert reason["ticket"] == {"category": "printing", "priority": "normal", "language": "pl"}
    assert reason["ranking"][1]["email"] == "ola@example.test"
    assert set(reason["parts"]) == {"skill", "language", "tier", "load"}


def test_weighted_load() -> None:
    assert weighted_load([Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.URGENT]) == 5.0
    assert weighted_load(3) == 3.0
    with pytest.raises(TypeError):
        weighted_load(True)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="naive"):
        choose_technician(PRINTING_PL, [tech("ala")], now=datetime(2026, 1, 12, 10))


def test_other_zones_are_judged_in_their_own_time() -> None:
    team = [tech("kenji", timezone="Asia/Tokyo", languages=("pl",)), tech("ala", schedule="sat 08:00-09:00")]
    at = datetime(2026, 1, 12, 1, 0, tzinfo=UTC)  # Monday 10:00 in Tokyo, 02:00 in Warsaw
    assert chosen(choose_technician(PRINTING_PL, team, now=at)) == "kenji"
