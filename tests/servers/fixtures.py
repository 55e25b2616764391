"""Pytest fixtures for the private servers: `postgres_cluster`, `pg_url`, `dovecot`, `dovecot_factory`,
`postfix`.

Costs measured on a 2-core machine: a PostgreSQL cluster starts in about 1.5 s (initdb included)
and is shared by the session; a database for one test takes under 0.1 s. A Dovecot starts in
about 0.03 s and is killed in a few ms, so every test gets its own server: no test sees another
test's mail, users or passwords.

A missing server binary skips the test loudly on a developer's machine, and fails it under
CI=true: CI must never pass by skipping a real-server test (`server_unavailable`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import NoReturn

import pytest

from tests.servers.common import ServerUnavailable
from tests.servers.dovecot import DovecotServer
from tests.servers.postfix import PostfixServer
from tests.servers.postgres import PostgresCluster

TRUE_WORDS = {"1", "true", "yes", "on"}


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in TRUE_WORDS


def server_unavailable(reason: str) -> NoReturn:
    """The one place that decides what a missing real server means: skip locally, fail in CI."""
    if in_ci():
        pytest.fail(f"CI=true: a real-server test cannot run here: {reason}", pytrace=False)
    pytest.skip(f"REAL SERVER MISSING, TEST NOT RUN: {reason}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests by the servers they use, so `-m "not dovecot"` deselects them."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"dovecot", "dovecot_factory"}:
            item.add_marker(pytest.mark.dovecot)
        if names & {"postgres_cluster", "pg_url"}:
            item.add_marker(pytest.mark.postgres)
        if "postfix" in names:
            item.add_marker(pytest.mark.postfix)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    try:
        cluster = PostgresCluster()
    except ServerUnavailable as exc:
        server_unavailable(str(exc))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database for this test (dropped afterwards), as a SQLAlchemy URL."""
    url = postgres_cluster.create_database()
    yield url
    postgres_cluster.drop_database(url.rsplit("/", 1)[1])


DovecotFactory = Callable[..., DovecotServer]


@pytest.fixture
def dovecot_factory() -> Iterator[DovecotFactory]:
    """Makes started Dovecot servers (users, announced capabilities, extra config); kills them after."""
    servers: list[DovecotServer] = []

    def make(
        users: Mapping[str, str] | None = None,
        *,
        capabilities: Sequence[str] | None = None,
        extra_config: str = "",
    ) -> DovecotServer:
        try:
            server = DovecotServer(users, capabilities=capabilities, extra_config=extra_config)
        except ServerUnavailable as exc:
            server_unavailable(str(exc))
        servers.append(server)
        server.start()
        return server

    yield make
    for server in servers:
        server.close()


@pytest.fixture
def dovecot(dovecot_factory: DovecotFactory) -> DovecotServer:
    """A private, started Dovecot with users alice, bob and carol (see `DEFAULT_USERS`)."""
    return dovecot_factory()


@pytest.fixture
def postfix() -> Iterator[PostfixServer]:
    """A private Postfix, configured with the base lines only and not started (a test adds its
    lines with `configure` first); stopped and deleted afterwards."""
    try:
        server = PostfixServer()
    except ServerUnavailable as exc:
        server_unavailable(str(exc))
    try:
        yield server
    finally:
        server.close()
