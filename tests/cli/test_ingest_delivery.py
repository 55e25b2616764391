"""`helpdesk ingest` as an MTA's delivery agent: its envelope, and exit codes that never bounce a
requester's mail for a failure of ours.

An MTA acts on the exit status alone (sysexits.h): 0 delivered, 75 (EX_TEMPFAIL) kept and retried,
anything else bounced to the sender with what the command wrote quoted in the bounce. So a
permanent status is given only for mail we can never take (65 too big, 67 not ours), with one
line that starts with its RFC 3463 status; every other failure, however unexpected, is 75, and
its traceback goes to our log, never to the requester.
"""

from __future__ import annotations

import io
import os
import pwd
import subprocess
import sys
from email import message_from_bytes
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlalchemy import select

from helpdesk.app import build_app
from helpdesk.cli import main
from helpdesk.settings import load_settings
from intake.pipe_store import PipeStore
from intake.raw_queue import RawStore
from models.raw_message import RawMessage
from models.ticket import Ticket
from tests.conftest import REPO_ROOT
from tests.mail import SUPPORT, make_mail

EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


def pipe(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))


def only_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1, err  # the MTA quotes all of it: one line, no traceback
    return lines[0]


def raw_rows(desk: Path) -> list[RawMessage]:
    with build_app(load_settings(desk / "helpdesk.toml")) as app, app.readers() as session:
        return list(session.scalars(select(RawMessage).order_by(RawMessage.id)))


def tickets(desk: Path) -> list[Ticket]:
    with build_app(load_settings(desk / "helpdesk.toml")) as app, app.readers() as session:
        return list(session.scalars(select(Ticket).order_by(Ticket.id)))


def sent(desk: Path) -> list[Path]:
    new = desk / "var" / "sent" / "new"
    return sorted(new.iterdir()) if new.is_dir() else []


