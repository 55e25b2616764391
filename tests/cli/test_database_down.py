"""A PostgreSQL server that is down is said to be down, not "not initialised": every command said
"run `helpdesk init`", which cannot help, and `helpdesk init` itself ended in a traceback. Each
now says it cannot reach the database, why, and exits 75 (try again later); `ingest` keeps its
75, so an MTA keeps the mail."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from helpdesk.cli import main
from tests.loopback import free_port
from tests.mail import make_mail

COMMANDS = [
    ["status"],
    ["tickets", "list"],
    ["tickets", "list", "--json"],
    ["tickets", "show", "1"],
    ["quarantine", "list"],
    ["report"],
    ["init"],
    ["ingest"],
]


@pytest.mark.parametrize("argv", COMMANDS, ids=" ".join)
def test_a_server_that_is_down_is_said_to_be_down(
    argv: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    port = free_port()  # nothing listens there
    (tmp_path / "helpdesk.toml").write_text(
        '[mail]\naddress = "support@example.test"\nsecret = "s"\n'
        f'[database]\nurl = "postgresql+psycopg://helpdesk:hunter2@127.0.0.1:{port}/helpdesk"\n'
    )
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(make_mail())))
    assert main(argv) == 75
    err = capsys.readouterr().err
    assert "cannot reach the database" in err and "refused" in err.lower(), err
    assert "helpdesk init" not in err and "Traceback" not in err
    assert "hunter2" not in err  # the password stays out of the message
