"""What `helpdesk status` says of the budgets on automatic mail: the scopes the counters are kept
under, their five-minute windows, and the report of the last hour.

Apart from notify/budget.py, which counts and checks with SQLAlchemy, so that `helpdesk status`
reads the counters with the DBAPI alone and reports them through this same code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from notify.config import LimitsConfig

WINDOW = timedelta(minutes=5)
HOUR = timedelta(hours=1)

# Scopes of the counters.
AUTO = "auto"  # automatic mail to unauthenticated senders, all domains
AUTO_DOMAIN = "auto-domain:"  # ... to one domain
AUTO_ADDRESS = "auto-address"  # suppressions by the per-address limit (its sends are counted in the outbox)
AUTO_AUTHENTICATED = "auto-authenticated"  # automatic mail to authenticated senders: counted, never capped
AUTO_TO = "auto-to:"  # automatic mail to one address (PostgreSQL: the per-address limit across workers)
STAFF = "staff:"  # notices to one technician or coordinator
DIGEST = "digest:"  # digests to one of them: one an hour


def window_start(now: datetime) -> datetime:
    seconds = int(WINDOW.total_seconds())
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


@dataclass
class BudgetReport:
    limits: LimitsConfig
    automatic_sent: int = 0  # to unauthenticated senders
    authenticated_sent: int = 0
    suppressed_global: int = 0
    suppressed_domain: int = 0
    suppressed_address: int = 0
    staff_held: int = 0
    domains: dict[str, int] = field(default_factory=dict)  # suppressions per domain

    def add(self, scope: str, sent: int, suppressed: int) -> None:
        if scope == AUTO:
            self.automatic_sent += sent
            self.suppressed_global += suppressed
        elif scope.startswith(AUTO_DOMAIN):
            self.suppressed_domain += suppressed
            if suppressed:
                self.domains[scope[len(AUTO_DOMAIN) :]] = suppressed
        elif scope == AUTO_ADDRESS:
            self.suppressed_address += suppressed
        elif scope == AUTO_AUTHENTICATED:
            self.authenticated_sent += sent
        elif scope.startswith(STAFF):
            self.staff_held += suppressed

    @property
    def suppressed(self) -> int:
        return self.suppressed_global + self.suppressed_domain + self.suppressed_address

    def top_domains(self, count: int = 5) -> list[tuple[str, int]]:
        return sorted(self.domains.items(), key=lambda item: (-item[1], item[0]))[:count]

    def as_dict(self) -> dict[str, object]:
        return {
            "automatic_sent": self.automatic_sent,
            "automatic_limit": self.limits.automatic_per_hour,
            "authenticated_sent": self.authenticated_sent,
            "suppressed": self.suppressed,
            "suppressed_global": self.suppressed_global,
            "suppressed_domain": self.suppressed_domain,
            "suppressed_address": self.suppressed_address,
            "suppressed_domains": dict(self.top_domains()),
            "staff_notices_held": self.staff_held,
        }