def ingest_piped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], data: bytes, *argv: str
) -> tuple[int, str, str]:
    pipe(monkeypatch, data)
    capsys.readouterr()
    code = main(["ingest", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_envelope_is_stored_as_the_listener_stores_it(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ingest_piped(
        monkeypatch,
        capsys,
        make_mail(),
        "--no-process",
        "--sender=alice@example.com",
        f"--recipient={SUPPORT}",
        "--recipient=Support+Billing@Example.test",
    )
    assert code == 0, err
    assert err == ""  # stored: nothing for the MTA to quote
    (row,) = raw_rows(desk)
    assert row.envelope_from == "alice@example.com"
    assert row.envelope_to == [SUPPORT, "Support+Billing@Example.test"]


def test_a_null_sender_is_kept_empty_and_the_mail_is_treated_as_a_bounce(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ingest_piped(monkeypatch, capsys, make_mail(), "--sender=", f"--recipient={SUPPORT}")
    assert code == 0, err
    (row,) = raw_rows(desk)
    assert row.envelope_from == ""
    assert sent(desk) == []  # nobody answers a bounce


def test_a_mail_whose_only_link_is_the_token_envelope_recipient_joins_its_ticket(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = ingest_piped(
        monkeypatch, capsys, make_mail(), "--sender=alice@example.com", f"--recipient={SUPPORT}"
    )
    assert code == 0, err
    (ack_file,) = sent(desk)
    ((_, token_address),) = getaddresses([str(message_from_bytes(ack_file.read_bytes())["Reply-To"])])
    assert token_address.startswith("support+t")
    # Bcc: the token address is in no header, a new subject, no In-Reply-To or References.
    bcc = make_mail(to="colleague@example.org", subject="One more thing", body="The toner is empty too.")
    code, _, err = ingest_piped(
        monkeypatch, capsys, bcc, "--sender=alice@example.com", f"--recipient={token_address}"
    )
    assert code == 0, err
    assert len(tickets(desk)) == 1  # it joined ticket 1; without the envelope it opened a second


def test_mail_for_none_of_our_addresses_is_refused_with_67_and_one_line(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = ingest_piped(
        monkeypatch, capsys, make_mail(), "--sender=alice@example.com", "--recipient=sales@example.test"
    )
    assert code == EX_NOUSER
    assert out == ""
    assert only_line(err).startswith("5.1.1 ")
    assert "<sales@example.test>" in err
    assert raw_rows(desk) == []


def test_a_piped_mail_over_the_limit_bounces_with_one_line_naming_the_limit(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HELPDESK_SMTP_MAX_MESSAGE_SIZE", "4096")
    code, out, err = ingest_piped(
        monkeypatch,
        capsys,
        make_mail(body="x" * 5000),
        "--sender=alice@example.com",
        f"--recipient={SUPPORT}",
    )
    assert code == EX_DATAERR
    assert out == ""
    line = only_line(err)
    assert line.startswith("5.3.4 ") and "limit of 4096 bytes" in line


def test_no_configuration_defers_with_75(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HELPDESK_CONFIG", str(tmp_path / "none.toml"))
    code, out, err = ingest_piped(monkeypatch, capsys, make_mail())
    assert code == EX_TEMPFAIL  # it was 78 (EX_CONFIG), and the MTA bounced the mail
    assert out == ""
    assert only_line(err).startswith("4.3.0 ")


def test_a_broken_configuration_defers_with_75(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (desk / "helpdesk.toml").write_bytes(b"[mail\n\xff")
    code, _, err = ingest_piped(monkeypatch, capsys, make_mail())
    assert code == EX_TEMPFAIL
    assert only_line(err).startswith("4.3.0 ")


def test_a_read_only_database_defers_with_75(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(
        "HELPDESK_DATABASE_URL", f"sqlite:///file:{desk / 'var' / 'helpdesk.db'}?mode=ro&uri=true"
    )
    code, _, err = ingest_piped(monkeypatch, capsys, make_mail(), f"--recipient={SUPPORT}")
    assert code == EX_TEMPFAIL
    assert only_line(err).startswith("4.3.0 ")
    monkeypatch.delenv("HELPDESK_DATABASE_URL")
    assert raw_rows(desk) == []


def test_a_bug_defers_with_75_and_its_traceback_goes_to_the_log_only(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    log_file = desk / "var" / "helpdesk.log"
    monkeypatch.setenv("HELPDESK_LOGGING_FILE", str(log_file))

    def bug(*_args: object, **_kwargs: object) -> None:
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr(RawStore, "store_many", bug)
    monkeypatch.setattr(PipeStore, "store", bug)  # the piped mail's store (intake/pipe_store.py)
    code, out, err = ingest_piped(monkeypatch, capsys, make_mail(), f"--recipient={SUPPORT}")
    assert code == EX_TEMPFAIL  # it was 1, and the MTA bounced the mail with our traceback
    assert out == ""
    assert "Traceback" not in only_line(err)
    assert "ZeroDivisionError: a bug of ours" in err
    logged = log_file.read_text()
    assert "Traceback" in logged and "INGEST DEFERRED" in logged


def test_a_wrong_command_line_defers_with_75(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = ingest_piped(monkeypatch, capsys, make_mail(), "--recipent=support@example.test")
    assert code == EX_TEMPFAIL  # argparse's 2 would bounce the mail for a typo in master.cf


def test_a_broken_install_defers_with_75(
    desk: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module of ours that does not import (a half-done upgrade) is a failure of ours too."""
    monkeypatch.setitem(sys.modules, "helpdesk.cli.ingest", None)  # importing it raises ImportError
    code, out, err = ingest_piped(monkeypatch, capsys, make_mail(), f"--recipient={SUPPORT}")
    assert code == EX_TEMPFAIL
    assert out == ""
    assert only_line(err).startswith("4.3.0 helpdesk ingest: ModuleNotFoundError")


def test_an_unreadable_configuration_defers_with_75_and_no_traceback(desk: Path) -> None:
    """As the MTA runs it: another user, the configuration not readable to it (it was exit 1)."""
    config = desk / "helpdesk.toml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    kwargs: dict[str, object] = {}
    if os.geteuid() == 0:
        # Root reads every file: run as an unprivileged account, as Postfix's pipe(8) does.
        # Its interpreter is the system's of the same version (ours may lie in root's home).
        nobody = pwd.getpwnam("nobody")
        kwargs = {"user": nobody.pw_uid, "group": nobody.pw_gid, "extra_groups": []}
        system = f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}"
        python = system if os.path.exists(system) else sys.executable
        site = next(p for p in sys.path if p.endswith("site-packages"))
        command = [
            python,
            "-c",
            f"import site, sys; site.addsitedir({site!r}); from helpdesk.cli import main; sys.exit(main())",
        ]
        desk.chmod(0o755)
    else:
        config.chmod(0)
        command = [sys.executable, "-m", "helpdesk.cli"]
    result = subprocess.run(
        [*command, "--config", str(config), "ingest", f"--recipient={SUPPORT}"],
        input=make_mail(),
        capture_output=True,
        env=env,
        cwd="/",
        timeout=120,
        **kwargs,  # type: ignore[call-overload]
    )
    err = result.stderr.decode()
    assert result.returncode == EX_TEMPFAIL, err
    assert result.stdout == b""
    assert only_line(err).startswith("4.3.0 ")
    assert "Permission" in err
