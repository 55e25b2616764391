"""A URL shown in an error, a log line or `helpdesk status` never shows its password.

The URLs that hold one (the database's, the outgoing relay's) are shown exactly when something
is wrong with them, which is also when they may not parse: the password must go all the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpdesk.cli import main
from helpdesk.settings import redact_url
from tests.cli.runner import run_json

PASSWORD = "s3cret-pw"


def errors_of(capsys: pytest.CaptureFixture[str], *argv: str, code: int) -> str:
    capsys.readouterr()
    assert main(list(argv)) == code
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert PASSWORD not in text
    assert "s3c" not in text  # not even a piece of it
    return text


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://helpdesk:{PASSWORD}@db.example.test:notaport/helpdesk",  # bad port
        f"postgresql+psycopg://helpdesk:{PASSWORD}@[::1/helpdesk",  # unclosed IPv6 bracket
        f"postgresql+psycopg://helpdesk:{PASSWORD}@db.example.test:5432:5433/helpdesk",
        f"postgresql+psycopg//helpdesk:{PASSWORD}@db.example.test/helpdesk",  # no "://"
    ],
)
def test_a_malformed_database_url_is_shown_without_its_password(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("HELPDESK_DATABASE_URL", url)
    text = errors_of(capsys, "status", code=78)
    assert "database.url" in text


@pytest.mark.parametrize(
    "url",
    [
        f"smtpx://relay:{PASSWORD}@relay.example.test:587",  # unknown scheme
        f"smtp://relay:{PASSWORD}@relay.example.test:58x7",  # a port that is no number
        f"smtp://relay:{PASSWORD}@relay.example.test:70000",  # out of range
        f"smtp://relay:{PASSWORD}@relay.example.test:587?tls=maybe",
        f"smtp://relay:{PASSWORD}@[::1:587",
    ],
)
def test_a_malformed_outgoing_url_is_shown_without_its_password(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    monkeypatch.setenv("HELPDESK_OUTGOING_URL", url)
    text = errors_of(capsys, "status", code=78)
    assert "outgoing.url" in text


def test_a_database_that_cannot_be_reached_is_named_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helpdesk.toml").write_text('[mail]\nsecret = "s"\n')
    # The password may carry an unescaped "@", and a second one may sit in the query.
    url = f"postgresql+psycopg://helpdesk:{PASSWORD}@x@127.0.0.1:1/helpdesk?password={PASSWORD}"
    monkeypatch.setenv("HELPDESK_DATABASE_URL", url)
    text = errors_of(capsys, "status", code=75)  # unreachable: try again later (not a config error)
    assert "127.0.0.1:1/helpdesk" in text
    text = errors_of(capsys, "ingest", code=75)
    assert "127.0.0.1:1/helpdesk" in text


@pytest.mark.postgres
def test_status_names_the_database_without_its_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pg_url: str
) -> None:
    # The private cluster trusts loopback: any password is accepted, and must not be shown.
    user, _, rest = pg_url.partition("@")
    url = f"{user}:{PASSWORD}@{rest}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    monkeypatch.setenv("HELPDESK_DATABASE_URL", url)
    (tmp_path / "var").mkdir()
    assert main(["init"]) == 0
    text = errors_of(capsys, "status", code=0)
    assert rest in text
    assert run_json(capsys, "status", "--json")["database"] == f"{user}:***@{rest}"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://u:pw@db:5432/h", "postgresql+psycopg://u:***@db:5432/h"),
        ("postgresql://u:p@w/x@db/h", "postgresql://u:***@db/h"),  # unescaped "@" and "/"
        (
            "postgresql://u@db/h?password=pw&sslmode=require",
            "postgresql://u@db/h?password=***&sslmode=require",
        ),
        ("postgresql://u:pw@db:bad/h", "postgresql://u:***@db:bad/h"),  # does not parse
        ("smtps://user%40corp:p%3Aw@relay:465", "smtps://user%40corp:***@relay:465"),
        ("smtp://relay:25?tls=none", "smtp://relay:25?tls=none"),
        ("sqlite:////srv/helpdesk/var/helpdesk.db", "sqlite:////srv/helpdesk/var/helpdesk.db"),
        ("maildir:var/sent", "maildir:var/sent"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
