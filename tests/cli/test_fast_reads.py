"""The listings read with the DBAPI alone (tickets/fast_queries.py) show exactly what the ORM reads show.

A desk on each database gets real mail processed and delivered (tickets with attachments, a
reply, a verdict from a trusted Authentication-Results, a rating, quarantined mail); then every
view `tickets list`, `tickets show`, `quarantine list` and `status` print, as JSON and as text, is built
both ways and compared. A guard holds models/dbapi.py's column kinds to the mapped metadata.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Boolean, DateTime, Enum, select
from sqlalchemy.types import JSON

from helpdesk.app import App
from helpdesk.cli.status import _mailbox_view, status_view
from helpdesk.views import quarantine_view, render_ticket, table, ticket_detail, ticket_summary
from intake.fast_status import read_status
from intake.imap_state import mailbox_statuses
from intake.quarantine import quarantined
from intake.raw_keys import Incoming
from models.base import Base
from models.budget import MailBudget
from models.dbapi import COLUMN_KINDS, DELIVERY_KINDS, Database
from models.heartbeat import DaemonRow
from models.loop import Satisfaction
from models.mailbox_state import MailboxConnState, MailboxState
from models.raw_message import RawMessage, RawStatus
from models.ticket import Ticket, TicketStatus
from notify.budget_report import window_start
from tests.conftest import deliver
from tests.mail import make_mail
from tickets import fast_queries, queries
from tickets.fast_queries import TicketFilter

MX = "mx.example.test"


@pytest.fixture
def busy_desk(make_app: Callable[..., App]) -> App:
    app = make_app(security={"trusted_authserv_ids": [MX]})
    proven = make_mail(
        sender="Zofia <zofia@klient.example.pl>",
        message_id="<first@klient.example.pl>",
        subject="Drukarka nie drukuje",
        headers={"Authentication-Results": f"{MX}; dmarc=pass header.from=klient.example.pl"},
        attachments=[("log.txt", "text/plain", b"paper jam\n")],
    )
    deliver(
        app,
        proven,
        make_mail(sender="Bob <bob@example.com>", message_id="<vpn@example.com>", subject="VPN is down"),
        make_mail(sender="carol@example.org", message_id="<c@example.org>", subject="Password reset"),
    )
    deliver(
        app,
        make_mail(
            sender="Zofia <zofia@klient.example.pl>",
            message_id="<second@klient.example.pl>",
            in_reply_to="<first@klient.example.pl>",
            references=["<first@klient.example.pl>"],
            subject="Re: Drukarka nie drukuje",
        ),
    )
    app.sender.deliver_due()
    list(
        app.store.store_many([Incoming(b"From: x@example.com\r\n\r\nbig", "smtp", refused="over the limit")])
    )
    with app.sessions() as session:
        first = session.get(Ticket, 1)
        assert first is not None
        session.add(Satisfaction(ticket_id=1, rating=4, comment="quick\nthanks", category=first.category))
        closed = session.get(Ticket, 3)
        assert closed is not None
        closed.status = TicketStatus.CLOSED
        session.commit()
    return app


def fast(app: App) -> Database:
    database = Database.open(app.settings.database)
    assert database is not None, app.settings.database.url
    return database


FILTERS = [
    TicketFilter(),
    TicketFilter(include_closed=True),
    TicketFilter(statuses=[TicketStatus.CLOSED, TicketStatus.NEW]),
    TicketFilter(requester="ZOFIA@klient.example.pl"),
    TicketFilter(assignee="nobody@example.test"),
    TicketFilter(include_closed=True, limit=2),
    TicketFilter(include_closed=True, newest_first=True, limit=2),
]


def test_tickets_list_reads_the_same_either_way(busy_desk: App) -> None:
    with busy_desk.sessions() as session:
        created = session.scalars(select(Ticket.created_at).order_by(Ticket.id)).all()
    since = [
        TicketFilter(include_closed=True, since=created[1]),
        TicketFilter(since=created[-1] + timedelta(1)),
    ]
    with fast(busy_desk) as db, busy_desk.sessions() as session:
        for which in [*FILTERS, *since]:
            orm = queries.list_tickets(session, which)
            ids = queries.message_ids_by_ticket(session, [t.id for t in orm])
            expected = [ticket_summary(t, ids.get(t.id, [])) for t in orm]
            mine = fast_queries.list_tickets(db, which)
            my_ids = fast_queries.message_ids_by_ticket(db, [t.id for t in mine])
            got = [ticket_summary(t, my_ids.get(t.id, [])) for t in mine]
            assert json.dumps(got) == json.dumps(expected), which
            assert fast_queries.count_tickets(db, which) == queries.count_tickets(session, which), which
        assert len(fast_queries.list_tickets(db, TicketFilter(include_closed=True))) == 3
        assert table(["#"], [[v["number"]] for v in got])  # the table renders the same values


def test_tickets_show_reads_the_same_either_way(busy_desk: App) -> None:
    with fast(busy_desk) as db, busy_desk.sessions() as session:
        for number in (1, 2, 3, 99):
            record = queries.ticket_record(session, number)
            mine = fast_queries.ticket_record(db, number)
            if record is None:
                assert mine is None
                continue
            assert mine is not None
            expected, got = ticket_detail(record), ticket_detail(mine)
            assert json.dumps(got) == json.dumps(expected)
            assert render_ticket(got) == render_ticket(expected)
        shown = ticket_detail(fast_queries.ticket_record(db, 1))  # type: ignore[arg-type]
    # What the comparison covered: mail both ways, an attachment, a delivery, a verdict, a rating.
    assert {m["direction"] for m in shown["messages"]} == {"in", "out"}
    assert any(m["attachments"] for m in shown["messages"])
    assert any(m["delivery"] for m in shown["messages"])
    assert any(m["authentication"] for m in shown["messages"])
    assert shown["satisfaction"] is not None and shown["events"] and shown["participants"]


def test_quarantine_list_reads_the_same_either_way(busy_desk: App) -> None:
    with fast(busy_desk) as db, busy_desk.sessions() as session:
        expected = [quarantine_view(r) for r in quarantined(session)]
        got = [quarantine_view(r) for r in fast_queries.quarantined(db)]
        full = [quarantine_view(r, full=True) for r in fast_queries.quarantined(db)]
        assert full == [quarantine_view(r, full=True) for r in quarantined(session)]
    assert json.dumps(got) == json.dumps(expected)
    assert len(got) == 1


def _kind(column_type: object) -> str | None:
    if isinstance(column_type, Enum) and column_type.enum_class is not None:
        return column_type.enum_class.__name__
    if isinstance(column_type, DateTime) or isinstance(getattr(column_type, "impl", None), DateTime):
        return "datetime"
    if isinstance(column_type, JSON):
        return "json"
    if isinstance(column_type, Boolean):
        return "bool"
    return None


@pytest.mark.parametrize("table", sorted(COLUMN_KINDS))
def test_the_column_kinds_are_the_mapped_types(table: str) -> None:
    mapped = {c.name: _kind(c.type) for c in Base.metadata.tables[table].columns}
    kinds = {name: kind for name, kind in mapped.items() if kind is not None}
    if table == "outbox":  # only a delivery's columns are read
        assert {name: kinds[name] for name in DELIVERY_KINDS} == dict(DELIVERY_KINDS)
    else:
        assert dict(COLUMN_KINDS[table]) == kinds


def test_status_reads_the_same_either_way(busy_desk: App) -> None:
    now = datetime.now(UTC)
    with busy_desk.sessions() as session:
        session.add_all(
            [
                DaemonRow(
                    holder="mx1:41", host="mx1", pid=41, started_at=now - timedelta(hours=1), beat_at=now
                ),
                DaemonRow(
                    holder="mx2:42",
                    host="mx2",
                    pid=42,
                    started_at=now - timedelta(hours=2),
                    beat_at=now - timedelta(minutes=5),
                ),
                MailboxState(
                    name="support",
                    server="imap.example.test:993",
                    holder="mx1:41",
                    state=MailboxConnState.IDLE,
                ),
                MailboxState(
                    name="sales", server="imap.example.test:993", idle_supported=True, last_error="refused"
                ),
                MailBudget(
                    scope="auto-domain:spam.example",
                    window_start=window_start(now) - timedelta(minutes=10),
                    sent=0,
                    suppressed=3,
                ),
                MailBudget(
                    scope="auto", window_start=window_start(now) - timedelta(minutes=10), sent=4, suppressed=1
                ),
                MailBudget(
                    scope="auto", window_start=window_start(now) - timedelta(hours=3), sent=9, suppressed=9
                ),
            ]
        )
        claimed = session.scalars(select(RawMessage).order_by(RawMessage.id)).first()
        assert claimed is not None
        claimed.status, claimed.claimed_by = RawStatus.PROCESSING, "mx1:41"
        session.add(
            RawMessage(source="smtp", dedupe_key="w" * 64, size=1, data=b"x", envelope_to=[])
        )  # waiting
        session.commit()
    with fast(busy_desk) as db:
        got = status_view(busy_desk.settings, db)
        fast_mailboxes = {m.name: m for m in read_status(db, busy_desk.settings.limits, now).mailboxes}
    expected = status_view(busy_desk.settings, None)
    assert json.dumps(got) == json.dumps(expected)
    assert [d["silent"] for d in got["daemons"]] == [True, False]  # oldest first
    assert got["daemons"][1]["holds"] == {"stored": 1, "outgoing": 0, "mailboxes": ["support"]}
    assert got["automatic_mail_last_hour"]["suppressed_domains"] == {"spam.example": 3}
    assert got["oldest_waiting"] is not None
    orm_mailboxes = {m.name: m for m in mailbox_statuses(busy_desk.sessions)}
    for name in ("support", "sales"):
        assert _mailbox_view(name, fast_mailboxes[name]) == _mailbox_view(name, orm_mailboxes[name])
