"""Typed settings of the outgoing side, filled by the composition root from `helpdesk.toml`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class MailIdentity:
    """Who the helpdesk is on the wire."""

    address: str  # support@example.test; its plus-addresses are ours too
    name: str = "Helpdesk"
    secret: str = ""  # HMAC key of the reply tokens in plus-addresses
    instance: str = "helpdesk"  # names this installation in X-Helpdesk-Loop, to recognise our own mail

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0].lower()

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2].lower()

    def plus_address(self, tag: str) -> str:
        return f"{self.local_part}+{tag}@{self.domain}"

    def is_ours(self, address: str) -> bool:
        """True for the helpdesk address and any of its plus-addresses (case-insensitive)."""
        local, _, domain = address.lower().rpartition("@")
        if domain != self.domain:
            return False
        return local == self.local_part or local.startswith(self.local_part + "+")

    def tag_of(self, address: str) -> str | None:
        """The part after '+' of one of our plus-addresses, lower-cased; None otherwise."""
        local, _, domain = address.lower().rpartition("@")
        if domain != self.domain or not local.startswith(self.local_part + "+"):
            return None
        return local[len(self.local_part) + 1 :]


@dataclass(frozen=True)
class TokenConfig:
    """How long the reply tokens of staff are honoured (see notify.tokens)."""

    # Seconds after the day a technician's or coordinator's token was made; every mail we send
    # them about a ticket carries a fresh one, so only forwarded or forgotten mail grows this old.
    lifetime: float = 30 * 86400


@dataclass(frozen=True)
class SmtpOutConfig:
    host: str
    port: int
    tls: str = "starttls"  # "ssl" (implicit TLS), "starttls" (when offered; required if user is set), "none"
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0  # one read or write
    verify_tls: bool = True
    # One transaction (connecting, EHLO, STARTTLS and AUTH for the first mail, MAIL, RCPT, DATA)
    # must be over within this, however slowly the relay answers; RFC 5321 section 4.5.3.2 lets a
    # relay take up to 10 minutes for the answer to the final dot alone.
    transaction_timeout: float = 600.0


@dataclass(frozen=True)
class OutgoingConfig:
    """Where outgoing mail goes: a maildir (the embedded default) or an SMTP relay."""

    maildir: Path | None = None
    smtp: SmtpOutConfig | None = None
    retry_for: float = 2 * 24 * 3600  # seconds to keep retrying 4xx and connection errors
    backoff_initial: float = 60.0
    backoff_max: float = 3600.0
    # Mail is delivered on this many connections at once, so one slow transaction holds only itself.
    connections: int = 4
    # RFC 3834 section 2: never more automatic answers than this to one address per hour.
    auto_reply_limit_per_hour: int = 5


@dataclass(frozen=True)
class LimitsConfig:
    """Hourly budgets on the mail the desk writes on its own, counted in the database.

    RFC 3834 asks an automatic responder not to become a tool for mailing third parties. The
    per-address limit (`OutgoingConfig.auto_reply_limit_per_hour`) stops loops; these stop a flood
    of forged senders from turning the desk into a spam cannon, and a flood of tickets from
    turning into a flood of mail to the staff.
    """

    # Automatic mail to senders whose mail was not authenticated: all of it, and per domain.
    automatic_per_hour: int = 300
    automatic_per_domain_per_hour: int = 30
    # An authenticated sender is answered out of no shared budget, only this per-address allowance.
    authenticated_per_address_per_hour: int = 30
    # Notices to one technician or coordinator (assignments, SLA warnings, ...); the rest are
    # folded into one digest mail.
    staff_notices_per_hour: int = 30
