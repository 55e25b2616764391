"""The private PostgreSQL harness: a fresh database per test, the schema migrates, the raw queue works."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text

from intake.raw_queue import RawStore
from models.db import DatabaseConfig, create_db_engine, migrate, session_factory
from models.raw_message import RawMessage
from tests.servers.postgres import PostgresCluster

MAIL = b"From: a@example.com\r\nMessage-ID: <pg-smoke@example.com>\r\nSubject: hi\r\n\r\nbody\r\n"


def test_fresh_database_is_empty_and_ours(pg_url: str) -> None:
    assert pg_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("select current_setting('fsync')")).scalar() == "off"
            tables = conn.execute(text("select count(*) from pg_tables where schemaname = 'public'")).scalar()
            assert tables == 0
    finally:
        engine.dispose()


def test_schema_migrates_and_the_raw_queue_stores(pg_url: str) -> None:
    engine = create_db_engine(DatabaseConfig(url=pg_url))
    try:
        migrate(engine)
        sessions = session_factory(engine)
        store = RawStore(sessions)
        assert not store.store(MAIL, source="smtp").duplicate
        assert store.store(MAIL, source="smtp").duplicate
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(RawMessage)) == 1
    finally:
        engine.dispose()


def test_databases_are_independent(postgres_cluster: PostgresCluster) -> None:
    first = postgres_cluster.create_database()
    second = postgres_cluster.create_database()
    assert first != second
    engine = create_engine(first)
    try:
        with engine.begin() as conn:
            conn.execute(text("create table t (x int)"))
    finally:
        engine.dispose()
    other = create_engine(second)
    try:
        with other.connect() as conn:
            assert conn.execute(text("select to_regclass('public.t')")).scalar() is None
    finally:
        other.dispose()
    for url in (first, second):
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])


def test_database_names_are_checked(postgres_cluster: PostgresCluster) -> None:
    with pytest.raises(ValueError, match="database name"):
        postgres_cluster.create_database('x"; drop')


def test_a_cluster_restarts_with_its_databases() -> None:
    with PostgresCluster() as cluster:
        url = cluster.create_database("kept")
        cluster.stop()
        cluster.start()
        engine = create_engine(cluster.url("kept"))
        try:
            with engine.connect() as conn:
                assert conn.execute(text("select current_database()")).scalar() == "kept"
        finally:
            engine.dispose()
        assert url.endswith("/kept")
