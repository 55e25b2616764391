"""A desk seeded with tickets for the dashboard's tests and benchmark: technicians in several time
zones, a coordinator, and N tickets over the past weeks with their mail, events, routing reasons,
assignments, SLA steps and a few `#category` corrections. Deterministic for a given seed.

Rows are inserted in bulk (the pipeline would take minutes for 20,000 tickets); what they hold is
what the pipeline and the commands write: the same columns, events and routing dictionaries.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from models.message import Message
from models.ticket import EventKind, Priority, Ticket, TicketEvent, TicketStatus
from routing.people import parse_people
from tickets.roster import import_people

COORDINATOR = "coordinator@example.test"
TECHNICIANS: tuple[dict[str, Any], ...] = (
    {"name": "Alicja Nowak", "email": "alicja@example.test", "languages": ["pl", "en"], "timezone": "Europe/Warsaw",
     "shifts": ["mon-fri 08:00-16:00"], "skills": {"network": 5, "accounts": 3, "printing": 2}},
    {"name": "Bartosz Wiśniewski", "email": "bartosz@example.test", "languages": ["pl"], "timezone": "Europe/Warsaw",
     "shifts": ["mon-fri 12:00-20:00"], "skills": {"hardware": 4, "printing": 4}},
    {"name": "Claire Dubois", "email": "claire@example.test", "languages": ["en", "de"], "timezone": "Europe/Berlin",
     "shifts": ["mon-thu 07:00-15:00", "sat 10:00-14:00"], "skills": {"software": 4, "accounts": 4}},
    {"name": "Dan Miller", "email": "dan@example.test", "languages": ["en"], "timezone": "America/New_York",
     "shifts": ["mon-fri 09:00-17:00"], "skills": {"network": 3, "software": 3, "triage": 3}},
    {"name": "Emi Tanaka", "email": "emi@example.test", "languages": ["en"], "timezone": "Asia/Tokyo",
     "shifts": ["mon-fri 09:00-18:00"], "skills": {"hardware": 3, "network": 2}, "tier": 2},
    {"name": "Felix Braun", "email": "felix@example.test", "languages": ["de", "en"], "timezone": "Europe/Berlin",
     "shifts": ["sun-thu 22:00-06:00"], "skills": {"network": 4, "security": 4}, "tier": 2},
    {"name": "Grace Lee", "email": "grace@example.test", "languages": ["en"], "timezone": "America/Los_Angeles",
     "shifts": ["tue-sat 10:00-18:00"], "skills": {"accounts": 5, "software": 2}, "max_open": 6},
)  # fmt: skip
CATEGORIES = ("network", "hardware", "software", "accounts", "printing", "security", "triage")
LANGUAGES = ("en", "en", "en", "pl", "de")
SUBJECTS = (
    "VPN is down since this morning", "Drukarka nie drukuje", "Passwort zurücksetzen", "Laptop will not boot",
    "Outlook keeps asking for my password", "Brak dostępu do sieci", "New starter needs an account",
    "Monitor flickers", "Cannot install the update", "Phishing mail received", "WLAN im 2. Stock langsam",
)  # fmt: skip
MODEL = "category-20261101T090000Z-5e1f0a2b"
STATUS_WEIGHTS = (
    (TicketStatus.CLOSED, 30), (TicketStatus.RESOLVED, 35), (TicketStatus.OPEN, 12),
    (TicketStatus.IN_PROGRESS, 10), (TicketStatus.WAITING, 5), (TicketStatus.NEW, 8),
)  # fmt: skip


def seed_roster(session: Session) -> None:
    people = parse_people(
        {
            "technician": [dict(t) for t in TECHNICIANS],
            "coordinator": [{"name": "Cora Ordinator", "email": COORDINATOR}],
        }
    )
    import_people(session, people)


def _routing(rng: random.Random, category: str, priority: Priority) -> dict[str, Any]:
    roll = rng.random()
    decision: dict[str, Any]
    if roll < 0.3:
        decision = {
            "value": category,
            "source": "rule",
            "rule": f"{category}-words",
            "reason": f"rule:{category}-words",
        }
    elif roll < 0.85:
        conf = round(rng.uniform(0.45, 0.99), 2)
        decision = {
            "value": category, "source": "model", "model_version": MODEL, "confidence": conf,
            "top_terms": ["vpn", "password", "printer", "drukarka"][: rng.randint(1, 4)],
            "reason": f"model:{MODEL} confidence={conf:.2f}",
        }  # fmt: skip
    else:
        decision = {"value": "triage", "source": "default", "detail": "no rule matched and the model was unsure",
                    "reason": "default"}  # fmt: skip
    return {
        "category": decision,
        "priority": {"value": priority.value, "source": "default", "reason": "default"},
        "tags": [],
        "assignee": None,
        "matched_rules": [],
    }


def seed_tickets(session: Session, count: int, *, now: datetime, days: int = 56, seed: int = 7) -> None:
    """`count` tickets opened over the `days` before `now`."""
    rng = random.Random(seed)
    tickets: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    statuses = [s for s, _ in STATUS_WEIGHTS]
    weights = [w for _, w in STATUS_WEIGHTS]
    for number in range(1, count + 1):
        created = now - timedelta(seconds=rng.uniform(0, days * 86400) ** 1.0)
        status = rng.choices(statuses, weights)[0]
        if (now - created).days > 14 and status not in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            status = rng.choice((TicketStatus.RESOLVED, TicketStatus.CLOSED, status))
        priority = rng.choices(list(Priority), (15, 60, 20, 5))[0]
        category = rng.choice(CATEGORIES)
        tech = rng.choice(TECHNICIANS)
        assignee = None if status is TicketStatus.NEW and rng.random() < 0.7 else tech["email"]
        first = created + timedelta(minutes=rng.uniform(5, 600)) if status is not TicketStatus.NEW else None
        resolved = (
            min(now, created + timedelta(hours=rng.uniform(1, 120)))
            if status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
            else None
        )
        subject = rng.choice(SUBJECTS)
        routing = _routing(rng, category, priority)
        sla_done = (
            ["first_response_breach"]
            if status in (TicketStatus.NEW, TicketStatus.OPEN) and rng.random() < 0.3
            else []
        )
        tickets.append(
            {
                "id": number, "subject": f"{subject} ({number})", "status": status,
                "category": routing["category"]["value"], "priority": priority,
                "requester": f"user{number % 997}@example.com", "requester_name": f"User {number % 997}",
                "assignee": assignee, "assigned_at": created if assignee else None,
                "language": rng.choice(LANGUAGES), "tags": [], "routing": routing, "created_at": created,
                "updated_at": resolved or first or created, "first_response_at": first, "resolved_at": resolved,
                "closed_at": resolved if status is TicketStatus.CLOSED else None,
                "resolution": "Restarted the service and confirmed with the user." if resolved else None,
                "sla_done": sla_done,
            }
        )  # fmt: skip
        messages.append(
            {
                "ticket_id": number, "direction": "in", "kind": "requester",
                "message_id": f"seed-{number}@example.com", "references": [], "from_addr": f"user{number % 997}@example.com",
                "from_name": f"User {number % 997}", "to_addrs": ["support@example.test"], "cc_addrs": [],
                "subject": subject, "text": f"Hello,\n\n{subject.lower()} — please help.\n\nThanks",
                "new_text": f"Hello,\n\n{subject.lower()} — please help.", "internal": False, "language": "en",
                "sent_at": created, "created_at": created,
            }
        )  # fmt: skip
        events.append(
            _event(number, created, "system", EventKind.CREATED, None, TicketStatus.NEW.value, "opened")
        )
        if assignee:
            data = {
                "technician": assignee, "score": round(rng.uniform(5, 9), 2),
                "parts": {"skill": 4.0, "language": 2.0, "tier": 0.0, "load": round(rng.uniform(0, 2), 2)},
                "notes": [], "ranking": [{"email": assignee, "score": 8.1}], "rejected": {}, "load": 2.0,
                "max_open": 10, "tier": 1,
            }  # fmt: skip
            events.append(
                _event(number, created, "system", EventKind.ASSIGNED, None, assignee, "best on shift", data)
            )
        if status is not TicketStatus.NEW:
            events.append(_event(number, created, "system", EventKind.STATUS, "new", "open", "assigned"))
        if status is TicketStatus.WAITING and first:
            events.append(_event(number, first, tech["email"], EventKind.STATUS, "open", "waiting", "asked"))
        if resolved:
            events.append(
                _event(number, resolved, tech["email"], EventKind.STATUS, "open", "resolved", "resolved")
            )
        if routing["category"]["source"] == "model" and rng.random() < 0.12:
            events.append(
                _event(number, created + timedelta(minutes=30), tech["email"], EventKind.CATEGORY, category, "network",
                       "corrected by hand")
            )  # fmt: skip
    session.execute(insert(Ticket), tickets)
    session.execute(insert(Message), messages)
    session.execute(insert(TicketEvent), events)


def _event(
    ticket: int, at: datetime, actor: str, kind: EventKind, old: str | None, new: str | None, reason: str,
    data: dict[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    return {
        "ticket_id": ticket, "at": at, "actor": actor, "kind": kind.value, "old": old, "new": new,
        "reason": reason, "data": data or {},
    }  # fmt: skip
