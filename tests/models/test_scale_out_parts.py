"""The parts several daemons on one database rely on: conversations claimed in arrival order,
transient database errors told from the mail's own, and the heartbeat giving back a silent
daemon's claims (and only a silent one's)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from intake.raw_queue import Incoming, RawStore, requeue
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.heartbeat import DaemonRow, Heartbeat, beat, daemon_statuses, release_stale
from models.leases import OUTBOX, RAW_QUEUE, finish_threads, transient_reason
from models.raw_message import RawMessage, RawStatus
from models.thread_keys import ThreadKey
from tests.mail import make_mail
from tests.models.test_leases import LEASE, NOW, add_outbox, add_raw, claim_raw


@pytest.fixture
def pg_engine(pg_url: str) -> Iterator[Engine]:
    """Several workers share a queue only on PostgreSQL: these tests have no SQLite twin."""
    engine = create_db_engine(DatabaseConfig(url=pg_url))
    migrate(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_sessions(pg_engine: Engine) -> sessionmaker[Session]:
    return session_factory(pg_engine)


def store(sessions: sessionmaker[Session], message_id: str, parent: str | None = None) -> int:
    data = make_mail(
        message_id=f"<{message_id}>",
        in_reply_to=f"<{parent}>" if parent else None,
        references=[f"<{parent}>"] if parent else None,
    )
    result = RawStore(sessions).store(data, source="smtp", envelope_to=["support@example.test"])
    assert result.raw_id is not None
    return result.raw_id


def test_sqlite_claims_in_order_as_always(sessions: sessionmaker[Session], engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        return  # the next test
    root = store(sessions, "root@example.com")
    reply = store(sessions, "reply@example.com", parent="root@example.com")
    assert claim_raw(sessions, "a:1", NOW) == [root, reply]  # one worker: no keys needed


def test_a_reply_waits_for_its_unfinished_root_and_unrelated_mail_does_not(
    pg_sessions: sessionmaker[Session],
) -> None:
    sessions = pg_sessions
    root = store(sessions, "root@example.com")
    reply = store(sessions, "reply@example.com", parent="root@example.com")
    other = store(sessions, "other@example.com")
    first = claim_raw(sessions, "a:1", NOW)
    assert first == [root, other]  # the reply is not due while its root is unfinished
    assert claim_raw(sessions, "b:2", NOW) == []
    with sessions() as session:
        finish_threads(session, [root])
        session.commit()
    assert claim_raw(sessions, "b:2", NOW) == [reply]


def test_a_root_that_arrives_after_its_reply_waits_for_the_reply(pg_sessions: sessionmaker[Session]) -> None:
    sessions = pg_sessions
    reply = store(sessions, "reply@example.com", parent="root@example.com")
    root = store(sessions, "root@example.com")
    assert claim_raw(sessions, "a:1", NOW) == [reply]
    with sessions() as session:
        keys = set(session.scalars(select(ThreadKey.raw_id)))
    assert keys == {reply, root}
    with sessions() as session:
        finish_threads(session, [reply])
        session.commit()
    assert claim_raw(sessions, "b:2", NOW) == [root]


def test_a_conversation_is_numbered_in_commit_order_when_two_stores_race(
    pg_sessions: sessionmaker[Session],
) -> None:
    """Two daemons store a reply and its root at once: the reply takes its id first but commits
    last. Ids come from a sequence at insert time, so without more the root would be committed,
    claimed and acknowledged while the reply with the lower id was still invisible: the root's
    store waits on the reply's instead, and ids in a conversation follow commit order."""
    sessions = pg_sessions
    reply_data = make_mail(
        message_id="<reply@example.com>", in_reply_to="<root@example.com>", references=["<root@example.com>"]
    )
    root_data = make_mail(message_id="<root@example.com>")
    other_data = make_mail(message_id="<other@example.com>")
    store = RawStore(sessions)
    done: list[int] = []

    def store_root() -> None:
        result = store.store(root_data, source="smtp", envelope_to=["support@example.test"])
        assert result.raw_id is not None
        done.append(result.raw_id)

    with sessions() as held:
        reply = store._store_in(held, Incoming(reply_data, "smtp", None, None, ("support@example.test",)))
        assert reply.raw_id is not None
        racing = threading.Thread(target=store_root)
        racing.start()
        racing.join(1.5)
        # Unrelated mail is not held up by the open store.
        other = store.store(other_data, source="smtp", envelope_to=["support@example.test"]).raw_id
        # Meanwhile nothing of the conversation may be claimed ahead of the reply.
        assert claim_raw(sessions, "a:1", NOW) == [other]
        held.commit()
    racing.join(10)
    assert not racing.is_alive() and len(done) == 1
    root = done[0]
    assert reply.raw_id < root
    assert claim_raw(sessions, "b:2", NOW) == [reply.raw_id]


def test_a_quarantined_root_put_back_is_worked_before_its_waiting_reply(
    pg_sessions: sessionmaker[Session],
) -> None:
    """`quarantine retry` puts a root back while its reply still waits: the root has its keys
    again, so the reply waits for it as it would have the first time."""
    sessions = pg_sessions
    root = store(sessions, "root@example.com")
    assert claim_raw(sessions, "a:1", NOW) == [root]
    with sessions() as session:  # quarantined: finished, its keys gone
        session.execute(
            update(RawMessage).where(RawMessage.id == root).values(status=RawStatus.FAILED, error="x")
        )
        finish_threads(session, [root])
        session.commit()
    reply = store(sessions, "reply@example.com", parent="root@example.com")
    assert requeue(sessions, [root]) == 1
    assert claim_raw(sessions, "b:2", NOW) == [root]  # the reply waits for its root again
    with sessions() as session:
        finish_threads(session, [root])
        session.commit()
    assert claim_raw(sessions, "b:2", NOW) == [reply]


