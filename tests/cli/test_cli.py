"""The `helpdesk` command line as a user and an MTA pipe use it."""

from __future__ import annotations

import io
import mailbox
import sqlite3
from pathlib import Path

import pytest

from helpdesk.cli import main
from tests.cli.runner import run_json
from tests.mail import make_mail


def test_init_writes_config_and_is_safe_twice(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = (desk / "helpdesk.toml").read_text()
    assert 'address = "support@example.test"' in config
    assert "secret = " in config
    assert oct((desk / "helpdesk.toml").stat().st_mode & 0o777) == "0o600"
    assert main(["init"]) == 0
    assert (desk / "helpdesk.toml").read_text() == config  # kept, secret and all
    assert "already at" in capsys.readouterr().out


def test_ingest_files_prints_json_counts(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = desk / "a.eml"
    a.write_bytes(make_mail(message_id="<a@example.com>"))
    b = desk / "b.eml"
    b.write_bytes(make_mail(message_id="<b@example.com>", in_reply_to="<a@example.com>", body="more"))
    result = run_json(capsys, "ingest", "--json", str(a), str(b), str(a))
    assert result == {
        "stored": 2,
        "duplicates": 1,
        "tickets_created": 1,
        "replies": 1,
        "automatic": 0,
        "quarantined": 0,
        "refused": 0,
        "handed_to_daemon": False,  # no daemon serves this desk: ingest processed the mail itself
    }
    sent = list((desk / "var" / "sent" / "new").iterdir())
    assert len(sent) == 1  # the acknowledgment landed in the maildir


def test_ingest_from_stdin_like_an_mta_pipe(desk: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(make_mail())))
    assert main(["ingest"]) == 0


def test_ingest_exits_75_when_it_cannot_store(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HELPDESK_DATABASE_SQLITE_BUSY_TIMEOUT", "0.2")
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(make_mail())))
    blocker = sqlite3.connect(desk / "var" / "helpdesk.db", timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        assert main(["ingest"]) == 75  # EX_TEMPFAIL: the MTA keeps the mail and retries
    finally:
        blocker.rollback()
        blocker.close()
    assert "cannot store" in capsys.readouterr().err


def test_ingest_exits_75_when_not_initialised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helpdesk.toml").write_text(
        '[mail]\nsecret = "s"\n[database]\nurl = "sqlite:///nothing.db"\n'
    )
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(make_mail())))
    assert main(["ingest"]) == 75


