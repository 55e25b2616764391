"""The routing engine: rules first, then the classifier, then the defaults.

`Router` is what intake calls for every new ticket. `DefaultRouter` is the fallback with no
rules and no model: category `triage` (left to the coordinator) and priority `normal`.
"""

from __future__ import annotations

from typing import Protocol

from routing.facts import DEFAULT_CATEGORY, DEFAULT_PRIORITY, FieldDecision, MailFacts, RoutingResult


class Router(Protocol):
    def route(self, facts: MailFacts) -> RoutingResult: ...


class DefaultRouter:
    """No rules and no model: everything goes to triage at normal priority."""

    def route(self, facts: MailFacts) -> RoutingResult:
        return RoutingResult(
            category=FieldDecision(DEFAULT_CATEGORY, "default", detail="default: no rule or model decided"),
            priority=FieldDecision(DEFAULT_PRIORITY.value, "default", detail="default"),
        )
