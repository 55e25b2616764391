"""The daemon exits only on a signal: a part that raises is logged and restarted, and the supervising
loop survives whatever one of its rounds raises (issue 8, finding 1: `release_dead_claims` raised
TimeoutError and `helpdesk serve` exited with status 1)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import pytest

import helpdesk.daemon
from helpdesk.app import App
from helpdesk.daemon import Daemon, Part
from tests.loopback import free_port, wait_until


def daemon_without_parts(make_app: Callable[..., App]) -> Daemon:
    app = make_app(smtp={"listen": f"127.0.0.1:{free_port()}"})
    daemon = Daemon(app)
    daemon.parts = []
    return daemon


def test_a_part_that_raises_is_logged_and_restarted(
    make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(helpdesk.daemon, "RESTART_PAUSE", 0.0)
    daemon = daemon_without_parts(make_app)
    runs: list[int] = []

    def flaky(stop: threading.Event) -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError(f"part broke on run {len(runs)}")
        stop.wait()

    daemon.add_part("flaky", flaky)
    part: Part = daemon.parts[0]
    caplog.set_level(logging.INFO, logger="helpdesk.daemon")
    daemon._start_part(part)
    try:
        assert wait_until(lambda: part.thread is not None and not part.thread.is_alive(), 5)
        daemon.supervise_once()
        assert wait_until(
            lambda: len(runs) >= 2 and part.thread is not None and not part.thread.is_alive(), 5
        )
        daemon.supervise_once()
        assert wait_until(lambda: len(runs) == 3, 5)
        assert part.thread is not None and part.thread.is_alive()
        assert part.restarts == 2
        crashes = [r for r in caplog.records if r.getMessage() == "PART flaky crashed"]
        assert len(crashes) == 2 and all(r.exc_info for r in crashes)
        assert "PART flaky stopped unexpectedly; restarting (restart 2)" in caplog.text
    finally:
        daemon.stop_event.set()
        daemon.app.close()


def test_the_supervising_loop_survives_rounds_that_raise(
    make_app: Callable[..., App], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    daemon = daemon_without_parts(make_app)
    rounds: list[int] = []

    def release_timed_out(_sessions: object) -> tuple[int, int]:
        rounds.append(1)
        raise TimeoutError("another writer of this process held the database too long")

    monkeypatch.setattr(helpdesk.daemon, "release_dead_claims", release_timed_out)
    monkeypatch.setattr(helpdesk.daemon, "RELEASE_EVERY", 0.0)
    broken_rounds: list[int] = []
    supervise_once = daemon.supervise_once

    def sometimes_broken() -> None:
        supervise_once()
        if len(broken_rounds) < 3:
            broken_rounds.append(1)
            raise KeyError("something nobody expected")

    monkeypatch.setattr(daemon, "supervise_once", sometimes_broken)
    caplog.set_level(logging.WARNING, logger="helpdesk.daemon")
    thread = threading.Thread(target=daemon.supervise, args=(0.01,), daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: len(rounds) >= 10, 10)
        assert thread.is_alive()
        assert "cannot release the claims of dead processes: TimeoutError" in caplog.text
        assert caplog.text.count("SUPERVISOR round failed; carrying on") == 3
    finally:
        daemon.stop_event.set()
        thread.join(10)
        daemon.app.close()
    assert not thread.is_alive()  # it ends when told to, and only then
