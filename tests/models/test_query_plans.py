"""What each mail asks of the database stays indexed as the desk grows: the threading lookups,
participant checks, the similar-ticket search and the hourly budgets on automatic mail never read
a whole table, on SQLite (EXPLAIN QUERY PLAN) or on PostgreSQL (EXPLAIN, sequential scans
disabled so that a usable index is always chosen on a small table)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, select
from sqlalchemy.orm import Session

from bench.desk import seed_tickets
from intake import threads
from models.ticket import Ticket
from notify import outbox
from notify.budget import Budgets
from notify.config import MailIdentity, OutgoingConfig
from tickets import participants
from tickets.digests import NoticeDigests
from tickets.mailer import Mailer
from tickets.similar import similar_resolved

NOW = datetime(2026, 6, 1, tzinfo=UTC)
# Tables that grow with the desk: a plan may never read one of them whole.
GROWING = ("tickets", "messages", "message_refs", "outbox", "participants", "held_notices", "mail_budget")


@contextmanager
def captured(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) run on `engine` inside the block."""
    seen: list[tuple[str, Any]] = []

    def listen(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def plan(engine: Engine, statement: str, parameters: Any) -> list[str]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).fetchall()
            return [str(row[-1]) for row in rows]
        conn.exec_driver_sql("SET enable_seqscan = off")
        return [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters).fetchall()]


def whole_table_reads(engine: Engine, lines: list[str]) -> list[str]:
    if engine.dialect.name == "sqlite":
        # "SCAN t" reads the table; "SCAN t USING INDEX i" walks an index in order (with a LIMIT,
        # or a partial index), which is what the similar-ticket search and the digests want.
        return [
            line
            for line in lines
            if line.split()[:2] in (["SCAN", t] for t in GROWING) and "USING" not in line
        ]
    return [line for line in lines if "Seq Scan" in line and any(f" {t} " in f"{line} " for t in GROWING)]


@pytest.fixture
def desk(engine: Engine) -> Engine:
    seed_tickets(engine.url.render_as_string(hide_password=False), 300, seed=8)
    if engine.dialect.name == "postgresql":  # as autovacuum would; the desk never runs ANALYZE on SQLite
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    return engine


def statements_of(engine: Engine, run: Any) -> list[tuple[str, Any]]:
    with captured(engine) as seen, Session(engine) as session:
        run(session)
        session.rollback()
    assert seen, "the code under test ran no query"
    return seen


def _per_mail(session: Session) -> None:
    ticket = session.get(Ticket, 150)
    assert ticket is not None
    similar_resolved(session, ticket, "the printer does not print")
    session.execute(threads._BY_MESSAGE_ID, {"ids": ["seed-7@d.example", "x@y"]}).all()
    session.execute(threads._BY_REFERENCED, {"ids": ["earlier-7@d.example"], "address": "a@b"}).all()
    session.execute(threads._OWN_MAIL_ON, {"ticket_id": 7, "address": "a@b"}).all()
    session.execute(threads._MAILED, {"ticket_id": 7, "address": "a@b"}).all()
    session.execute(participants._FIND_PARTICIPANT, {"ticket_id": 7, "address": "a@b"}).all()
    outbox.automatic_sent_recently(session, "a@b", NOW)
    budgets = Budgets()
    budgets.automatic(session, "someone@example.org", NOW, authenticated=False)
    budgets.staff_notice(session, "tech1@example.test", NOW)
    mailer = Mailer(MailIdentity(address="support@example.test", secret="s"), OutgoingConfig())
    NoticeDigests(mailer).send(session, NOW)
    session.execute(select(Ticket.id).where(Ticket.created_at >= NOW)).all()


def test_no_query_of_a_mail_reads_a_growing_table_whole(desk: Engine) -> None:
    scans: Mapping[str, list[str]] = {}
    for statement, parameters in statements_of(desk, _per_mail):
        bad = whole_table_reads(desk, plan(desk, statement, parameters))
        if bad:
            scans = {**scans, statement: bad}
    assert scans == {}


def test_the_similar_ticket_search_reads_the_newest_resolved_tickets_in_index_order(desk: Engine) -> None:
    def run(session: Session) -> None:
        ticket = session.get(Ticket, 150)
        assert ticket is not None
        similar_resolved(session, ticket, "the printer does not print")

    first = next(s for s in statements_of(desk, run) if "ORDER BY tickets.resolved_at" in s[0])
    lines = plan(desk, *first)
    assert any("ix_tickets_resolved_at_resolved" in line for line in lines), lines
    assert not any("TEMP B-TREE FOR ORDER BY" in line or "Sort" in line for line in lines), lines
