"""Assigning locks technicians in one order, whatever order a transaction assigns them in.

Each assignment stamps the technician's `last_assigned_at`. Written as it happened, two workers
on one PostgreSQL whose groups assign Alicja then Bob, and Bob then Alicja, each held one row and
waited for the other: a deadlock, retried but costly (the scale-out benchmark counted them). The
stamps now wait for the commit and are written in technician-id order, and the transaction still
reads its own stamps in the meantime, so the round-robin between equals is unchanged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from helpdesk.app import App
from models.people import TechnicianRow
from models.ticket import Ticket
from routing.people import parse_people_toml
from tests.conftest import Clock, deliver
from tests.mail import make_mail
from tickets.roster import import_people, staff

ROSTER = """
[[technician]]
name = "Alicja Nowak"
email = "alicja@example.test"
tier = 1
languages = ["pl", "en"]
shifts = ["24/7"]
skills = { printing = 5 }

[[technician]]
name = "Bob Smith"
email = "bob@example.test"
tier = 1
languages = ["en"]
shifts = ["24/7"]
skills = { printing = 5 }
"""


def stamps_of(session: Session) -> dict[str, datetime | None]:
    rows = session.execute(select(TechnicianRow.email, TechnicianRow.last_assigned_at))
    return dict(rows.tuples().all())


def tickets(app: App, count: int = 2) -> list[int]:
    with app.sessions() as s:
        import_people(s, parse_people_toml(ROSTER, categories=app.settings.routing.categories))
        s.commit()
    deliver(
        app,
        *(
            make_mail(sender=f"user{n}@example.com", message_id=f"<t{n}@example.com>", subject=f"Printer {n}")
            for n in range(count)
        ),
    )
    with app.sessions() as s:
        return sorted(s.scalars(select(Ticket.id)))


def test_assignments_in_opposite_orders_do_not_deadlock(make_app: Callable[..., App], clock: Clock) -> None:
    app = make_app()
    T0 = clock.now + timedelta(days=1)  # after the stamps of the mails' own assignments
    # Four tickets: two conversations are never worked by two workers at once.
    t1, t2, t3, t4 = tickets(app, 4)
    with app.sessions() as s:
        members = {m.email: m for m in staff(s)}
    orders = [("alicja@example.test", "bob@example.test"), ("bob@example.test", "alicja@example.test")]
    both_assigned_one = threading.Barrier(2)
    errors: list[BaseException] = []
    postgres = app.engine.dialect.name == "postgresql"

    def assign(order: tuple[str, str], ticket_ids: tuple[int, int], at: datetime) -> None:
        try:
            with app.sessions() as s:
                for n, (email, ticket_id) in enumerate(zip(order, ticket_ids, strict=True)):
                    ticket = s.get(Ticket, ticket_id)
                    assert ticket is not None
                    app.assignment.give_to(s, ticket, members[email], now=at, actor="test", reason="test")
                    s.flush()
                    if n == 0 and postgres:
                        both_assigned_one.wait(10)
                s.commit()
        except (DBAPIError, threading.BrokenBarrierError) as exc:
            errors.append(exc)

    if postgres:
        threads = [
            threading.Thread(target=assign, args=(orders[0], (t1, t2), T0)),
            threading.Thread(target=assign, args=(orders[1], (t3, t4), T0 + timedelta(seconds=1))),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    else:  # one writer at a time: the stamps still land, in either order
        assign(orders[0], (t1, t2), T0)
        assign(orders[1], (t3, t4), T0 + timedelta(seconds=1))
    assert errors == []
    with app.sessions() as s:
        stamps = stamps_of(s)
    later = T0 + timedelta(seconds=1)  # the latest stamp wins, whichever commits last
    assert {email: stamp and stamp.astimezone(UTC) for email, stamp in stamps.items()} == {
        "alicja@example.test": later,
        "bob@example.test": later,
    }


def test_a_transaction_reads_its_own_stamp_and_holds_no_technician_row_before_commit(
    make_app: Callable[..., App], clock: Clock
) -> None:
    app = make_app()
    T0 = clock.now + timedelta(days=1)
    first, _ = tickets(app)
    at = T0 + timedelta(hours=1)
    with app.sessions() as s:
        bob = next(m for m in staff(s) if m.email == "bob@example.test")
        ticket = s.get(Ticket, first)
        assert ticket is not None
        app.assignment.give_to(s, ticket, bob, now=at, actor="test", reason="test")
        s.flush()
        # The next choice in the same transaction sees Bob as just assigned.
        seen = {m.email: m.last_assigned_at for m in staff(s)}
        assert seen["bob@example.test"] is not None and seen["bob@example.test"].astimezone(UTC) == at
        if app.engine.dialect.name == "postgresql":
            with app.engine.connect() as other:
                other.execute(text("SET lock_timeout = '1s'"))
                locked = other.execute(
                    select(TechnicianRow.id).where(TechnicianRow.id == bob.id).with_for_update(nowait=True)
                ).all()
                assert locked == [(bob.id,)]  # not held by the open transaction
                other.rollback()
        s.commit()
    with app.sessions() as s:
        stamp = s.scalar(select(TechnicianRow.last_assigned_at).where(TechnicianRow.id == bob.id))
        assert stamp is not None and stamp.astimezone(UTC) == at


def test_a_rolled_back_assignment_leaves_no_stamp(make_app: Callable[..., App], clock: Clock) -> None:
    app = make_app()
    T0 = clock.now + timedelta(days=1)  # after the stamps of the mails' own assignments
    first, _ = tickets(app)
    with app.sessions() as s:
        before = stamps_of(s)
        bob = next(m for m in staff(s) if m.email == "bob@example.test")
    at = T0 + timedelta(hours=2)
    with app.sessions() as s:
        ticket = s.get(Ticket, first)
        assert ticket is not None
        app.assignment.give_to(s, ticket, bob, now=at, actor="test", reason="test")
        s.rollback()
        s.commit()  # nothing of the rolled-back assignment may be written now
    with app.sessions() as s:
        after = stamps_of(s)
    assert after == before
