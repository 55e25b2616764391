"""The weekly report's bookkeeping: when it last went out, and who gets it.

Whether this week's report was sent is read from the outbox (a row of kind `weekly_report`),
in the same database every daemon shares: the elected sender (models/election.py) checks it
before writing, and writes the mails in one transaction, so a restart or a change of leader
never sends a week's report twice.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.outbox import OutboxKind, OutboxMessage
from routing.people import Coordinator
from tickets.roster import coordinators


def last_report_at(session: Session) -> datetime | None:
    return session.scalar(
        select(func.max(OutboxMessage.created_at)).where(OutboxMessage.kind == OutboxKind.WEEKLY_REPORT.value)
    )


def report_recipients(session: Session) -> list[Coordinator]:
    return [coordinator for _, coordinator in coordinators(session)]
