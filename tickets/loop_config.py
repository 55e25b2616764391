"""The typed settings of the loop's timers and suggestions, light to import (the settings read them).

`[lifecycle]` (`tickets.lifecycle`) and `[knowledge]` (`tickets.suggestions`); each default is
written here once.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LifecycleConfig:
    """`[lifecycle]`: business days to the reminder, business days more to auto-resolution, days
    from resolved to closed. Zero turns a step off."""

    waiting_reminder: int = 3
    waiting_close: int = 4
    resolved_close: int = 7


@dataclass(frozen=True)
class KnowledgeConfig:
    """`[knowledge]`: when an article is offered in an acknowledgment, and where the site is."""

    suggest_threshold: float = 0.3
    suggestions: int = 3
    site_url: str = ""  # where `helpdesk kb export --html` is published; links in mail when set
