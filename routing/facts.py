"""What routing knows about a mail, and what it decided: the typed hand-off between intake and routing.

Intake turns a parsed mail into `MailFacts`; the routing engine answers with a `RoutingResult`
that records, per field, the value and the reason (rule name, or model version with confidence
and the terms that weighed most) so an admin can read why a ticket landed where it did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models.kinds import Priority

DEFAULT_CATEGORY = "triage"
DEFAULT_PRIORITY = Priority.NORMAL


@dataclass(frozen=True)
class AttachmentFacts:
    filename: str
    content_type: str
    size: int


@dataclass(frozen=True)
class MailFacts:
    sender: str  # lower-cased address
    subject: str
    body: str  # the new text of the mail: quoted history and signature removed
    language: str = "en"  # ISO 639-1 ("en", "pl", "de", ...) or "und"
    sender_name: str = ""
    # Every address the mail was sent to (To, Cc, envelope), lower-cased; plus-addresses included.
    recipients: tuple[str, ...] = ()
    # Lower-cased header name -> every value it had, decoded.
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    attachments: tuple[AttachmentFacts, ...] = ()

    @property
    def sender_domain(self) -> str:
        return self.sender.rpartition("@")[2]


@dataclass(frozen=True)
class Prediction:
    """A trained model's answer for one target: the label, its calibrated probability, and why."""

    label: str
    confidence: float  # calibrated probability of `label`, 0..1
    model_version: str
    top_terms: tuple[str, ...] = ()  # the features that weighed most for `label`


@dataclass(frozen=True)
class FieldDecision:
    """One routed field (category or priority) and why it has that value."""

    value: str
    source: str  # "rule", "model" or "default"
    rule: str | None = None
    model_version: str | None = None
    confidence: float | None = None
    top_terms: tuple[str, ...] = ()
    detail: str = ""

    @property
    def reason(self) -> str:
        if self.source == "rule":
            return f"rule:{self.rule}"
        if self.source == "model":
            conf = f" confidence={self.confidence:.2f}" if self.confidence is not None else ""
            return f"model:{self.model_version}{conf}"
        return self.detail or "default"

    def as_dict(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "source": self.source,
            "rule": self.rule,
            "model_version": self.model_version,
            "confidence": self.confidence,
            "top_terms": list(self.top_terms),
            "detail": self.detail,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class RoutingResult:
    category: FieldDecision
    priority: FieldDecision
    tags: tuple[str, ...] = ()
    assignee: str | None = None  # a rule's fixed assignee, if any
    matched_rules: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.category.as_dict(),
            "priority": self.priority.as_dict(),
            "tags": list(self.tags),
            "assignee": self.assignee,
            "matched_rules": list(self.matched_rules),
        }
