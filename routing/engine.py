"""The routing engine: rules first, then the classifier, then the defaults.

`Router` is what intake calls for every new ticket. `RoutingEngine` is the real one:

1. The rules (`routing.rules`) run first. A field a rule set is final.
2. For each field no rule set, the trained model for that target is asked; its label is used when
   its confidence reaches the target's threshold (and the label is a known category or priority).
3. Otherwise the default: category `triage` (left to the coordinator), priority `normal`.
4. Priority raises from rules (`raise_priority_to`, `raise_priority`, the built-in urgency and VIP
   rules) then lift the priority from step 2 or 3, never lower it: a rule's "at least high" keeps a
   model's "normal" at high, and a model's confident "urgent" stays urgent. An explicit
   `priority = ...` in a rule is final: the model is not asked and raises are ignored.

Every decision carries its reason: the rule's name, or the model's version with its confidence and
top terms, or why the default was used. A model that fails is logged and routing goes on with the
default. `DefaultRouter` is the fallback with no rules and no model.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Protocol, SupportsFloat

from models.ticket import Priority
from routing.config import TARGET_CATEGORY, TARGET_PRIORITY, RoutingConfig, check_thresholds
from routing.facts import (
    DEFAULT_CATEGORY,
    DEFAULT_PRIORITY,
    FieldDecision,
    MailFacts,
    Prediction,
    RoutingResult,
)
from routing.rules import RuleHit, RuleOutcome, RuleSet, apply_raises
from routing.rules_loader import RulesHolder

logger = logging.getLogger(__name__)


class Router(Protocol):
    def route(self, facts: MailFacts) -> RoutingResult: ...


class Predictor(Protocol):
    """A trained model for one target ("category" or "priority")."""

    @property
    def version(self) -> str: ...

    def predict(self, subject: str, body: str) -> Prediction: ...


# The model in force for a target, or None when there is none; asked on every mail, so the daemon can
# swap models without a restart.
ModelProvider = Callable[[str], Predictor | None]


def no_models(target: str) -> Predictor | None:
    """A provider for a helpdesk with no trained model yet."""
    return None


class DefaultRouter:
    """No rules and no model: everything goes to triage at normal priority."""

    def route(self, facts: MailFacts) -> RoutingResult:
        return RoutingResult(
            category=FieldDecision(DEFAULT_CATEGORY, "default", detail="default: no rule or model decided"),
            priority=FieldDecision(DEFAULT_PRIORITY.value, "default", detail="default"),
        )


@dataclass(frozen=True)
class _Answer:
    """A model's usable prediction, or why there is none."""

    prediction: Prediction | None
    why_not: str = ""


