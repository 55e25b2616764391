"""Hourly budgets on the mail the desk writes on its own, counted in the database.

RFC 3834 section 2 asks an automatic responder to limit its answers to one address, so that two
responders cannot loop (`auto_reply_limit`, counted from the outbox). That limit does nothing
against a flood of mail from a thousand forged senders, each answered once: the desk becomes a
tool for mailing strangers (backscatter). So automatic mail to senders whose mail was not
authenticated also draws on a global and a per-domain hourly budget; a sender whose domain
proved the mail is theirs is answered out of a larger per-address allowance and draws on no
shared budget, so a flood of forgeries can never silence the desk towards real people.

Notices to staff have a budget of their own per person: a flood of tickets must not become a
flood of mail to one technician (the held notices are folded into a digest, see
`tickets.digests`).

Each budget is a set of counters per scope in five-minute windows (`models.budget.MailBudget`);
"the last hour" is the last twelve windows. On PostgreSQL several processes share the counters:
the check and the count run in a short transaction of their own under an advisory lock per
scope, so the budget holds exactly however many workers run, and no lock is held while the
worker's own transaction goes on (a budget counted for a mail whose transaction then rolls back
is lost, which errs on the side of sending less). On SQLite the whole transaction already holds
the one write lock, so the check and the count run in it.

The per-address limit is counted from the outbox, which a worker sees only once the mail is
committed: with several workers, two mails to one address in two uncommitted transactions would
both pass. So on PostgreSQL each address also has a counter ("auto-to:<address>") taken in the
same short locked transaction as the shared budgets, all or none.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, delete, func, select
from sqlalchemy.orm import Session

from models import tables
from models.base import REHEARSAL
from models.leases import bound_idle_transaction
from notify.budget_report import (
    AUTO,
    AUTO_ADDRESS,
    AUTO_AUTHENTICATED,
    AUTO_DOMAIN,
    AUTO_TO,
    DIGEST,
    HOUR,
    STAFF,
    window_start,
)
from notify.budget_report import BudgetReport as BudgetReport
from notify.config import LimitsConfig
from notify.outbox import automatic_sent_recently

log = logging.getLogger("helpdesk.budget")

KEEP = timedelta(hours=2)  # counters older than this are pruned
# A budget transaction idle this long is a stopped process's, and PostgreSQL ends it: it holds the
# budgets' advisory locks, which every acknowledgment of every daemon takes, so a daemon paused
# (SIGSTOP, a frozen VM) between the lock and the commit would hold all the others' acknowledgments
# for as long as it is paused. It takes milliseconds when it runs.
BUDGET_IDLE_SECONDS = 3.0

_budget = tables.mail_budget

# RFC 3834 section 4: "responders MAY refuse to send responses to addresses of the form owner-*,
# *-request, MAILER-DAEMON, etc." Nobody reads an answer there, and a list address would carry it
# to every member.
_NEVER_ANSWERED = frozenset(
    {"mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply", "do_not_reply"}
)
_NEVER_ANSWERED_SUFFIXES = ("-request", "-owner", "-bounce", "-bounces")


def never_answered(address: str) -> bool:
    """A list, daemon or no-reply address (sub-addresses included) that no automatic mail goes to."""
    local = address.lower().rpartition("@")[0].split("+", 1)[0]
    return local in _NEVER_ANSWERED or local.startswith("owner-") or local.endswith(_NEVER_ANSWERED_SUFFIXES)


@dataclass(frozen=True)
class Decision:
    """Whether a mail may go; when not, which limit stopped it and a sentence for the event log."""

    allowed: bool
    limit: str = ""  # rfc3834 | address | domain | global | staff
    reason: str = ""


ALLOWED = Decision(True)


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


def _lock_key(scope: str) -> int:
    """A signed 64-bit key for `pg_advisory_xact_lock`, stable across processes."""
    return int.from_bytes(hashlib.sha256(scope.encode()).digest()[:8], "big", signed=True)


# Statements built once: a flood runs them for every mail, and building one costs more than running it.
_USED = (
    select(_budget.c.scope, func.sum(_budget.c.sent))
    .where(
        _budget.c.scope.in_(bindparam("scopes", expanding=True)), _budget.c.window_start > bindparam("since")
    )
    .group_by(_budget.c.scope)
)


def _upsert(insert: Any) -> Any:
    statement = insert(_budget).values(
        scope=bindparam("scope"),
        window_start=bindparam("window_start"),
        sent=bindparam("sent"),
        suppressed=bindparam("suppressed"),
    )
    return statement.on_conflict_do_update(
        index_elements=[_budget.c.scope, _budget.c.window_start],
        set_={
            "sent": _budget.c.sent + statement.excluded.sent,
            "suppressed": _budget.c.suppressed + statement.excluded.suppressed,
        },
    )


@functools.cache
def _upsert_for(dialect: str) -> Any:
    """The upsert of `dialect`, built once; its dialect is imported only by a desk that uses it
    (the PostgreSQL dialect was a tenth of what `helpdesk status` took on a SQLite desk)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return _upsert(pg_insert)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return _upsert(sqlite_insert)