def test_a_real_deadlock_is_transient_and_a_constraint_violation_is_not(pg_engine: Engine) -> None:
    engine = pg_engine
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE lock_order (id int primary key, n int)"))
        conn.execute(text("INSERT INTO lock_order VALUES (1, 0), (2, 0)"))
    errors: list[BaseException] = []
    both_locked = threading.Barrier(2)

    def update(first: int, second: int) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE lock_order SET n = n + 1 WHERE id = :i"), {"i": first})
                both_locked.wait(10)
                conn.execute(text("UPDATE lock_order SET n = n + 1 WHERE id = :i"), {"i": second})
        except DBAPIError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=update, args=order) for order in ((1, 2), (2, 1))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 1
    assert transient_reason(errors[0]) == "deadlock"
    with pytest.raises(DBAPIError) as duplicate, engine.begin() as conn:
        conn.execute(text("INSERT INTO lock_order VALUES (1, 0)"))
    assert transient_reason(duplicate.value) is None


def test_a_silent_daemons_claims_are_given_back_and_a_live_ones_are_kept(
    sessions: sessionmaker[Session],
) -> None:
    raw = add_raw(sessions, 4)
    out = add_outbox(sessions, [NOW, NOW])
    assert claim_raw(sessions, "far-host:1", NOW, limit=2) == raw[:2]  # another host: no pid to look at
    assert claim_raw(sessions, "near-host:2", NOW, limit=2) == raw[2:]
    with sessions() as session:
        assert OUTBOX.claim(session, holder="far-host:1", now=NOW, lease=LEASE, limit=1) == out[:1]
        beat(session, "far-host:1", NOW - timedelta(seconds=30), NOW - timedelta(minutes=5))
        beat(session, "near-host:2", NOW - timedelta(seconds=1), NOW - timedelta(minutes=5))
        session.commit()
    with sessions() as session:
        released = release_stale(session, NOW, timedelta(seconds=10), "me:3")
        session.commit()
    assert (released.holders, released.raw, released.outbox) == (("far-host:1",), 2, 1)
    with sessions() as session:
        statuses = {d.holder: d for d in daemon_statuses(session, NOW)}
        rows = dict(session.execute(select(RawMessage.id, RawMessage.claimed_by)).all())
    assert rows == {raw[0]: None, raw[1]: None, raw[2]: "near-host:2", raw[3]: "near-host:2"}
    assert statuses["far-host:1"].silent and statuses["far-host:1"].raw_held == 0
    assert not statuses["near-host:2"].silent and statuses["near-host:2"].raw_held == 2
    assert claim_raw(sessions, "me:3", NOW) == raw[:2]  # due again at once, not after the lease


def test_rows_a_silent_daemon_still_locks_are_skipped_not_waited_for(
    pg_sessions: sessionmaker[Session],
) -> None:
    sessions = pg_sessions
    raw = add_raw(sessions, 2)
    assert claim_raw(sessions, "paused:1", NOW) == raw
    with sessions() as session:
        beat(session, "paused:1", NOW - timedelta(minutes=1), NOW - timedelta(minutes=5))
        session.commit()
    with sessions() as paused:  # its transaction holds the first row, as a worker mid-group would
        paused.execute(select(RawMessage.id).where(RawMessage.id == raw[0]).with_for_update())
        with sessions() as session:
            released = release_stale(session, NOW, timedelta(seconds=10), "me:2")
            session.commit()
        assert released.raw == 1
        paused.rollback()
    with sessions() as session:
        released = release_stale(session, NOW, timedelta(seconds=10), "me:2")
        session.commit()
    assert released.raw == 1  # the next round gives back the rest, once the lock is gone


def test_the_heartbeat_keeps_its_own_row_fresh_and_removes_it_when_stopped(
    sessions: sessionmaker[Session],
) -> None:
    times = iter([NOW, NOW + timedelta(seconds=2), NOW + timedelta(seconds=4)])
    heart = Heartbeat(sessions, "here:7", every=0.01, clock=lambda: next(times, NOW + timedelta(seconds=6)))
    heart.once()
    heart.once()
    with sessions() as session:
        row = session.get(DaemonRow, "here:7")
        assert row is not None and row.pid == 7 and row.host == "here"
        assert (row.started_at, row.beat_at) == (NOW, NOW + timedelta(seconds=4))
    stop = threading.Event()
    stop.set()
    heart.run(stop)
    with sessions() as session:
        assert session.get(DaemonRow, "here:7") is None


def test_released_rows_keep_their_attempts_and_wait_as_before(sessions: sessionmaker[Session]) -> None:
    raw = add_raw(sessions, 1)
    claim_raw(sessions, "gone:1", NOW)
    with sessions() as session:
        RAW_QUEUE.give_back(session, raw, holder="gone:1", uncount=True)
        session.commit()
        row = session.get(RawMessage, raw[0])
        assert row is not None and row.status is RawStatus.RECEIVED and row.attempts == 0
