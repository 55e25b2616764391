"""`/metrics` parses with the Prometheus client's own parser and carries no personal data;
`/healthz` and `/readyz` answer without a session; `helpdesk web link` prints a working link."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bench.desk_seed import COORDINATOR, seed_roster
from helpdesk.app import build_app
from helpdesk.cli import main
from helpdesk.settings import load_settings
from helpdesk.web.server import WebServer, dashboard_of
from tests.conftest import deliver
from tests.mail import make_mail
from tests.web.conftest import Browser, Served


@pytest.fixture
def desk(serve: object) -> Served:
    served: Served = serve()  # type: ignore[operator]
    deliver(
        served.app,
        make_mail(sender="Secret Person <secret.person@example.com>", subject="Payroll of Mr Private"),
    )
    return served


def test_metrics_parse_and_say_nothing_personal(desk: Served) -> None:
    answer = desk.browser().get("/metrics")
    assert answer.status == 200
    families = {f.name: f for f in text_string_to_metric_families(answer.body)}
    expected = {
        "helpdesk_raw_queue",
        "helpdesk_mails_processed",
        "helpdesk_processing_latency_seconds",
        "helpdesk_outbox",
        "helpdesk_tickets",
        "helpdesk_sla_breaches",
        "helpdesk_imap_mailbox_state",
        "helpdesk_model_active",
    }
    assert expected <= set(families)
    processed = {
        s.labels["outcome"]: s.value
        for s in families["helpdesk_mails_processed"].samples
        if s.name.endswith("_total")
    }
    assert processed == {"ticket": 1.0}
    queue = {s.labels["state"]: s.value for s in families["helpdesk_raw_queue"].samples}
    assert queue["processed"] == 1.0
    latency = [
        s for s in families["helpdesk_processing_latency_seconds"].samples if s.labels.get("le") == "+Inf"
    ]
    assert latency and latency[0].value == 1.0
    outbox = {s.labels["state"]: s.value for s in families["helpdesk_outbox"].samples}
    assert outbox["pending"] >= 1.0  # the acknowledgment, at least
    for word in ("secret", "person", "payroll", "private", "example.com", "@"):
        assert word not in answer.body.lower()


def test_health_and_readiness_need_no_session(desk: Served) -> None:
    browser = desk.browser()
    assert browser.get("/healthz").status == 200
    ready = browser.get("/readyz")
    assert ready.status == 200
    assert '"database":true' in ready.body.replace(" ", "")


@pytest.mark.sqlite_only
def test_not_ready_when_the_database_is_gone(desk: Served) -> None:
    desk.app.engine.dispose()
    Path(desk.app.settings.database.url.removeprefix("sqlite:///")).unlink()
    answer = desk.browser().get("/readyz")
    assert answer.status == 503
    assert '"database":false' in answer.body.replace(" ", "")


@pytest.mark.slow
def test_web_link_prints_a_link_that_signs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    assert main(["init"]) == 0
    settings = load_settings(tmp_path / "helpdesk.toml")
    app = build_app(settings)
    with app.sessions() as session, session.begin():
        seed_roster(session)
    capsys.readouterr()
    assert main(["web", "link", COORDINATOR, "--next", "/coverage"]) == 0
    link = capsys.readouterr().out.strip()
    assert link.startswith("http://127.0.0.1:8025/auth?t=")
    server = WebServer(dashboard_of(app), "127.0.0.1", 0)
    server.start()
    try:
        answer = Browser(server.port).follow_link(link)
        assert answer.status == 303 and answer.location == "/coverage"
    finally:
        server.stop()
        app.close()
    assert main(["web", "link", "nobody@example.com"]) == 1
    assert "not an active coordinator or technician" in capsys.readouterr().err
