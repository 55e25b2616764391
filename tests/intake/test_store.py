"""The raw queue stores every mail once: re-deliveries and re-fetches are no-ops, nothing is lost."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from intake.raw_queue import RawStore, extract_message_id
from models.raw_message import RawMessage, RawStatus

MAIL = (
    b"From: a@example.com\r\nTo: support@example.test\r\nMessage-ID: <abc@example.com>\r\n"
    b"Subject: hi\r\n\r\nbody\r\n"
)


def count(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(RawMessage)) or 0


def test_store_commits_and_dedupes_by_message_id(sessions: sessionmaker[Session]) -> None:
    store = RawStore(sessions)
    first = store.store(
        MAIL, source="smtp", envelope_from="a@example.com", envelope_to=["support@example.test"]
    )
    assert not first.duplicate and first.raw_id is not None
    # An MTA retry after a lost 250 carries another Received header: still the same mail.
    again = store.store(b"Received: from x\r\n" + MAIL, source="smtp")
    assert again.duplicate and again.raw_id == first.raw_id
    assert count(sessions) == 1
    with sessions() as s:
        row = s.get(RawMessage, first.raw_id)
        assert row is not None
        assert row.status is RawStatus.RECEIVED
        assert row.message_id == "abc@example.com"
        assert row.envelope_to == ["support@example.test"]


def test_source_key_makes_refetch_a_noop(sessions: sessionmaker[Session]) -> None:
    store = RawStore(sessions)
    no_id = b"From: a@example.com\r\nSubject: no id\r\n\r\nbody\r\n"
    first = store.store(no_id, source="imap:support", source_key="imap:support:7:1")
    again = store.store(no_id, source="imap:support", source_key="imap:support:7:1")
    assert again.duplicate and again.raw_id == first.raw_id


def test_mail_without_message_id_dedupes_by_content(sessions: sessionmaker[Session]) -> None:
    store = RawStore(sessions)
    no_id = b"From: a@example.com\r\nSubject: no id\r\n\r\nbody\r\n"
    assert not store.store(no_id, source="ingest").duplicate
    assert store.store(b"Received: by relay\r\n" + no_id.replace(b"\r\n", b"\n"), source="ingest").duplicate
    assert not store.store(no_id.replace(b"body", b"other body"), source="ingest").duplicate
    assert count(sessions) == 2


def test_reused_message_id_with_other_content_is_kept(sessions: sessionmaker[Session]) -> None:
    store = RawStore(sessions)
    store.store(MAIL, source="smtp")
    other = MAIL.replace(b"body", b"a different mail from a broken mailer")
    result = store.store(other, source="smtp")
    assert not result.duplicate
    assert count(sessions) == 2


def test_extract_message_id() -> None:
    assert extract_message_id(" <a.b@c> ") == "a.b@c"
    assert extract_message_id("a.b@c") == "a.b@c"
    assert extract_message_id("") is None
    assert extract_message_id("no id here") is None


def test_wakes_the_worker(sessions: sessionmaker[Session]) -> None:
    woken: list[int] = []
    store = RawStore(sessions, on_stored=lambda: woken.append(1))
    store.store(MAIL, source="smtp")
    store.store(MAIL, source="smtp")
    assert woken == [1]