def _used(conn: Connection, scopes: Sequence[str], now: datetime) -> dict[str, int]:
    rows = conn.execute(_USED, {"scopes": list(scopes), "since": window_start(now) - HOUR})
    return {scope: int(total or 0) for scope, total in rows}


def _add(conn: Connection, scope: str, now: datetime, *, sent: int = 0, suppressed: int = 0) -> None:
    conn.execute(
        _upsert_for(conn.dialect.name),
        {"scope": scope[:400], "window_start": window_start(now), "sent": sent, "suppressed": suppressed},
    )


def _check_and_count(
    conn: Connection, caps: Sequence[tuple[str, int]], also: Sequence[str], now: datetime
) -> str | None:
    """Count one mail on every scope, unless one of `caps` is full: then count one suppression on
    it and return its scope. `also` are scopes counted without a cap."""
    used = _used(conn, [scope for scope, _ in caps], now) if caps else {}
    for scope, cap in caps:
        if used.get(scope, 0) >= cap:
            _add(conn, scope, now, suppressed=1)
            return scope
    for scope in (*(scope for scope, _ in caps), *also):
        _add(conn, scope, now, sent=1)
    return None


def reserve(
    session: Session, caps: Sequence[tuple[str, int]], now: datetime, *, also: Sequence[str] = ()
) -> str | None:
    """Take one mail from each budget in `caps` (scope, hourly cap), all or none.

    Returns None when the mail may go (and it is counted), or the scope whose budget is used up
    (and the suppression is counted there).
    """
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql" and REHEARSAL not in session.info:
        with bind.begin() as conn:
            bound_idle_transaction(conn, BUDGET_IDLE_SECONDS)
            for scope in sorted({scope for scope, _ in caps}):
                conn.execute(select(func.pg_advisory_xact_lock(_lock_key(scope))))
            return _check_and_count(conn, caps, also, now)
    return _check_and_count(session.connection(), caps, also, now)


def _shared(session: Session) -> bool:
    """Several processes may count at once (PostgreSQL): counters must decide, not the outbox."""
    bind = session.get_bind()
    return isinstance(bind, Engine) and bind.dialect.name == "postgresql"


def count_suppressed(session: Session, scope: str, now: datetime) -> None:
    bind = session.get_bind()
    if isinstance(bind, Engine) and bind.dialect.name == "postgresql" and REHEARSAL not in session.info:
        with bind.begin() as conn:
            bound_idle_transaction(conn, BUDGET_IDLE_SECONDS)
            _add(conn, scope, now, suppressed=1)
        return
    _add(session.connection(), scope, now, suppressed=1)


