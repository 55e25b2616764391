"""Errors of the routing rules: one exception that carries every problem found in a rules file.

An admin who edits the rules file should be able to fix it in one pass, so the loader does not stop
at the first mistake: it collects each problem with where it is (the rule's name, or its position
when it has none) and raises them together.

    RoutingError, ValueError
     └── RulesError      the rules (file or built-in settings) cannot be used; `.problems` says why
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from routing.errors import RoutingError


@dataclass(frozen=True)
class RuleProblem:
    """One thing wrong with the rules: where it is and what is wrong."""

    where: str  # 'rule #2 "vpn"', 'rule #3 (no name)', 'file', or a setting's name
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


class RulesError(RoutingError, ValueError):
    """The rules at `source` cannot be used; every problem found is in `problems`."""

    def __init__(self, source: str, problems: Sequence[RuleProblem]) -> None:
        self.source = source
        self.problems = tuple(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"rules file {source}: {count} problem{'s' if count != 1 else ''}\n{lines}")
