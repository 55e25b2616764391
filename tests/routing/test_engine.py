"""The routing engine: rules first, the model above its threshold, the defaults; the priority floor;
a failing model; and the reason recorded for every decision."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from routing.config import DEFAULT_CATEGORIES, DEFAULT_THRESHOLD, RoutingConfig
from routing.engine import DefaultRouter, Predictor, Router, RoutingEngine, no_models
from routing.facts import MailFacts, Prediction
from routing.rules import RuleSet
from routing.rules_loader import RulesHolder, load_rules

RULES = """
[[rule]]
name = "vpn"
description = "VPN trouble goes to network"
[rule.when]
subject_contains = "vpn"
[rule.then]
category = "network"
tags = ["vpn"]
assignee = "alice@example.test"

[[rule]]
name = "floor-high"
[rule.when]
subject_contains = "payroll"
[rule.then]
raise_priority_to = "high"

[[rule]]
name = "newsletter"
[rule.when]
subject_contains = "newsletter"
[rule.then]
priority = "low"

[[rule]]
name = "plus-one"
[rule.when]
subject_contains = "board"
[rule.then]
raise_priority = 1
"""


@dataclass
class FakePredictor:
    """A model that answers what it is told to, or raises, and counts how often it was asked."""

    version: str
    label: str = "software"
    confidence: float = 0.9
    top_terms: tuple[str, ...] = ("excel", "macro")
    error: Exception | None = None
    calls: list[tuple[str, str]] = field(default_factory=list)

    def predict(self, subject: str, body: str) -> Prediction:
        self.calls.append((subject, body))
        if self.error is not None:
            raise self.error
        return Prediction(self.label, self.confidence, self.version, self.top_terms)


@dataclass
class Models:
    """A provider the test can swap models in, as the daemon does after a retrain."""

    by_target: dict[str, Predictor] = field(default_factory=dict)

    def __call__(self, target: str) -> Predictor | None:
        return self.by_target.get(target)


def rule_set(tmp_path: Path, text: str = RULES) -> RuleSet:
    path = tmp_path / "rules.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_rules(path, DEFAULT_CATEGORIES, builtin=False)


def mail(subject: str = "Excel crashes", body: str = "when I open the macro") -> MailFacts:
    return MailFacts(sender="user@example.com", subject=subject, body=body)


def engine(
    tmp_path: Path,
    category: FakePredictor | None = None,
    priority: FakePredictor | None = None,
    thresholds: dict[str, float] | None = None,
) -> RoutingEngine:
    models = Models({k: v for k, v in (("category", category), ("priority", priority)) if v is not None})
    return RoutingEngine(rule_set(tmp_path), models, thresholds or {"category": 0.6, "priority": 0.6})


def test_no_rule_and_no_model_gives_the_defaults_with_why(tmp_path: Path) -> None:
    result = engine(tmp_path).route(mail())
    assert (result.category.value, result.category.source) == ("triage", "default")
    assert result.category.detail == "default: no rule set it; no category model"
    assert (result.priority.value, result.priority.source) == ("normal", "default")
    assert result.priority.reason == "default: no priority model"
    assert result.matched_rules == ()


def test_a_rule_decides_and_the_model_is_not_asked(tmp_path: Path) -> None:
    model = FakePredictor("cat-3", label="software")
    result = engine(tmp_path, category=model).route(mail("VPN drops"))
    assert (result.category.value, result.category.source, result.category.rule) == ("network", "rule", "vpn")
    assert result.category.reason == "rule:vpn"
    assert result.category.detail == "rule vpn: VPN trouble goes to network"
    assert model.calls == []
    assert result.tags == ("vpn",)
    assert result.assignee == "alice@example.test"
    assert result.matched_rules == ("vpn",)


def test_a_confident_model_decides_what_no_rule_set(tmp_path: Path) -> None:
    model = FakePredictor("cat-3", label="software", confidence=0.82)
    result = engine(tmp_path, category=model).route(mail())
    decision = result.category
    assert (decision.value, decision.source, decision.model_version) == ("software", "model", "cat-3")
    assert decision.confidence == pytest.approx(0.82)
    assert decision.top_terms == ("excel", "macro")
    assert decision.reason == "model:cat-3 confidence=0.82"
    assert decision.detail == "model cat-3 confidence 0.82 >= threshold 0.60; top terms: excel, macro"
    assert model.calls == [("Excel crashes", "when I open the macro")]


def test_a_numpy_confidence_is_accepted(tmp_path: Path) -> None:
    model = FakePredictor("cat-3", label="software", confidence=cast(float, np.float32(0.75)))
    decision = engine(tmp_path, category=model).route(mail()).category
    assert (decision.value, decision.source) == ("software", "model")
    assert type(decision.confidence) is float
    assert decision.confidence == pytest.approx(0.75)


def test_a_model_below_its_threshold_gives_the_default(tmp_path: Path) -> None:
    model = FakePredictor("cat-3", label="software", confidence=0.41)
    result = engine(tmp_path, category=model).route(mail())
    assert (result.category.value, result.category.source) == ("triage", "default")
    assert "model cat-3 confidence 0.41 below threshold 0.60 (it said software)" in result.category.detail


def test_thresholds_are_per_target_and_inclusive(tmp_path: Path) -> None:
    category = FakePredictor("cat-3", label="software", confidence=0.8)
    priority = FakePredictor("pri-2", label="high", confidence=0.5)
    routed = engine(tmp_path, category, priority, {"category": 0.9, "priority": 0.5}).route(mail())
    assert routed.category.source == "default"
    assert (routed.priority.value, routed.priority.source) == ("high", "model")


def test_a_model_that_raises_does_not_break_routing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    broken = FakePredictor("cat-3", error=RuntimeError("vectorizer missing"))
    result = engine(tmp_path, category=broken, priority=broken).route(mail())
    assert (result.category.value, result.category.source) == ("triage", "default")
    assert "model cat-3 failed (RuntimeError: vectorizer missing)" in result.category.detail
    assert (result.priority.value, result.priority.source) == ("normal", "default")
    assert "MODEL cat-3 failed for category" in caplog.text


def test_a_provider_that_raises_does_not_break_routing(tmp_path: Path) -> None:
    def failing(target: str) -> Predictor | None:
        raise OSError("model file vanished")

    result = RoutingEngine(rule_set(tmp_path), failing, {}).route(mail())
    assert result.category.value == "triage"
    assert "category model unavailable (OSError: model file vanished)" in result.category.detail


@pytest.mark.parametrize(
    ("label", "confidence", "why"),
    [
        ("plumbing", 0.95, "predicted unknown category 'plumbing'"),
        ("software", float("nan"), "invalid confidence nan"),
        ("software", 1.5, "invalid confidence 1.5"),
    ],
)
def test_an_unusable_answer_gives_the_default(
    tmp_path: Path, label: str, confidence: float, why: str
) -> None:
    model = FakePredictor("cat-3", label=label, confidence=confidence)
    result = engine(tmp_path, category=model).route(mail())
    assert result.category.value == "triage"
    assert why in result.category.detail


def test_a_rule_floor_keeps_a_lower_model_priority_up(tmp_path: Path) -> None:
    model = FakePredictor("pri-2", label="normal", confidence=0.9)
    result = engine(tmp_path, priority=model).route(mail("Payroll export"))
    decision = result.priority
    assert (decision.value, decision.source, decision.rule) == ("high", "rule", "floor-high")
    assert decision.detail.startswith("raised from normal (model pri-2 confidence 0.90")
    assert decision.detail.endswith("by floor-high to high")


def test_a_confident_higher_model_priority_wins_over_a_floor(tmp_path: Path) -> None:
    model = FakePredictor("pri-2", label="urgent", confidence=0.9)
    result = engine(tmp_path, priority=model).route(mail("Payroll export"))
    decision = result.priority
    assert (decision.value, decision.source, decision.model_version) == ("urgent", "model", "pri-2")
    assert decision.detail.endswith("not lifted by floor-high: already urgent")


def test_a_floor_over_an_unconfident_model_starts_from_normal(tmp_path: Path) -> None:
    model = FakePredictor("pri-2", label="urgent", confidence=0.3)
    decision = engine(tmp_path, priority=model).route(mail("Payroll export")).priority
    assert (decision.value, decision.rule) == ("high", "floor-high")
    assert "below threshold" in decision.detail


def test_steps_count_from_the_model_priority(tmp_path: Path) -> None:
    model = FakePredictor("pri-2", label="high", confidence=0.9)
    decision = engine(tmp_path, priority=model).route(mail("Board meeting laptop")).priority
    assert (decision.value, decision.source, decision.rule) == ("urgent", "rule", "plus-one")


def test_an_explicit_rule_priority_is_final(tmp_path: Path) -> None:
    model = FakePredictor("pri-2", label="urgent", confidence=0.99)
    result = engine(tmp_path, priority=model).route(mail("Payroll newsletter"))
    decision = result.priority
    assert (decision.value, decision.source, decision.rule) == ("low", "rule", "newsletter")
    assert "raises by floor-high ignored" in decision.detail
    assert model.calls == []


def test_models_are_asked_on_every_mail_so_they_can_be_swapped(tmp_path: Path) -> None:
    models = Models({"category": FakePredictor("cat-3", label="software")})
    router = RoutingEngine(rule_set(tmp_path), models, {})
    assert router.route(mail()).category.model_version == "cat-3"
    models.by_target["category"] = FakePredictor("cat-4", label="email")
    swapped = router.route(mail()).category
    assert (swapped.value, swapped.model_version) == ("email", "cat-4")


def test_the_engine_follows_a_reloaded_holder(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        '[[rule]]\nname = "a"\n[rule.when]\nsubject_contains = "excel"\n[rule.then]\ncategory = "software"\n'
    )
    holder = RulesHolder(path, DEFAULT_CATEGORIES, builtin=False)
    router = RoutingEngine(holder, no_models, {})
    assert router.route(mail()).category.rule == "a"
    path.write_text(
        '[[rule]]\nname = "b"\n[rule.when]\nsubject_contains = "excel"\n[rule.then]\ncategory = "other"\n'
    )
    assert holder.reload()
    assert (router.route(mail()).category.value, router.route(mail()).category.rule) == ("other", "b")


def test_from_config_with_builtins_and_vips(tmp_path: Path) -> None:
    config = RoutingConfig(vip_senders=("ceo@example.com",), thresholds={"category": 0.7})
    assert config.thresholds == {"category": 0.7, "priority": DEFAULT_THRESHOLD}
    router: Router = RoutingEngine.from_config(config, no_models)
    decision = router.route(MailFacts(sender="ceo@example.com", subject="Pilne", body="")).priority
    assert (decision.value, decision.rule) == ("urgent", "builtin-vip")
    assert (
        decision.detail
        == "raised from normal (default: no priority model) by builtin-urgency to high; builtin-vip +1"
    )


def test_the_result_serialises_every_reason(tmp_path: Path) -> None:
    model = FakePredictor("pri-2", label="low", confidence=0.95, top_terms=("fyi",))
    stored = engine(tmp_path, priority=model).route(mail("VPN question")).as_dict()
    assert stored["category"]["reason"] == "rule:vpn"
    assert stored["priority"]["reason"] == "model:pri-2 confidence=0.95"
    assert stored["priority"]["top_terms"] == ["fyi"]
    assert stored["tags"] == ["vpn"]
    assert stored["matched_rules"] == ["vpn"]


@pytest.mark.parametrize(
    "thresholds",
    [{"category": 1.5}, {"colour": 0.5}, {"priority": -0.1}, {"priority": True}],
)
def test_bad_thresholds_are_refused(tmp_path: Path, thresholds: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="routing thresholds"):
        RoutingEngine(rule_set(tmp_path), no_models, thresholds)
    with pytest.raises(ValueError, match="routing thresholds"):
        RoutingConfig(thresholds=thresholds)


def test_the_default_router_is_kept() -> None:
    result = DefaultRouter().route(mail())
    assert (result.category.value, result.priority.value) == ("triage", "normal")
