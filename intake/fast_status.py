"""What `helpdesk status` reads, over the DBAPI alone (models/dbapi.py).

The same reads as intake/quarantine.py (`queue_counts`, `oldest_waiting`), tickets/queries.py
(`status_counts`), notify/budget.py (`Budgets.report`), models/heartbeat.py (`daemon_statuses`,
on the database's clock) and intake/imap_state.py (`mailbox_statuses`), with the same values, so
the command prints the same; loading SQLAlchemy and mapping every table took most of its time.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from models.dbapi import DATETIME, Database
from models.kinds import OutboxStatus, RawStatus, TicketStatus
from models.liveness import HEARTBEAT_TIMEOUT
from notify.budget_report import HOUR, BudgetReport, window_start
from notify.config import LimitsConfig


@dataclass(frozen=True)
class FastStatus:
    """Everything `helpdesk status` shows that the database holds."""

    queue: dict[RawStatus, int]
    oldest_waiting: datetime | None
    tickets: dict[TicketStatus, int]
    outbox: dict[OutboxStatus, int]
    held_notices_pending: int
    budgets: BudgetReport
    daemons: list[Any]  # with models/heartbeat.py `DaemonStatus`'s fields
    mailboxes: list[Any]  # mailbox_states rows, by name


def read_status(db: Database, limits: LimitsConfig, now: datetime) -> FastStatus:
    """The status at `now` (this process's clock: the budgets' windows are counted on it)."""
    queue = _counts(db, "raw_messages")
    oldest = db.query(
        f"SELECT min(received_at) FROM raw_messages WHERE status = {db.mark}", (RawStatus.RECEIVED.value,)
    )
    tickets = _counts(db, "tickets")
    outbox = _counts(db, "outbox")
    held = db.query("SELECT count(*) FROM held_notices WHERE digested_at IS NULL")[0][0]
    return FastStatus(
        queue={s: int(queue.get(s.value, 0)) for s in RawStatus},
        oldest_waiting=db.value(DATETIME, oldest[0][0]),
        tickets={s: int(tickets.get(s.value, 0)) for s in TicketStatus},
        outbox={s: int(outbox.get(s.value, 0)) for s in OutboxStatus},
        held_notices_pending=int(held or 0),
        budgets=_budgets(db, limits, now),
        daemons=_daemons(db),
        mailboxes=db.records("mailbox_states", "SELECT * FROM mailbox_states ORDER BY name"),
    )


def _counts(db: Database, table: str) -> dict[str, int]:
    return {str(s): int(n) for s, n in db.query(f"SELECT status, count(*) FROM {table} GROUP BY status")}


def _budgets(db: Database, limits: LimitsConfig, now: datetime) -> BudgetReport:
    """notify/budget.py `Budgets.report`: what the budgets let through and stopped in the last hour."""
    since = db.datetime(window_start(now) - HOUR)
    rows = db.query(
        f"SELECT scope, sum(sent), sum(suppressed) FROM mail_budget WHERE window_start > {db.mark} GROUP BY scope",
        (since,),
    )
    report = BudgetReport(limits=limits)
    for scope, sent, suppressed in rows:
        report.add(str(scope), int(sent or 0), int(suppressed or 0))
    return report


def _daemons(db: Database, timeout: float = HEARTBEAT_TIMEOUT) -> list[Any]:
    """models/heartbeat.py `daemon_statuses`, on the database's clock (`database_now`)."""
    rows = db.records("daemons", "SELECT * FROM daemons ORDER BY started_at, holder")
    if not rows:
        return []
    now: datetime = db.query("SELECT now()")[0][0] if db.backend == "postgresql" else datetime.now(UTC)
    held: dict[str, dict[str, int]] = {}
    for table, status in (
        ("raw_messages", RawStatus.PROCESSING.value),
        ("outbox", OutboxStatus.SENDING.value),
    ):
        statement = (
            f"SELECT claimed_by, count(*) FROM {table} WHERE status = {db.mark} "
            "AND claimed_by IS NOT NULL GROUP BY claimed_by"
        )
        held[table] = {str(holder): int(count) for holder, count in db.query(statement, (status,))}
    polled: dict[str, list[str]] = defaultdict(list)
    for name, holder in db.query("SELECT name, holder FROM mailbox_states WHERE holder IS NOT NULL"):
        polled[str(holder)].append(name)
    return [
        SimpleNamespace(
            holder=row.holder,
            host=row.host,
            pid=row.pid,
            started_at=row.started_at,
            beat_at=row.beat_at,
            silent=row.beat_at < now - timedelta(seconds=timeout),
            raw_held=held["raw_messages"].get(row.holder, 0),
            outbox_held=held["outbox"].get(row.holder, 0),
            mailboxes=tuple(sorted(polled.get(row.holder, ()))),
        )
        for row in rows
    ]
