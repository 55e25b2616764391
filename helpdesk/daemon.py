"""`helpdesk serve`: the SMTP (and LMTP) listener, the worker, the sender and the timers, supervised in one process.

Each part runs in a thread with a `run(stop)` loop. A part that raises or returns while the
daemon runs is logged and restarted after a pause; the supervising loop itself survives whatever
one of its rounds raises (a database that is away, a lock held too long), so the daemon exits
only on a signal: SIGTERM and SIGINT stop everything gracefully (the listeners first, so no
new mail is accepted while the worker finishes what it holds); SIGHUP reloads the rules.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from sqlalchemy.orm import configure_mappers

from helpdesk.app import App
from intake.errors import PipelineError
from intake.rehearsal import rehearse
from intake.smtp_listener import SmtpListener
from intake.wakeup import Wakeup
from models.base import utcnow
from models.claims import release_dead_claims
from models.election import elected
from models.heartbeat import Heartbeat, Released
from models.leases import holder_name

if TYPE_CHECKING:
    from intake.lmtp_listener import LmtpListener

if TYPE_CHECKING:
    from helpdesk.web.server import WebServer
from routing.config import TARGETS
from routing.errors import ModelError

log = logging.getLogger("helpdesk.daemon")

RESTART_PAUSE = 2.0
SWITCH_INTERVAL = 0.0005
# How often the daemon looks for rows claimed by processes of this host that died, so that a
# sibling's crash delays its claimed mail by seconds, not by the whole lease.
RELEASE_EVERY = 10.0


@dataclass
class Part:
    name: str
    run: Callable[[threading.Event], None]
    thread: threading.Thread | None = None
    restarts: int = 0
    last_start: float = field(default=0.0)


class Daemon:
    def __init__(self, app: App) -> None:
        self.app = app
        self.stop_event = threading.Event()
        self._released_at = 0.0
        self.listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
        self.lmtp: LmtpListener | None = None
        if app.settings.lmtp is not None:
            from intake.lmtp_listener import LmtpListener  # aiosmtpd's LMTP only when configured

            self.lmtp = LmtpListener(app.settings.lmtp, app.store, app.settings.identity)
        # Liveness shared through the database: a dead daemon's claims are given back on any host.
        self.heartbeat = Heartbeat(app.sessions, holder_name(), on_released=self._wake_takers)
        self.web: WebServer | None = None
        if app.settings.web.enabled:
            from helpdesk.web.server import WebServer, dashboard_of  # only a desk with a dashboard loads it

            self.web = WebServer(dashboard_of(app), app.settings.web.host, app.settings.web.port)
        self.parts: list[Part] = [
            Part("heartbeat", self.heartbeat.run),
            Part("worker", app.worker.run),
            Part("sender", app.sender.run),
            Part("rules", self._watch_rules),
            # A piped `helpdesk ingest` stores and announces; the worker hears of it at once.
            Part("wakeup", Wakeup(app.engine, app.worker.wake.set).run),
        ]
        # The SLA timer ticks in one process only, however many share the database.
        self.parts.append(Part("sla", elected(app.engine, "sla-timer", app.sla_timer.run)))
        if app.settings.report.schedule:
            from helpdesk.web.weekly import WeeklyReport

            weekly = WeeklyReport(app.settings, app.sessions, wake_sender=app.sender.wake.set)
            # Mailed once however many daemons run: only the elected one writes it.
            self.parts.append(Part("report", elected(app.engine, "weekly-report", weekly.run)))
        for poller in app.pollers:
            # One reader per mailbox across every process sharing the database.
            name = f"imap:{poller.config.name}"
            self.parts.append(Part(name, elected(app.engine, name, poller.run)))

    def _wake_takers(self, _released: Released) -> None:
        self.app.worker.wake.set()
        self.app.sender.wake.set()

    def add_part(self, name: str, run: Callable[[threading.Event], None]) -> None:
        self.parts.append(Part(name, run))

    def _watch_rules(self, stop: threading.Event) -> None:
        interval = self.app.settings.routing.rules_check_seconds
        if interval <= 0:
            stop.wait()
            return
        while not stop.wait(interval):
            self.app.rules.reload_if_changed()

    def _start_part(self, part: Part) -> None:
        def target() -> None:
            try:
                part.run(self.stop_event)
            except Exception:
                log.exception("PART %s crashed", part.name)

        part.thread = threading.Thread(target=target, name=f"helpdesk-{part.name}", daemon=True)
        part.last_start = time.monotonic()
        part.thread.start()

    def release_dead_claims(self) -> None:
        """Give back rows claimed by processes of this host that are gone (this one's past life, or
        another `helpdesk serve` on the same database)."""
        self._released_at = time.monotonic()
        try:
            raw, out = release_dead_claims(self.app.sessions)
        except Exception as exc:  # the database is away or busy; the next round tries again
            log.warning(
                "cannot release the claims of dead processes: %s: %s",
                exc.__class__.__name__,
                (str(exc).splitlines() or [""])[0],
            )
            return
        if raw or out:
            log.warning(
                "RELEASED %d stored mails and %d outgoing mails held by a process that died", raw, out
            )

    def warm_up(self) -> None:
        """Do before the first mail what it would otherwise wait for: the active models loaded,
        the ORM's mappers configured, every template compiled, the parser process started, and
        then one made-up request rehearsed through the whole pipeline and rolled back
        (intake.rehearsal), so that the first mail is as fast as the tenth.

        The models land in the store's cache, where routing finds them; one that cannot be loaded
        is reported here and again, once, when routing first asks for it. The parser process is
        started before the listener and the other parts, while this thread runs alone, so it is
        forked, ready at once, instead of a fresh interpreter importing the mail parser while
        the first mail waits (see intake.isolation)."""
        configure_mappers()
        self.app.mailer.renderer.compile_all()
        for target in TARGETS:
            try:
                model = self.app.models.load_active(target)
            except (ModelError, OSError) as exc:
                log.error("MODEL for %s cannot be loaded at start: %s", target, exc)
                continue
            if model is not None:
                log.info("LOADED %s model %s at start", target, model.version)
        try:
            self.app.worker.parser.start()
        except (OSError, PipelineError) as exc:  # the worker tries again when it starts, and per mail
            log.error("PARSER process cannot start yet: %s", exc)
            return
        # Last, so the statements, the parser process and routing are all warm for the first mail.
        rehearse(self.app.worker, self.app.store, self.app.settings.identity.address, utcnow())

    def start(self) -> None:
        # The worker is CPU-bound Python; with the default 5 ms switch interval an SMTP session,
        # which needs the interpreter briefly for each command, waits that long at every step.
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.release_dead_claims()
        self.warm_up()
        self.listener.start()
        if self.lmtp is not None:
            self.lmtp.start()
        self._start_web()
        for part in self.parts:
            self._start_part(part)
        log.info(
            "SERVING %s on %s:%d",
            self.app.settings.identity.address,
            self.listener.config.host,
            self.listener.port,
        )

    def _start_web(self) -> None:
        """The dashboard, in a thread of its own; a desk whose dashboard cannot listen still takes mail."""
        if self.web is None:
            return
        try:
            self.web.start()
        except Exception as exc:
            log.error(
                "DASHBOARD cannot serve on %s: %s; the desk runs without it",
                self.app.settings.web.listen,
                exc,
            )
            self.web = None

    def supervise_once(self) -> None:
        if time.monotonic() - self._released_at >= RELEASE_EVERY:
            self.release_dead_claims()
        for part in self.parts:
            if part.thread is not None and not part.thread.is_alive() and not self.stop_event.is_set():
                if time.monotonic() - part.last_start < RESTART_PAUSE:
                    continue
                part.restarts += 1
                log.error("PART %s stopped unexpectedly; restarting (restart %d)", part.name, part.restarts)
                self._start_part(part)

    def shutdown(self, timeout: float = 10.0) -> None:
        log.info("STOPPING")
        try:
            self.listener.stop()
        except Exception:
            log.exception("SMTP listener did not stop cleanly")
        if self.lmtp is not None:
            try:
                self.lmtp.stop()
            except Exception:
                log.exception("LMTP listener did not stop cleanly")
        if self.web is not None:
            self.web.stop()
        self.stop_event.set()
        self.app.worker.wake.set()
        self.app.sender.wake.set()
        deadline = time.monotonic() + timeout
        for part in self.parts:
            if part.thread is not None:
                part.thread.join(max(0.0, deadline - time.monotonic()))
        self.app.close()
        log.info("STOPPED")

    def install_signals(self) -> None:
        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("SIGNAL %s received", signal.Signals(signum).name)
            self.stop_event.set()

        def reload(_signum: int, _frame: FrameType | None) -> None:
            log.info("SIGNAL SIGHUP: reloading rules")
            self.app.rules.reload()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, reload)

    def supervise(self, interval: float = 1.0) -> None:
        """Supervise until the stop event: a round that raises is logged, and the next one runs."""
        while not self.stop_event.wait(interval):
            try:
                self.supervise_once()
            except Exception:
                log.exception("SUPERVISOR round failed; carrying on")

    def serve_forever(self) -> int:
        self.install_signals()
        self.start()
        try:
            self.supervise()
        finally:
            self.shutdown()
        return 0
