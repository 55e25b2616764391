"""The processing budget: a mail that takes too long to parse, or kills its parser, is quarantined with
the reason and the worker goes on with the next mail in a fresh child process (issue 8, finding 1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from helpdesk.app import App
from intake.errors import TooSlow
from intake.isolation import ParsePool
from models.raw_message import RawMessage, RawStatus
from tests.conftest import deliver
from tests.mail import make_mail


@contextmanager
def another_thread(running: bool) -> Iterator[None]:
    """With a second thread the pool must not fork (as in `helpdesk serve`); alone it forks."""
    if not running:
        yield
        return
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def with_parser(app: App, target: str) -> ParsePool:
    app.worker.parser.close()
    pool = ParsePool(app.settings.intake, target=target)
    app.worker.parser = pool
    return pool


def quarantined(app: App) -> dict[str, str]:
    with app.sessions() as session:
        return {
            raw.message_id or "?": raw.error or ""
            for raw in session.scalars(select(RawMessage).where(RawMessage.status == RawStatus.FAILED))
        }


THREADED = pytest.mark.parametrize("threaded", [False, True], ids=["forked", "fresh-interpreter"])


@THREADED
@pytest.mark.parametrize("target", ["sleepy", "spinning"])
def test_a_mail_over_the_budget_is_quarantined_too_slow_and_the_next_ones_are_processed(
    make_app: Callable[..., App], threaded: bool, target: str
) -> None:
    app = make_app(intake={"processing_budget": 1.0})
    with another_thread(threaded):
        pool = with_parser(app, f"tests.intake.slow_parsers:{target}")
        word = "sleep-forever" if target == "sleepy" else "spin-forever"
        started = time.monotonic()
        report = deliver(
            app,
            make_mail(message_id="<before@example.com>"),
            make_mail(message_id="<slow@example.com>", body=f"please {word}"),
            make_mail(message_id="<after@example.com>"),
        )
        took = time.monotonic() - started
    assert (report.tickets_created, report.quarantined) == (2, 1)
    reason = quarantined(app)["slow@example.com"]
    assert reason.startswith("too slow: parsing took longer than the processing budget of 1 s"), reason
    assert took < 10, f"{took:.1f} s"
    assert pool.started == 2  # the stopped child was replaced


@THREADED
@pytest.mark.parametrize(
    ("target", "word", "why"),
    [
        ("crashing", "crash-now", "killed by SIGABRT"),
        ("failing", "fail-now", "KeyError: 'a bug in the parser'"),
    ],
)
def test_a_parser_that_dies_or_fails_quarantines_its_mail_only(
    make_app: Callable[..., App], threaded: bool, target: str, word: str, why: str
) -> None:
    app = make_app()
    with another_thread(threaded):
        with_parser(app, f"tests.intake.slow_parsers:{target}")
        report = deliver(
            app,
            make_mail(message_id="<one@example.com>"),
            make_mail(message_id="<bad@example.com>", body=word),
            make_mail(message_id="<two@example.com>"),
        )
    assert (report.tickets_created, report.quarantined) == (2, 1)
    assert why in quarantined(app)["bad@example.com"]


def test_a_quarantined_slow_mail_is_retried_and_quarantined_again_not_lost(
    make_app: Callable[..., App],
) -> None:
    app = make_app(intake={"processing_budget": 0.5})
    with_parser(app, "tests.intake.slow_parsers:sleepy")
    deliver(app, make_mail(message_id="<slow@example.com>", body="sleep-forever"))
    from intake.raw_queue import requeue

    assert requeue(app.sessions) == 1
    report = app.worker.process_available()
    assert report.quarantined == 1
    assert "too slow" in quarantined(app)["slow@example.com"]


def test_the_pool_answers_directly_and_says_too_slow(make_app: Callable[..., App]) -> None:
    app = make_app(intake={"processing_budget": 0.5})
    pool = with_parser(app, "tests.intake.slow_parsers:sleepy")
    assert pool.parse(make_mail(subject="fine")).subject == "fine"
    with pytest.raises(TooSlow):
        pool.parse(make_mail(body="sleep-forever"))
    assert pool.parse(make_mail(subject="again")).subject == "again"


def test_a_budget_of_zero_parses_in_the_worker_itself(make_app: Callable[..., App]) -> None:
    app = make_app(intake={"processing_budget": 0})
    assert not isinstance(app.worker.parser, ParsePool)
    assert deliver(app, make_mail()).tickets_created == 1
