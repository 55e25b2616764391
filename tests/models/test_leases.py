"""Claims with a lease, on both queues and both databases, and the backoff between retries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from models.leases import OUTBOX, RAW_QUEUE, SPREAD_JITTER, STEADY_JITTER, backoff_delay, holder_name
from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage, RawStatus

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def add_raw(sessions: sessionmaker[Session], count: int) -> list[int]:
    with sessions() as session:
        rows = [
            RawMessage(source="smtp", dedupe_key=f"key-{n}", size=1, data=b"x", received_at=NOW)
            for n in range(count)
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def add_outbox(sessions: sessionmaker[Session], due: list[datetime]) -> list[int]:
    with sessions() as session:
        rows = [
            OutboxMessage(
                kind="ack",
                recipient="anna@example.com",
                envelope_from="support@example.test",
                envelope_to=["anna@example.com"],
                message_id=f"m{n}@example.test",
                data=b"x",
                next_attempt_at=at,
                deadline=NOW + timedelta(days=2),
            )
            for n, at in enumerate(due)
        ]
        session.add_all(rows)
        session.commit()
        return [row.id for row in rows]


def claim_raw(sessions: sessionmaker[Session], holder: str, now: datetime, limit: int = 10) -> list[int]:
    with sessions() as session:
        ids = RAW_QUEUE.claim(session, holder=holder, now=now, lease=LEASE, limit=limit, count_attempt=True)
        session.commit()
        return ids


def test_claims_take_the_oldest_due_rows_once_and_count_attempts(sessions: sessionmaker[Session]) -> None:
    ids = add_raw(sessions, 3)
    assert claim_raw(sessions, "a:1", NOW, limit=2) == ids[:2]
    assert claim_raw(sessions, "b:2", NOW) == ids[2:]  # a held row is not due
    assert claim_raw(sessions, "b:2", NOW) == []
    with sessions() as session:
        rows = {row.id: row for row in session.query(RawMessage)}
        assert {rows[i].claimed_by for i in ids[:2]} == {"a:1"}
        assert rows[ids[2]].claimed_until == NOW + LEASE
        assert {row.status for row in rows.values()} == {RawStatus.PROCESSING}
        assert {row.attempts for row in rows.values()} == {1}


def test_a_lease_that_ran_out_is_taken_over_and_a_renewed_one_is_not(
    sessions: sessionmaker[Session],
) -> None:
    first, second = add_raw(sessions, 2)
    assert claim_raw(sessions, "a:1", NOW) == [first, second]
    later = NOW + LEASE + timedelta(seconds=1)
    with sessions() as session:
        RAW_QUEUE.renew(session, [first], holder="a:1", until=later + LEASE)
        RAW_QUEUE.renew(session, [second], holder="someone-else:9", until=later + LEASE)  # not theirs
        session.commit()
    assert claim_raw(sessions, "b:2", later) == [second]
    with sessions() as session:
        taken = session.get(RawMessage, second)
        assert taken is not None and (taken.claimed_by, taken.attempts) == ("b:2", 2)


def test_release_gives_a_holders_rows_back(sessions: sessionmaker[Session]) -> None:
    ids = add_raw(sessions, 2)
    claim_raw(sessions, "a:1", NOW, limit=1)
    claim_raw(sessions, "b:2", NOW, limit=1)
    with sessions() as session:
        assert RAW_QUEUE.holders(session) == {"a:1", "b:2"}
        assert RAW_QUEUE.release(session, ["a:1"]) == 1
        session.commit()
    with sessions() as session:
        released = session.get(RawMessage, ids[0])
        assert released is not None
        assert (released.status, released.claimed_by, released.claimed_until) == (
            RawStatus.RECEIVED,
            None,
            None,
        )
    assert claim_raw(sessions, "c:3", NOW) == [ids[0]]


def test_the_outbox_is_due_by_its_next_attempt(sessions: sessionmaker[Session]) -> None:
    late, soon, future = add_outbox(
        sessions, [NOW - timedelta(minutes=1), NOW - timedelta(hours=1), NOW + LEASE]
    )
    with sessions() as session:
        claimed = OUTBOX.claim(session, holder="a:1", now=NOW, lease=LEASE, limit=5)
        session.commit()
    assert claimed == [soon, late]  # the longest due first; the future one waits
    with sessions() as session:
        row = session.get(OutboxMessage, soon)
        assert row is not None and (row.status, row.attempts) == (OutboxStatus.SENDING, 0)
        assert OUTBOX.claim(session, holder="b:2", now=NOW + LEASE, lease=LEASE, limit=5) == [future]


def test_holder_name_is_host_and_pid() -> None:
    host, _, pid = holder_name().rpartition(":")
    assert host and int(pid) > 0


@pytest.mark.parametrize("jitter", [SPREAD_JITTER, STEADY_JITTER])
def test_backoff_doubles_up_to_the_cap_within_the_jitter(jitter: tuple[float, float]) -> None:
    rng = random.Random(7)
    low, high = jitter
    for failures in range(1, 15):
        ceiling = min(60.0, 2.0 ** (failures - 1))
        delay = backoff_delay(failures, 1.0, 60.0, rng, jitter=jitter)
        assert ceiling * low <= delay <= ceiling * high
    assert backoff_delay(0, 5.0, 60.0, rng, jitter=(1.0, 1.0)) == 5.0  # no failure yet: the first wait
    assert backoff_delay(10**6, 1.0, 60.0, rng, jitter=(1.0, 1.0)) == 60.0
