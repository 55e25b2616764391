"""Fixtures of the intake tests: `make_desk`, a helpdesk directory that runs the real daemon."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.intake.daemon_harness import DaemonDesk, DeskFactory


@pytest.fixture
def make_desk(tmp_path: Path) -> Iterator[DeskFactory]:
    """Makes desks in the test's temp dir; kills whatever daemons they still run afterwards."""
    desks: list[DaemonDesk] = []

    def make(db_url: str, mailboxes: Sequence[Mapping[str, Any]] = (), *, name: str = "desk") -> DaemonDesk:
        root = tmp_path / name
        root.mkdir()
        desk = DaemonDesk(root, db_url, mailboxes)
        desks.append(desk)
        return desk

    yield make
    for desk in desks:
        desk.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The embedded default alone, for daemon tests whose PostgreSQL run would prove nothing more
    than the tests that do run there (and would cost a minute of the suite)."""
    return f"sqlite:///{tmp_path / 'helpdesk.db'}"
