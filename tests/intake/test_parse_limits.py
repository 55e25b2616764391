"""What one mail may put into the database (issue 8, finding 6): no control character reaches a column,
deeply nested HTML still gives its text, and references, To/Cc addresses and attachments are capped
per mail, with what was left out counted on the ticket."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from helpdesk.app import App
from models.base import Base
from models.message import Attachment, Message, MessageRef
from models.ticket import Participant, Ticket, TicketEvent
from tests.conftest import deliver
from tests.mail import SUPPORT, make_mail

DATA = Path(__file__).resolve().parent.parent / "data"
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # tab and newline are text
LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTILINE_COLUMNS = {("messages", "text"), ("messages", "new_text"), ("outbox", "body"), ("outbox", "data")}


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return [s for item in value for s in strings(item)]
    if isinstance(value, dict):
        return [s for item in (*value.keys(), *value.values()) for s in strings(item)]
    return []


def control_characters_in_database(app: App) -> list[str]:
    found: list[str] = []
    with app.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).mappings():
                for column, value in row.items():
                    pattern = CONTROL if (table.name, column) in MULTILINE_COLUMNS else LINE_CONTROL
                    for text in strings(value):
                        if pattern.search(text):
                            found.append(f"{table.name}.{column}: {text[:80]!r}")
    return found


def test_nul_and_control_characters_never_reach_a_database_column(app: App) -> None:
    # NUL in a subject, a name, a body, a header, a file name and a Message-ID: PostgreSQL refuses
    # NUL in text, so this mail was quarantined there; SQLite stored the escape sequences.
    report = deliver(app, (DATA / "control-characters-and-nul-in-headers-and-body.eml").read_bytes())
    assert report.tickets_created == 1, report
    assert control_characters_in_database(app) == []
    with app.sessions() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.subject == "Printer broken [31m again"
        inbound = next(m for m in ticket.messages if m.direction == "in")
        assert inbound.text == "The printer on floor 3[31m prints\tnothing.\nSecond line."
        assert [a.filename for a in inbound.attachments] == ["log_.txt"]
        assert inbound.cc_addrs == ["bob@example.com"]  # "eve<NUL>@example.com" is no address


def omitted_event(app: App) -> dict[str, int]:
    with app.sessions() as session:
        events = list(session.scalars(select(TicketEvent).where(TicketEvent.kind == "omitted")))
        assert len(events) == 1, [e.reason for e in events]
        return dict(events[0].data)


def count(app: App, model: type[Any]) -> int:
    with app.sessions() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_one_mail_lists_at_most_the_attachment_row_cap(make_app: Callable[..., App]) -> None:
    # 50,000 attachments made 50,000 rows; 1,000 show it as well and parse in seconds.
    app = make_app(intake={"max_attachment_rows": 100})
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "mallory@example.com", SUPPORT, "many files"
    msg["Message-ID"] = "<many-attachments@example.com>"
    msg.set_content("see the files")
    for n in range(1000):
        msg.add_attachment(b"x", maintype="application", subtype="octet-stream", filename=f"f{n}.bin")
    report = deliver(app, msg.as_bytes())
    assert report.tickets_created == 1
    assert count(app, Attachment) == 100
    assert omitted_event(app) == {"attachments": 900}


def test_one_mail_stores_at_most_the_reference_cap(make_app: Callable[..., App]) -> None:
    # 38,000 references made 38,000 rows; the root and the newest ones are kept.
    app = make_app(intake={"max_references": 100})
    refs = [f"<ref-{n}@example.com>" for n in range(5000)]
    report = deliver(app, make_mail(references=refs, in_reply_to="<parent@example.com>"))
    assert report.tickets_created == 1
    assert count(app, MessageRef) == 100
    assert omitted_event(app) == {"references": 4901}
    with app.sessions() as session:
        kept = set(session.scalars(select(MessageRef.ref)))
        assert {"parent@example.com", "ref-0@example.com", "ref-4999@example.com"} <= kept
        message = session.scalars(select(Message).where(Message.direction == "in")).one()
        assert message.in_reply_to == "parent@example.com"


def test_one_mail_puts_at_most_the_participant_cap_on_a_ticket(make_app: Callable[..., App]) -> None:
    # 9,800 addresses in To and Cc made 9,800 participants.
    app = make_app(intake={"max_participants": 50})
    to = ", ".join([SUPPORT, *(f"p{n}@example.org" for n in range(1500))])
    cc = ", ".join(f"c{n}@example.org" for n in range(500))
    report = deliver(app, make_mail(to=to, cc=cc))
    assert report.tickets_created == 1
    assert count(app, Participant) <= 51  # the requester and at most 50 from To and Cc
    assert omitted_event(app) == {"participants": 1951}


def test_html_nested_255_deep_still_gives_its_text(app: App) -> None:
    report = deliver(app, (DATA / "html-nested-255-deep.eml").read_bytes())
    assert report.tickets_created == 1
    with app.sessions() as session:
        message = session.scalars(select(Message).where(Message.direction == "in")).one()
        assert message.text == "The printer on floor 3 is broken, please help."
