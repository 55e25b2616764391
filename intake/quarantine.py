"""Reading the raw queue for people: the quarantine and the queue's counts.

`helpdesk quarantine list|show` read the mail that could not be processed (`quarantined`,
`stored_mail`); `helpdesk status` and `helpdesk report` count what waits (`queue_counts`,
`oldest_waiting`, `quarantined_count`). `helpdesk quarantine retry` puts mail back with
`intake.worker.requeue`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.raw_message import RawMessage, RawStatus


def quarantined(session: Session) -> list[RawMessage]:
    """The quarantined mails, oldest first."""
    query = select(RawMessage).where(RawMessage.status == RawStatus.FAILED).order_by(RawMessage.id)
    return list(session.scalars(query))


def stored_mail(session: Session, raw_id: int) -> RawMessage | None:
    return session.get(RawMessage, raw_id)


def quarantined_count(session: Session) -> int:
    query = select(func.count()).select_from(RawMessage).where(RawMessage.status == RawStatus.FAILED)
    return int(session.scalar(query) or 0)


def queue_counts(session: Session) -> dict[RawStatus, int]:
    """How many stored mails are in each status (every status, 0 where there are none)."""
    counts = dict(session.execute(select(RawMessage.status, func.count()).group_by(RawMessage.status)).all())
    return {status: int(counts.get(status, 0)) for status in RawStatus}


def oldest_waiting(session: Session) -> datetime | None:
    """When the longest-waiting mail not yet taken by a worker was received."""
    query = select(func.min(RawMessage.received_at)).where(RawMessage.status == RawStatus.RECEIVED)
    return session.scalar(query)
