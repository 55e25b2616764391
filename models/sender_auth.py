"""The sender authentication verdict stored with each raw mail (`raw_messages.sender_auth`).

`intake.authentication` decides it from trusted Authentication-Results (RFC 8601) and, when
asked, a DKIM check of its own; tickets read it back to decide what may be answered, and the CLI
shows it. Stored as the dict of `SenderAuth.as_dict`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class AuthResult(enum.StrEnum):
    PASS = "pass"
    NONE = "none"
    FAIL = "fail"


@dataclass(frozen=True)
class SenderAuth:
    """The sender authentication verdict on one mail."""

    result: AuthResult = AuthResult.NONE
    domain: str = ""  # pass: the From domain that was proven; fail: the From domain that failed
    method: str = ""  # dmarc | dkim | spf
    by: str = ""  # the trusted authserv-id that said so, or "helpdesk" for our own DKIM check
    reason: str = ""  # the result as written, e.g. "dkim=pass header.d=example.com"

    @property
    def passed(self) -> bool:
        return self.result is AuthResult.PASS

    @property
    def failed(self) -> bool:
        return self.result is AuthResult.FAIL

    def authenticates(self, address: str) -> bool:
        """Whether this verdict proves mail from `address` came from its domain."""
        return self.passed and bool(self.domain) and domain_of(address) == self.domain

    def describe(self) -> str:
        """One line for people: `pass example.com (dkim by mx.example.net)`."""
        head = f"{self.result.value} {self.domain}".rstrip()
        detail = " by ".join(part for part in (self.method, self.by) if part)
        text = f"{head} ({detail})" if detail else head
        return f"{text}: {self.reason}" if self.reason else text

    def as_dict(self) -> dict[str, str]:
        return {
            "result": self.result.value,
            "domain": self.domain,
            "method": self.method,
            "by": self.by,
            "reason": self.reason[:500],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> SenderAuth | None:
        if not data:
            return None
        try:
            result = AuthResult(str(data.get("result", "none")))
        except ValueError:
            return None
        return cls(
            result,
            str(data.get("domain", "")),
            str(data.get("method", "")),
            str(data.get("by", "")),
            str(data.get("reason", "")),
        )


NOT_CHECKED = SenderAuth(
    AuthResult.NONE, reason="not checked: no authserv-id is trusted and DKIM is not verified here"
)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].strip().lower().rstrip(".")