class LogThrottle:
    """One log line per condition per interval; the repeats in between are summed into the next.

    A flood suppresses hundreds of mails a minute: one line each would bury the log.
    """

    def __init__(self, logger: logging.Logger, interval: float = 60.0) -> None:
        self._log = logger
        self._interval = interval
        self._last: dict[str, float] = {}
        self._skipped: dict[str, int] = {}

    def __call__(self, key: str, level: int, msg: str, *args: object) -> None:
        now = time.monotonic()
        last = self._last.get(key)
        if last is not None and now - last < self._interval:
            self._skipped[key] = self._skipped.get(key, 0) + 1
            return
        self._last[key] = now
        skipped = self._skipped.pop(key, 0)
        if skipped:
            self._log.log(
                level, msg + " (and %d more like it in the last %d s)", *args, skipped, self._interval
            )
        else:
            self._log.log(level, msg, *args)


@dataclass
class Budgets:
    """The desk's budgets on automatic mail and staff notices."""

    limits: LimitsConfig = field(default_factory=LimitsConfig)
    per_address: int = 5  # [mail] auto_reply_limit: RFC 3834 loop protection, for everyone

    def automatic(self, session: Session, recipient: str, now: datetime, *, authenticated: bool) -> Decision:
        """May one more automatic mail go to `recipient`? Counted when it may."""
        recipient = recipient.lower()
        if never_answered(recipient):
            return Decision(
                False, "rfc3834", "automatic mail never goes to list, daemon or no-reply addresses"
            )
        per_address = self.limits.authenticated_per_address_per_hour if authenticated else self.per_address
        if automatic_sent_recently(session, recipient, now) >= per_address:
            count_suppressed(session, AUTO_ADDRESS, now)
            return Decision(
                False,
                "address",
                f"more than {per_address} automatic mails to that address in the last hour",
            )
        address = ((AUTO_TO + recipient, per_address),) if _shared(session) else ()
        if authenticated:
            stopped = reserve(session, address, now, also=(AUTO_AUTHENTICATED,))
        else:
            domain = domain_of(recipient)
            stopped = reserve(
                session,
                (
                    *address,
                    (AUTO, self.limits.automatic_per_hour),
                    (AUTO_DOMAIN + domain, self.limits.automatic_per_domain_per_hour),
                ),
                now,
            )
        if stopped is None:
            return ALLOWED
        if stopped.startswith(AUTO_TO):
            count_suppressed(session, AUTO_ADDRESS, now)
            return Decision(
                False,
                "address",
                f"more than {per_address} automatic mails to that address in the last hour",
            )
        if stopped == AUTO:
            return Decision(
                False,
                "global",
                f"the hourly budget of {self.limits.automatic_per_hour} automatic mails to "
                "unauthenticated senders is used up",
            )
        return Decision(
            False,
            "domain",
            f"the hourly budget of {self.limits.automatic_per_domain_per_hour} automatic mails to "
            f"unauthenticated senders in {domain} is used up",
        )

    def staff_notice(self, session: Session, recipient: str, now: datetime) -> Decision:
        """May one more notice go to this technician or coordinator this hour?"""
        cap = self.limits.staff_notices_per_hour
        if reserve(session, ((STAFF + recipient.lower(), cap),), now) is None:
            return ALLOWED
        return Decision(False, "staff", f"{cap} notices to {recipient} in the last hour; held for the digest")

    def digest(self, session: Session, recipient: str, now: datetime) -> bool:
        """May a digest go to `recipient` now (one an hour)? Counted when it may."""
        return reserve(session, ((DIGEST + recipient.lower(), 1),), now) is None

    def report(self, session: Session, now: datetime) -> BudgetReport:
        """What the budgets let through and stopped in the last hour (for `helpdesk status`)."""
        since = window_start(now) - HOUR
        rows = session.execute(
            select(_budget.c.scope, func.sum(_budget.c.sent), func.sum(_budget.c.suppressed))
            .where(_budget.c.window_start > since)
            .group_by(_budget.c.scope)
        ).all()
        report = BudgetReport(limits=self.limits)
        for scope, sent, suppressed in rows:
            report.add(str(scope), int(sent or 0), int(suppressed or 0))
        return report

    def prune(self, session: Session, now: datetime) -> int:
        result = session.execute(delete(_budget).where(_budget.c.window_start < window_start(now) - KEEP))
        return int(getattr(result, "rowcount", 0) or 0)
