"""Leases held by processes that no longer exist, released at start-up.

Workers and senders claim rows with a lease (`claimed_by` = host:pid, `claimed_until`). When a
process dies, its rows wait until the lease runs out before another takes them. A process that
starts on the same host can tell that the holder is gone (no such pid) and release them at once,
so a crash followed by a restart does not delay mail by a whole lease.
"""

from __future__ import annotations

import os
import socket

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage, RawStatus


def holder_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_local_holders(holders: set[str | None]) -> list[str]:
    """Holder names on this host whose process is gone (ours excluded)."""
    host = socket.gethostname()
    me = holder_name()
    dead: list[str] = []
    for holder in holders:
        if not holder or holder == me:
            continue
        name, _, pid = holder.rpartition(":")
        if name == host and pid.isdigit() and not _alive(int(pid)):
            dead.append(holder)
    return dead


def release_dead_claims(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Give back raw-queue and outbox rows claimed by dead processes of this host: (raw, outbox)."""
    with sessions() as session:
        raw_holders = set(
            session.scalars(
                select(RawMessage.claimed_by).where(RawMessage.status == RawStatus.PROCESSING).distinct()
            )
        )
        out_holders = set(
            session.scalars(
                select(OutboxMessage.claimed_by)
                .where(OutboxMessage.status == OutboxStatus.SENDING)
                .distinct()
            )
        )
        raw_dead = dead_local_holders(raw_holders)
        out_dead = dead_local_holders(out_holders)
        raw_count = out_count = 0
        if raw_dead:
            result = session.execute(
                update(RawMessage)
                .where(RawMessage.status == RawStatus.PROCESSING, RawMessage.claimed_by.in_(raw_dead))
                .values(claimed_until=None, status=RawStatus.RECEIVED)
            )
            raw_count = int(getattr(result, "rowcount", 0) or 0)
        if out_dead:
            result = session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_by.in_(out_dead))
                .values(claimed_until=None, claimed_by=None, status=OutboxStatus.PENDING)
            )
            out_count = int(getattr(result, "rowcount", 0) or 0)
        session.commit()
    return raw_count, out_count
