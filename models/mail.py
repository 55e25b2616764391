"""A mail as the desk keeps it once parsed: the frozen `ParsedEmail` intake builds and tickets store.

`intake.parse` makes it from the raw bytes; `tickets` stores it on a ticket and answers it. It
lives here, below both, so that neither has to import the other to speak of a mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Address:
    name: str
    addr: str  # lower-cased

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str  # sanitised: no path, no control characters
    content_type: str
    size: int
    sha256: str
    content: bytes | None  # None when omitted
    omitted: str | None = None  # why the content was not kept


@dataclass(frozen=True)
class DeliveryReport:
    """The parts of an RFC 3464 delivery status notification that matter to a ticket."""

    original_message_id: str | None
    recipients: tuple[str, ...]
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # e.g. 5.1.1
    diagnostic: str


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    text: str  # the whole text body
    new_text: str  # quoted history and signature removed
    html_only: bool
    attachments: tuple[ParsedAttachment, ...]
    language: str
    content_type: str
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    report: DeliveryReport | None = None
    defects: tuple[str, ...] = ()
    # What was left out by the per-mail caps, counted: {"attachments": 49900, "references": ...}.
    omitted: Mapping[str, int] = field(default_factory=dict)

    @property
    def sender(self) -> str:
        return self.from_.addr if self.from_ else ""

    @property
    def references_all(self) -> tuple[str, ...]:
        """In-Reply-To first, then References from the newest to the oldest, without repeats."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(ref, None)
        return tuple(seen)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""
