"""`/metrics` (Prometheus text format, with the official client), `/healthz` and `/readyz`.

These need no session, as a scraper or a load balancer has none, and so say nothing personal:
counts by state and outcome, latencies, mailbox names and states, model versions. The figures are
read from the database at each scrape by a custom collector, so every process shows the desk's.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from helpdesk.web.app import Dashboard
from intake.imap_state import mailbox_statuses
from intake.quarantine import queue_counts
from routing.errors import ModelError
from routing.model_store import ModelStore
from tickets.operations import processed_by_outcome, recent_latencies, sla_breaches
from tickets.queries import status_counts

LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
TARGETS = ("category", "priority")


def active_models(models_dir: object) -> dict[str, str | None]:
    if models_dir is None:
        return {}
    store = ModelStore(str(models_dir))
    found: dict[str, str | None] = {}
    for target in TARGETS:
        try:
            found[target] = store.active(target)
        except (ModelError, OSError):
            found[target] = None
    return found


class DeskCollector(Collector):
    def __init__(self, board: Dashboard) -> None:
        self.board = board

    def collect(self) -> Iterator[Metric]:
        now: datetime = self.board.clock()
        with self.board.readers() as session:
            raw = queue_counts(session)
            outcomes = processed_by_outcome(session)
            latencies = recent_latencies(session, now=now)
            counts = status_counts(session)
            breaches = sla_breaches(session)
        queue = GaugeMetricFamily("helpdesk_raw_queue", "Stored mail by state", labels=["state"])
        for state, count in sorted(raw.items()):
            queue.add_metric([state.value], count)
        yield queue
        processed = CounterMetricFamily(
            "helpdesk_mails_processed", "Mail processed, by outcome", labels=["outcome"]
        )
        for outcome, count in sorted(outcomes.items()):
            processed.add_metric([outcome], count)
        yield processed
        buckets = [(str(le), sum(1 for v in latencies if v <= le)) for le in LATENCY_BUCKETS]
        buckets.append(("+Inf", len(latencies)))
        yield GaugeHistogramMetricFamily(
            "helpdesk_processing_latency_seconds",
            "From stored to processed, mail processed in the last hour",
            buckets=buckets,
            gsum_value=sum(latencies),
        )
        outbox = GaugeMetricFamily("helpdesk_outbox", "Outgoing mail by state", labels=["state"])
        for sent, count in sorted(counts.outbox.items()):
            outbox.add_metric([sent.value], count)
        yield outbox
        tickets = GaugeMetricFamily("helpdesk_tickets", "Tickets by status", labels=["status"])
        for status, count in sorted(counts.tickets.items()):
            tickets.add_metric([status.value], count)
        yield tickets
        sla = GaugeMetricFamily("helpdesk_sla_breaches", "Open tickets past an SLA target", labels=["target"])
        for target, count in sorted(breaches.items()):
            sla.add_metric([target], count)
        yield sla
        mailboxes = GaugeMetricFamily(
            "helpdesk_imap_mailbox_state",
            "1 for the state each IMAP mailbox is in",
            labels=["mailbox", "state"],
        )
        for box in mailbox_statuses(self.board.readers):
            mailboxes.add_metric([box.name, box.state.value], 1)
        yield mailboxes
        models = GaugeMetricFamily(
            "helpdesk_model_active", "1 for the active model version", labels=["target", "version"]
        )
        for target, version in active_models(self.board.models_dir).items():
            if version:
                models.add_metric([target, version], 1)
        yield models


def routes(board: Dashboard) -> list[BaseRoute]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DeskCollector(board))

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(request: Request) -> Response:
        checks = await run_in_threadpool(board.ready)
        ok = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", **checks}, status_code=200 if ok else 503
        )

    return [Route("/metrics", metrics), Route("/healthz", healthz), Route("/readyz", readyz)]