class RoutingEngine:
    """Rules, then the models above their thresholds, then the defaults; see the module's docstring."""

    def __init__(
        self, rules: RuleSet | RulesHolder, models: ModelProvider, thresholds: Mapping[str, float]
    ) -> None:
        self._rules = rules
        self._models = models
        self._thresholds = check_thresholds(thresholds)

    @classmethod
    def from_config(cls, config: RoutingConfig, models: ModelProvider) -> RoutingEngine:
        """An engine over a reloadable holder of the configured rules; RulesError if they are broken."""
        return cls(RulesHolder.from_config(config), models, config.thresholds)

    @property
    def rules(self) -> RuleSet:
        return self._rules.current if isinstance(self._rules, RulesHolder) else self._rules

    def route(self, facts: MailFacts) -> RoutingResult:
        rules = self.rules
        outcome = rules.evaluate(facts)
        category = self._category(facts, outcome, rules.categories)
        priority = self._priority(facts, outcome)
        logger.debug(
            "ROUTE category=%s by=%s priority=%s by=%s rules=%s",
            category.value,
            category.reason,
            priority.value,
            priority.reason,
            ",".join(outcome.matched) or "-",
        )
        return RoutingResult(
            category=category,
            priority=priority,
            tags=outcome.tags,
            assignee=outcome.assignee.value if outcome.assignee else None,
            matched_rules=outcome.matched,
        )

    def _category(self, facts: MailFacts, outcome: RuleOutcome, known: frozenset[str]) -> FieldDecision:
        if outcome.category is not None:
            return _by_rule(outcome.category)
        answer = self._ask(TARGET_CATEGORY, facts, known)
        if answer.prediction is None:
            return FieldDecision(
                DEFAULT_CATEGORY, "default", detail=f"default: no rule set it; {answer.why_not}"
            )
        return self._by_model(TARGET_CATEGORY, answer.prediction)

    def _priority(self, facts: MailFacts, outcome: RuleOutcome) -> FieldDecision:
        if outcome.priority is not None:
            decision = _by_rule(outcome.priority)
            if outcome.raises:
                ignored = ", ".join(r.rule for r in outcome.raises)
                decision = _with_detail(decision, f"raises by {ignored} ignored: priority set explicitly")
            return decision
        answer = self._ask(TARGET_PRIORITY, facts, {p.value for p in Priority})
        if answer.prediction is None:
            base = FieldDecision(DEFAULT_PRIORITY.value, "default", detail=f"default: {answer.why_not}")
        else:
            base = self._by_model(TARGET_PRIORITY, answer.prediction)
        if not outcome.raises:
            return base
        raised = apply_raises(Priority(base.value), outcome.raises)
        if raised.rule is None:
            floors = ", ".join(r.rule for r in outcome.raises)
            return _with_detail(base, f"not lifted by {floors}: already {base.value}")
        return FieldDecision(
            raised.value.value,
            "rule",
            rule=raised.rule,
            detail=f"raised from {base.value} ({base.detail}) by {'; '.join(raised.applied)}",
        )

    def _ask(self, target: str, facts: MailFacts, labels: frozenset[str] | set[str]) -> _Answer:
        """The model's prediction for `target` if it is usable, else why not; never raises."""
        # A model is outside code: whatever it raises is logged and routing goes on without it.
        try:
            model = self._models(target)
        except Exception as exc:
            logger.warning("MODEL provider failed for %s: %s", target, exc, exc_info=True)
            return _Answer(None, f"{target} model unavailable ({type(exc).__name__}: {exc})")
        if model is None:
            return _Answer(None, f"no {target} model")
        try:
            prediction = model.predict(facts.subject, facts.body)
            if not prediction.model_version:
                prediction = replace(prediction, model_version=str(model.version))
        except Exception as exc:
            version = _version_of(model)
            logger.warning("MODEL %s failed for %s: %s", version, target, exc, exc_info=True)
            return _Answer(None, f"model {version} failed ({type(exc).__name__}: {exc})")
        version = prediction.model_version
        # float() also accepts the numpy scalars a scikit-learn model tends to hand back.
        confidence = _as_probability(prediction.confidence)
        if confidence is None:
            return _Answer(None, f"model {version} gave an invalid confidence {prediction.confidence!r}")
        prediction = replace(prediction, confidence=confidence)
        if prediction.label not in labels:
            return _Answer(None, f"model {version} predicted unknown {target} {prediction.label!r}")
        threshold = self._thresholds[target]
        if confidence < threshold:
            return _Answer(
                None,
                f"model {version} confidence {confidence:.2f} below threshold {threshold:.2f}"
                f" (it said {prediction.label})",
            )
        return _Answer(prediction)

    def _by_model(self, target: str, prediction: Prediction) -> FieldDecision:
        threshold = self._thresholds[target]
        terms = f"; top terms: {', '.join(prediction.top_terms)}" if prediction.top_terms else ""
        return FieldDecision(
            prediction.label,
            "model",
            model_version=prediction.model_version,
            confidence=prediction.confidence,
            top_terms=prediction.top_terms,
            detail=(
                f"model {prediction.model_version} confidence {prediction.confidence:.2f}"
                f" >= threshold {threshold:.2f}{terms}"
            ),
        )


def _by_rule(hit: RuleHit) -> FieldDecision:
    detail = f"rule {hit.rule}: {hit.description}" if hit.description else f"rule {hit.rule}"
    return FieldDecision(hit.value, "rule", rule=hit.rule, detail=detail)


def _with_detail(decision: FieldDecision, extra: str) -> FieldDecision:
    return replace(decision, detail=f"{decision.detail}; {extra}" if decision.detail else extra)


def _as_probability(value: object) -> float | None:
    if not isinstance(value, SupportsFloat):
        return None
    number = float(value)
    return number if 0.0 <= number <= 1.0 else None  # NaN fails both comparisons


def _version_of(model: Predictor) -> str:
    try:
        return str(model.version)
    except Exception:  # only for a log line about a model that already failed
        return "(unknown version)"
