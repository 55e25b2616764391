"""Wiring: turns `Settings` into the running parts (database, store, pipeline, worker, sender)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from helpdesk.database import checked_engine
from helpdesk.settings import Settings
from intake.authentication import SenderAuthenticator
from intake.pipeline import Pipeline, Services
from intake.raw_queue import RawStore
from intake.worker import Worker
from models.base import utcnow
from models.db import create_db_engine, read_only, session_factory
from notify.render import Renderer
from notify.sender import Sender
from routing.engine import Predictor, RoutingEngine
from routing.errors import ModelError
from routing.forecast import Forecast
from routing.model_store import ModelStore
from routing.rules_loader import RulesHolder
from tickets.assignment import Assignment
from tickets.delivery import DeliveryFailures
from tickets.lifecycle import Lifecycle
from tickets.mailer import Mailer
from tickets.sla_timer import SlaTimer
from tickets.staff_replies import StaffReplies

if TYPE_CHECKING:
    from intake.imap_poller import MailboxPoller

log = logging.getLogger("helpdesk")


def _pollers(
    settings: Settings, store: RawStore, sessions: sessionmaker[Session], clock: Callable[[], datetime]
) -> list[MailboxPoller]:
    if not settings.mailboxes:
        return []
    from intake.imap_poller import MailboxPoller  # imapclient is loaded only by desks that read IMAP

    return [MailboxPoller(cfg, store, sessions, clock=clock) for cfg in settings.mailboxes]


class ActiveModels:
    """The routing engine's model provider: whatever version is active now, loaded once per version.

    An admin's `helpdesk model activate` or `rollback` reaches the running daemon at the next mail.
    A model that cannot be loaded is reported once per version and routing falls back to rules and
    defaults instead of failing mail.
    """

    def __init__(self, store: ModelStore) -> None:
        self.store = store
        self._broken: set[str] = set()
        self._store_trouble = ""

    def __call__(self, target: str) -> Predictor | None:
        try:
            version = self.store.active(target)
        except (ModelError, OSError) as exc:
            if str(exc) != self._store_trouble:
                self._store_trouble = str(exc)
                log.error("MODELS cannot read which model is active, routing without one: %s", exc)
            return None
        if version is None or version in self._broken:
            return None
        try:
            return self.store.load(version)
        except (ModelError, OSError) as exc:
            self._broken.add(version)
            log.error("MODEL %s cannot be loaded, routing without it: %s", version, exc)
            return None


@dataclass
class App:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    readers: sessionmaker[Session]
    store: RawStore
    mailer: Mailer
    rules: RulesHolder
    pipeline: Pipeline
    models: ModelStore
    worker: Worker
    sender: Sender
    assignment: Assignment
    sla_timer: SlaTimer
    pollers: list[MailboxPoller] = field(default_factory=list)  # filled only when [[imap]] is configured

    def poller(self, name: str) -> MailboxPoller:
        for poller in self.pollers:
            if poller.config.name == name:
                return poller
        known = ", ".join(p.config.name for p in self.pollers) or "none configured"
        raise KeyError(f"no [[imap]] mailbox named {name!r} (known: {known})")

    def close(self) -> None:
        self.worker.close()
        self.engine.dispose()

    def __enter__(self) -> App:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_app(
    settings: Settings, *, clock: Callable[[], datetime] = utcnow, check_schema: bool = True
) -> App:
    engine = checked_engine(settings) if check_schema else create_db_engine(settings.database)
    sessions = session_factory(engine)
    readers = session_factory(read_only(engine))
    sender = Sender(sessions, settings.outgoing, clock=clock, identity=settings.identity)
    mailer = Mailer(settings.identity, settings.outgoing, Renderer(), limits=settings.limits)
    rules = RulesHolder.from_config(settings.routing)
    models = ModelStore(settings.models.dir)
    # The parser processes ask the classifier about each mail ahead; routing takes their answers.
    forecast = Forecast(settings.models.dir)
    router = RoutingEngine(rules, forecast.wrap(ActiveModels(models)), settings.routing.thresholds)
    assignment = Assignment(mailer)
    delivery = DeliveryFailures(assignment)
    sender.on_failed = delivery.failed  # a mail that finally fails: an event and a notice, with it
    pipeline = Pipeline(
        Services(
            config=settings.intake,
            mailer=mailer,
            router=router,
            assigner=assignment,
            staff_replies=StaffReplies(assignment, settings.routing.categories, tokens=settings.tokens),
            delivery=delivery,
            authenticator=SenderAuthenticator(settings.sender_auth),
            knowledge=settings.knowledge,
        )
    )
    worker = Worker(
        sessions, pipeline, settings.intake, clock=clock, on_committed=sender.wake.set, foresight=forecast
    )
    store = RawStore(sessions, on_stored=worker.wake.set)
    return App(
        settings=settings,
        engine=engine,
        sessions=sessions,
        readers=readers,
        store=store,
        mailer=mailer,
        rules=rules,
        pipeline=pipeline,
        models=models,
        worker=worker,
        sender=sender,
        assignment=assignment,
        sla_timer=SlaTimer(
            sessions,
            assignment,
            settings.sla,
            clock=clock,
            interval=settings.sla_check_interval,
            lifecycle=Lifecycle(mailer, settings.lifecycle, settings.sla.hours, settings.sla.holidays),
        ),
        pollers=_pollers(settings, store, sessions, clock),
    )
