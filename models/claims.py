"""Leases held by processes that no longer exist, released at start-up.

Workers and senders claim rows with a lease (models/leases.py: `claimed_by` = host:pid,
`claimed_until`). When a process dies, its rows wait until the lease runs out before another
takes them. A process that starts on the same host can tell that the holder is gone (no such
pid) and release them at once, so a crash followed by a restart does not delay mail by a whole
lease.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from models.leases import OUTBOX, RAW_QUEUE
from models.liveness import dead_local_holders as dead_local_holders


def release_dead_claims(sessions: sessionmaker[Session]) -> tuple[int, int]:
    """Give back raw-queue and outbox rows claimed by dead processes of this host: (raw, outbox)."""
    with sessions() as session:
        counts = []
        for queue in (RAW_QUEUE, OUTBOX):
            dead = dead_local_holders(queue.holders(session))
            counts.append(queue.release(session, dead) if dead else 0)
        session.commit()
    return counts[0], counts[1]