def test_ingest_maildir_and_mbox(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    box = mailbox.Maildir(str(desk / "inbox"), create=True)
    for i in range(3):
        box.add(make_mail(subject=f"maildir {i}"))
    mbox = mailbox.mbox(str(desk / "old.mbox"), create=True)
    for i in range(2):
        mbox.add(make_mail(subject=f"mbox {i}"))
    mbox.flush()
    result = run_json(
        capsys, "ingest", "--json", "--maildir", str(desk / "inbox"), "--mbox", str(desk / "old.mbox")
    )
    assert result["stored"] == 5
    assert result["tickets_created"] == 5


def test_tickets_list_and_show_json(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mail = desk / "m.eml"
    mail.write_bytes(make_mail(message_id="<list@example.com>"))
    run_json(capsys, "ingest", "--json", str(mail))
    listing = run_json(capsys, "tickets", "list", "--json")
    assert len(listing) == 1
    ticket = listing[0]
    for key in (
        "number",
        "subject",
        "status",
        "category",
        "priority",
        "requester",
        "assignee",
        "language",
        "created_at",
        "message_ids",
    ):
        assert key in ticket
    assert ticket["message_ids"][0] == "list@example.com"
    assert len(ticket["message_ids"]) == 2  # the mail in and our acknowledgment out
    shown = run_json(capsys, "tickets", "show", str(ticket["number"]), "--json")
    assert [m["direction"] for m in shown["messages"]] == ["in", "out"]
    assert {e["kind"] for e in shown["events"]} >= {"created", "routed"}
    assert shown["message_ids"] == ticket["message_ids"]
    capsys.readouterr()
    assert main(["tickets", "show", str(ticket["number"])]) == 0
    text = capsys.readouterr().out
    assert "Why it was routed this way" in text
    assert main(["tickets", "list"]) == 0
    assert "Printer on floor 3" in capsys.readouterr().out


def test_quarantine_list_show_retry(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = desk / "bad.eml"
    bad.write_bytes(b"")
    result = run_json(capsys, "ingest", "--json", str(bad))
    assert result["stored"] == 1
    assert result["quarantined"] == 1
    items = run_json(capsys, "quarantine", "list", "--json")
    assert len(items) == 1
    assert "empty" in items[0]["error"]
    shown = run_json(capsys, "quarantine", "show", str(items[0]["id"]), "--json")
    assert shown["status"] == "failed"
    capsys.readouterr()
    assert main(["quarantine", "retry", "--all"]) == 0
    assert "re-queued 1" in capsys.readouterr().out


def test_status_json(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = run_json(capsys, "status", "--json")
    assert status["address"] == "support@example.test"
    assert status["queue"]["received"] == 0


def test_environment_overrides_config(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HELPDESK_MAIL_ADDRESS", "help@corp.example")
    status = run_json(capsys, "status", "--json")
    assert status["address"] == "help@corp.example"


def test_broken_config_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "helpdesk.toml").write_text('[smtp]\nlisten = "nonsense"\n')
    assert main(["status"]) == 78
    assert "smtp.listen" in capsys.readouterr().err


ROSTER = """
[[technician]]
name = "Alicja Nowak"
email = "Alicja@Example.test"
languages = ["pl", "en"]
timezone = "Europe/Warsaw"
shifts = ["24/7"]
skills = { printing = 5 }

[[coordinator]]
name = "Marta"
email = "coord@example.test"
"""


def test_technicians_import_list_set(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roster = desk / "people.toml"
    roster.write_text(ROSTER)
    assert main(["technicians", "import", str(roster)]) == 0
    assert "1 added" in capsys.readouterr().out
    assert main(["technicians", "import", str(roster)]) == 0  # re-import: nothing duplicated
    assert "0 added, 0 updated, 1 unchanged" in capsys.readouterr().out
    listing = run_json(capsys, "technicians", "list", "--json")
    assert [t["email"] for t in listing["technicians"]] == ["alicja@example.test"]
    assert listing["technicians"][0]["on_shift"] is True
    assert listing["coordinators"][0]["email"] == "coord@example.test"
    assert (
        main(["technicians", "set", "alicja@example.test", "active=false", "skills.network=4", "tier=2"]) == 0
    )
    capsys.readouterr()
    after = run_json(capsys, "technicians", "list", "--json")["technicians"][0]
    assert after["active"] is False
    assert after["tier"] == 2
    assert after["skills"] == {"network": 4, "printing": 5}
    assert main(["technicians", "set", "alicja@example.test", "tier=9", "nonsense=1"]) == 65
    err = capsys.readouterr().err
    assert "tier" in err
    assert "nonsense" in err
    assert main(["technicians", "set", "nobody@example.test", "active=false"]) == 1


def test_technicians_import_reports_every_problem(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    roster = desk / "bad.toml"
    roster.write_text(
        '[[technician]]\nname = "A"\nemail = "a@example.test"\nshifts = ["someday"]\ntier = 7\n'
        "skills = { cooking = 3 }\n"
    )
    assert main(["technicians", "import", str(roster)]) == 65
    err = capsys.readouterr().err
    assert "tier" in err
    assert "shifts" in err
    assert "cooking" in err


def test_sla_check_json(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = run_json(capsys, "sla", "check", "--json")
    assert report["checked"] == 0
    assert report["errors"] == []


def test_the_example_configuration_is_valid(tmp_path: Path) -> None:
    import tomllib

    from helpdesk.settings import build_settings
    from tests.conftest import REPO_ROOT

    table = tomllib.loads((REPO_ROOT / "deploy" / "helpdesk.example.toml").read_text())
    settings = build_settings(table, tmp_path, None)
    assert settings.identity.address == "support@example.test"
    assert settings.sla.enabled
