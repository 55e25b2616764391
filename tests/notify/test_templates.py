"""Every template renders in every language with the context the code gives it (StrictUndefined)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from notify.render import LANGUAGES, TEMPLATES, Renderer
from tickets.commands import COMMAND_HELP
from tickets.errors import CommandError

TICKET = SimpleNamespace(
    number=42,
    subject="Drukarka nie drukuje",
    status="open",
    category="printing",
    priority="high",
    requester="zofia@example.pl",
    assignee="alicja@example.test",
)
TECH = SimpleNamespace(name="Alicja Nowak", email="alicja@example.test")
COORD = SimpleNamespace(name="Marta", email="coord@example.test")
CONTEXT: dict[str, dict[str, Any]] = {
    "ack": {
        "requester_name": "Zofia",
        "assignee_name": "Alicja Nowak",
        "articles": [
            SimpleNamespace(article=3, title="Printer offline", excerpt="Turn it off and on.", url=""),
            SimpleNamespace(
                article=4, title="Toner", excerpt="Replace it.", url="https://kb.example/kb-4.html"
            ),
        ],
    },
    "requester_waiting_reminder": {"requester_name": "Zofia", "close_days": 4},
    "requester_auto_resolved": {"requester_name": "Zofia"},
    "technician_self_service": {"technician": TECH, "articles": [3, 4]},
    "coordinator_low_rating": {"coordinator": COORD, "rating": 1, "comment": "nobody called back"},
    "requester_assigned": {"requester_name": "Zofia", "technician_name": "Alicja Nowak"},
    "requester_waiting": {"requester_name": ""},
    "requester_resolved": {"requester_name": "Zofia", "resolution": "toner replaced"},
    "requester_reopened": {"requester_name": "Zofia"},
    "relay": {
        "text": "Czy jest włączona?",
        "technician_name": "Alicja Nowak",
        "notices": ["waiting", "resolved", "reopened"],
        "ticket_resolution": "toner",
    },
    "technician_assigned": {
        "technician": TECH,
        "requester_text": "line one\nline two",
        "routing": "rule:x",
        "score": 97.5,
        "parts": {"skill": 50.0, "tier": -0.0},
        "similar": [SimpleNamespace(number=7, subject="old", resolution="fixed", score=0.5)],
        "escalated_from": "bob@example.test",
        "reason": "needs a specialist",
    },
    "technician_requester_replied": {"technician": TECH, "text": "still broken"},
    "technician_stranger_wrote": {
        "technician": TECH,
        "stranger": "mallory@evil.example",
        "stranger_name": "Mallory",
        "text": "let me in",
    },
    "coordinator_stranger_wrote": {
        "coordinator": COORD,
        "routing": "r",
        "stranger": "mallory@evil.example",
        "stranger_name": "",
        "text": "let me in",
    },
    "technician_sla_warning": {"technician": TECH, "target": "first response", "due_at": "2026-11-24T17:00"},
    "command_error": {"errors": [CommandError(2, "#resolve", "needs a note")], "help": COMMAND_HELP},
    "refusal": {"why": "its sender does not match", "renew": False, "inactive": False},
    "coordinator_unassigned": {
        "coordinator": COORD,
        "routing": "r",
        "explanation": ["bob: off shift"],
        "reason": "new",
    },
    "coordinator_escalated": {
        "coordinator": COORD,
        "routing": "r",
        "reason": "sla",
        "previous": "bob",
        "new": "Kasia",
        "new_email": "kasia@example.test",
        "tier": 2,
    },
    "coordinator_sla_breach": {
        "coordinator": COORD,
        "routing": "r",
        "target": "resolution",
        "due_at": "x",
        "escalation": "to kasia",
    },
    "coordinator_sla_warning": {"coordinator": COORD, "routing": "r", "target": "resolution", "due_at": "x"},
    "technician_delivery_failed": {
        "technician": TECH,
        "recipient": "zofia@example.pl",
        "error": "550 5.1.1 no such user",
        "kind": "ack",
        "queued_at": "2026-11-24 09:00 UTC",
    },
    "coordinator_delivery_failed": {
        "coordinator": COORD,
        "recipient": "zofia@example.pl",
        "error": "gave up after 9 attempts: 451 4.3.0 try later",
        "kind": "resolved",
        "queued_at": "2026-11-24 09:00 UTC",
    },
    "staff_digest": {
        "recipient_name": "Alicja Nowak",
        "count": 243,
        "tickets": 240,
        "items": [
            {
                "ticket": 42,
                "kind": "technician_assigned",
                "subject": "Drukarka",
                "requester": "zofia@example.pl",
                "reply_to": "support+w42.1.x@example.test",
                "at": "09:05",
            },
            {
                "ticket": 43,
                "kind": "something_new",
                "subject": "",
                "requester": "",
                "reply_to": "r",
                "at": "x",
            },
        ],
        "more": 41,
        "since": "2026-11-24 09:00 UTC",
        "limit": 30,
    },
    "staff_digest_subject": {"count": 42},
    "sign_in": {
        "person": "Alicja Nowak",
        "link": "https://desk.example.test/auth?t=42",
        "minutes": 15,
        "desk": "support@example.test",
    },
    "sign_in_subject": {
        "person": "Alicja Nowak",
        "link": "l",
        "minutes": 15,
        "desk": "support42@example.test",
    },
}


def test_every_template_has_a_context_here() -> None:
    names = {
        p.name.removesuffix(".txt.j2")
        for p in (TEMPLATES / "en").glob("*.txt.j2")
        if not p.name.startswith("_")
    }
    assert names == set(CONTEXT)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("name", sorted(CONTEXT))
def test_renders(name: str, language: str) -> None:
    text = Renderer().render(name, language, ticket=TICKET, helpdesk_name="Helpdesk", **CONTEXT[name])
    assert text.strip()
    assert "42" in text
    assert (TEMPLATES / language / f"{name}.txt.j2").exists(), f"{name} has no {language} version"
