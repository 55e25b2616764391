"""The settings of routing: one typed object that the composition root fills from `[routing]`."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from routing.errors import RoutingConfigError
from routing.facts import DEFAULT_CATEGORY

TARGET_CATEGORY = "category"
TARGET_PRIORITY = "priority"
TARGETS = (TARGET_CATEGORY, TARGET_PRIORITY)

DEFAULT_CATEGORIES = (
    "network",
    "hardware",
    "software",
    "accounts",
    "email",
    "printing",
    "security",
    "other",
    DEFAULT_CATEGORY,
)
# A model's answer is used only when its calibrated probability reaches this; below, the default.
DEFAULT_THRESHOLD = 0.6


def check_thresholds(thresholds: Mapping[str, float]) -> dict[str, float]:
    """Every target's threshold, defaults filled in; RoutingConfigError for an unknown target or a bad value."""
    unknown = sorted(set(thresholds) - set(TARGETS))
    if unknown:
        raise RoutingConfigError(f"routing thresholds: unknown target(s) {unknown}; known: {list(TARGETS)}")
    result = dict.fromkeys(TARGETS, DEFAULT_THRESHOLD)
    for target, value in thresholds.items():
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
            raise RoutingConfigError(
                f"routing thresholds: {target} must be a number from 0 to 1, got {value!r}"
            )
        result[target] = float(value)
    return result


@dataclass(frozen=True)
class RoutingConfig:
    """How tickets are routed: the rules file, the built-in rules, VIPs, model thresholds, categories."""

    rules_path: Path | None = None  # None: no rules file, only the built-in rules
    builtin_rules: bool = True
    vip_senders: tuple[str, ...] = ()  # addresses ("ceo@example.com") or domains ("board.example.com")
    thresholds: Mapping[str, float] = field(default_factory=lambda: dict.fromkeys(TARGETS, DEFAULT_THRESHOLD))
    categories: tuple[str, ...] = DEFAULT_CATEGORIES
    # How often the daemon looks at the rules file's modification time to reload it; 0 turns that off
    # (SIGHUP still reloads).
    rules_check_seconds: float = 5.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "thresholds", check_thresholds(self.thresholds))
        if not self.categories or not all(isinstance(c, str) and c.strip() for c in self.categories):
            raise RoutingConfigError("routing categories: expected a non-empty list of names")
        if not math.isfinite(self.rules_check_seconds) or self.rules_check_seconds < 0:
            raise RoutingConfigError(
                f"routing rules_check_seconds must be 0 or more, got {self.rules_check_seconds!r}"
            )
