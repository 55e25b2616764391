"""The classifier asked ahead in the parser's processes (routing/forecast.py): routing decides exactly
as when the daemon asks the model itself, and a claimed group's tickets take the processes' answers."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from bench.corpus import generate
from helpdesk.app import ActiveModels, App
from intake.config import IntakeConfig
from intake.isolation import ParsePool
from models.mail import ParsedEmail
from models.ticket import Ticket
from routing.config import RoutingConfig
from routing.engine import RoutingEngine
from routing.facts import MailFacts
from routing.forecast import Forecast
from routing.model_store import ModelStore
from routing.seed import train_starter_models
from tests.conftest import REPO_ROOT, deliver
from tests.intake.test_isolation import THREADED, another_thread


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("starter") / "models"
    train_starter_models(ModelStore(directory))
    return directory


def corpus() -> list[bytes]:
    files = sorted((REPO_ROOT / "tests" / "data").rglob("*.eml"))
    return [path.read_bytes() for path in files] + generate(120).mails


def facts(mail: ParsedEmail) -> MailFacts:
    return MailFacts(
        sender=mail.sender,
        subject=mail.subject,
        body=mail.new_text or mail.text,
        language=mail.language,
    )


@THREADED
def test_routing_decides_the_same_with_the_answers_of_the_parser_processes(
    models_dir: Path, threaded: bool
) -> None:
    forecast = Forecast(models_dir)
    provider = ActiveModels(ModelStore(models_dir))
    pool = ParsePool(IntakeConfig(workers=2), foresight=forecast)
    try:
        with another_thread(threaded):  # forked children, or fresh interpreters sent the forecast
            parsed = pool.parse_many(corpus())
    finally:
        pool.close()
    mails = [mail for mail in parsed if isinstance(mail, ParsedEmail)]
    assert len(mails) == len(parsed)
    ahead = RoutingEngine.from_config(RoutingConfig(), forecast.wrap(provider))
    here = RoutingEngine.from_config(RoutingConfig(), provider)
    decisions = [ahead.route(facts(mail)) for mail in mails]
    assert forecast.misses == 0 and forecast.hits == 2 * len(mails)  # category and priority
    assert decisions == [here.route(facts(mail)) for mail in mails]
    # The model decided most, with its exact confidence (a float compared bit for bit).
    assert sum(d.category.source == "model" for d in decisions) > len(decisions) // 2


def test_another_model_version_or_text_is_a_miss_and_the_model_answers(models_dir: Path) -> None:
    forecast = Forecast(models_dir)
    provider = ActiveModels(ModelStore(models_dir))
    mail = ParsedEmail.__new__(ParsedEmail)  # only what the forecast reads
    object.__setattr__(mail, "subject", "VPN is down")
    object.__setattr__(mail, "new_text", "The VPN drops every few minutes.")
    object.__setattr__(mail, "text", "The VPN drops every few minutes.")
    foreseen = forecast.foresee(mail)
    assert {target for target, _, _ in foreseen} == {"category", "priority"}
    forged = tuple((target, "category-19700101T000000Z-00000000", p) for target, _, p in foreseen)
    forecast.keep(mail, forged)  # answers of a version that is not the active one
    model = forecast.wrap(provider)("category")
    assert model is not None
    right = provider("category")
    assert right is not None
    assert model.predict("VPN is down", "The VPN drops every few minutes.") == right.predict(
        "VPN is down", "The VPN drops every few minutes."
    )
    assert (forecast.hits, forecast.misses) == (0, 1)


def test_the_worker_routes_a_claimed_group_with_the_answers_of_the_parser_processes(
    make_app: Callable[..., App], models_dir: Path
) -> None:
    app = make_app(models={"dir": str(models_dir)}, intake={"workers": 2})
    assert isinstance(app.worker.parser, ParsePool)
    forecast = app.worker.parser.foresight
    assert isinstance(forecast, Forecast)
    mails = generate(60).mails
    report = deliver(app, *mails)
    assert report.tickets_created > 30
    assert forecast.misses == 0 and forecast.hits == 2 * report.tickets_created
    with app.sessions() as session:
        categories = set(session.scalars(select(Ticket.category)))
    assert categories - {"triage"}, categories  # the models decided
