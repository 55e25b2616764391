"""The parser pool (`[intake] workers`): a claimed group's mails are parsed side by side in several
child processes, each within the processing budget, and give what the single child gave."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.corpus import generate
from helpdesk.app import App
from intake.config import IntakeConfig
from intake.errors import ParserDied, TooSlow
from intake.isolation import ParsePool
from intake.parse_ahead import InProcessParser
from models.raw_message import RawMessage, RawStatus
from models.ticket import Ticket
from tests.conftest import REPO_ROOT, deliver
from tests.intake.slow_parsers import parsed_by
from tests.intake.test_isolation import THREADED, another_thread
from tests.mail import make_mail

PIDS = "tests.intake.slow_parsers:telling_pid"
SLEEPY = "tests.intake.slow_parsers:sleepy"
CRASHING = "tests.intake.slow_parsers:crashing"


def pool_of(size: int, target: str, budget: float = 10.0) -> ParsePool:
    return ParsePool(IntakeConfig(processing_budget=budget, workers=size), target=target)


@THREADED
def test_a_group_is_parsed_side_by_side_by_every_child_of_the_pool(threaded: bool) -> None:
    with another_thread(threaded):
        pool = pool_of(2, PIDS)
        try:
            pool.start()
            started = time.monotonic()
            mails = [make_mail(subject=f"mail {n}", body="please take-time") for n in range(4)]
            parsed = pool.parse_many(mails)
            took = time.monotonic() - started
        finally:
            pool.close()
    subjects = [getattr(mail, "subject", repr(mail)) for mail in parsed]
    assert [s.split(" [")[0] for s in subjects] == [f"mail {n}" for n in range(4)]  # in order
    assert len({parsed_by(s) for s in subjects}) == 2
    assert pool.started == 2
    assert took < 1.95, f"4 mails of 0.5 s each on 2 children took {took:.2f} s"  # one by one: >= 2 s


def test_the_worker_parses_a_claimed_group_on_as_many_children_as_configured(
    make_app: Callable[..., App],
) -> None:
    app = make_app(intake={"workers": 3})
    app.worker.parser.close()
    app.worker.parser = ParsePool(app.settings.intake, target=PIDS)
    report = deliver(app, *(make_mail(subject=f"mail {n}", body="take-time") for n in range(6)))
    assert report.tickets_created == 6
    with app.sessions() as session:
        subjects = list(session.scalars(select(Ticket.subject).order_by(Ticket.id)))
    assert [s.split(" [")[0] for s in subjects] == [f"mail {n}" for n in range(6)]  # raw-id order
    assert len({parsed_by(s) for s in subjects}) == 3


@THREADED
def test_a_too_slow_mail_takes_only_its_own_child_down_while_the_group_goes_on(
    make_app: Callable[..., App], threaded: bool
) -> None:
    app = make_app(intake={"processing_budget": 1.0, "workers": 2})
    with another_thread(threaded):
        app.worker.parser.close()
        pool = app.worker.parser = ParsePool(app.settings.intake, target=SLEEPY)
        started = time.monotonic()
        mails = [make_mail(message_id=f"<m{n}@example.com>") for n in range(5)]
        mails.insert(1, make_mail(message_id="<slow@example.com>", body="please sleep-forever"))
        report = deliver(app, *mails)
        took = time.monotonic() - started
        after = pool.parse_many([make_mail(subject="after 1"), make_mail(subject="after 2")])
    assert [getattr(m, "subject", m) for m in after] == ["after 1", "after 2"]  # on a replaced child
    assert (report.tickets_created, report.quarantined) == (5, 1)
    with app.sessions() as session:
        failed = session.scalars(select(RawMessage).where(RawMessage.status == RawStatus.FAILED)).one()
    assert failed.message_id == "slow@example.com"
    assert (failed.error or "").startswith("too slow: parsing took longer than the processing budget of 1 s")
    assert took < 8, f"{took:.1f} s"
    assert pool.started == 3


@THREADED
def test_a_child_killed_while_idle_is_replaced_before_a_mail_is_handed_to_it(threaded: bool) -> None:
    with another_thread(threaded):
        pool = pool_of(2, PIDS)
        try:
            pool.start()
            first = pool.parse_many([make_mail(body="take-time"), make_mail(body="take-time")])
            pids = {parsed_by(getattr(mail, "subject", "")) for mail in first}
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            time.sleep(0.2)
            again = pool.parse_many([make_mail(body="take-time"), make_mail(body="take-time")])
        finally:
            pool.close()
    now = {parsed_by(getattr(mail, "subject", "")) for mail in again}
    assert len(now) == 2 and victim not in now  # nobody's mail paid for the dead child
    assert pool.started == 3


def test_a_child_that_dies_on_a_mail_fails_only_that_mail_and_is_replaced() -> None:
    pool = pool_of(2, CRASHING)
    try:
        parsed = pool.parse_many(
            [make_mail(subject=f"m{n}", body="crash-now" if n == 1 else "fine") for n in range(4)]
        )
        after = pool.parse(make_mail(subject="after"))
    finally:
        pool.close()
    assert isinstance(parsed[1], ParserDied) and "killed by SIGABRT" in str(parsed[1])
    assert [getattr(m, "subject", None) for m in parsed] == ["m0", None, "m2", "m3"]
    assert after.subject == "after"


def test_parse_raises_too_slow_for_one_mail() -> None:
    pool = pool_of(2, SLEEPY, budget=0.5)
    try:
        with pytest.raises(TooSlow):
            pool.parse(make_mail(body="sleep-forever"))
    finally:
        pool.close()


def corpus() -> list[bytes]:
    files = sorted((REPO_ROOT / "tests" / "data").rglob("*.eml"))
    return [Path(f).read_bytes() for f in files] + generate(150).mails


def test_the_pool_gives_what_one_child_and_the_worker_itself_give_on_a_corpus() -> None:
    mails = corpus()
    config = IntakeConfig(workers=1)
    single, pool = ParsePool(config, size=1), ParsePool(config, size=2)
    try:
        one_by_one = single.parse_many(mails)
        side_by_side = pool.parse_many(mails)
    finally:
        single.close()
        pool.close()
    in_process = InProcessParser(config).parse_many(mails)
    assert len(mails) > 150
    assert side_by_side == one_by_one
    assert [repr(r) for r in side_by_side] == [repr(r) for r in in_process]
