"""The desk's files are its own: data directories 0700, every file in them 0600, whoever creates them.

The database holds every ticket and the outgoing maildir holds every technician's signed reply
address, so a file another local user can read is a way into the desk.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpdesk.cli import main
from models.db import DatabaseConfig, create_db_engine, migrate
from notify.transports import MaildirTransport
from routing.model_files import atomic_write
from routing.model_store import ModelStore
from tests.conftest import REPO_ROOT
from tests.loopback import free_port, wait_until
from tests.mail import make_mail

OTHER_USER = "nobody"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextmanager
def umask(value: int) -> Iterator[None]:
    """Run with a permissive umask, as a shell with the usual 022 would."""
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def everything_under(root: Path) -> tuple[list[Path], list[Path]]:
    dirs = [root] + [p for p in root.rglob("*") if p.is_dir() and not p.is_symlink()]
    files = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    return dirs, files


def assert_private(root: Path) -> None:
    dirs, files = everything_under(root)
    assert files, f"nothing under {root}"
    loose = {str(p.relative_to(root.parent)): oct(mode(p)) for p in dirs if mode(p) != 0o700}
    loose |= {str(p.relative_to(root.parent)): oct(mode(p)) for p in files if mode(p) != 0o600}
    assert loose == {}


def ingest_one(desk: Path, subject: str = "Printer on floor 3 does not print") -> None:
    mail = desk / "in.eml"
    mail.write_bytes(make_mail(subject=subject))
    assert main(["ingest", str(mail)]) == 0


def test_init_and_ingest_under_a_loose_umask_leave_only_private_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starter_store: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    with umask(0o022):
        shutil.copytree(starter_store, tmp_path / "var" / "models")  # 0644 files, as a copy would be
        assert main(["init"]) == 0
        ingest_one(tmp_path)
        assert os.umask(0o022) == 0o022  # the command gave the caller's umask back
    assert list((tmp_path / "var" / "sent" / "new").iterdir()), "no acknowledgment written"
    assert mode(tmp_path / "helpdesk.toml") == 0o600
    assert_private(tmp_path / "var")


def test_a_command_writes_under_umask_077_whatever_the_callers(desk: Path) -> None:
    # The confusion matrix is drawn by matplotlib, which opens its file with the umask's mode:
    # only the umask the command sets keeps it private.
    data = desk / "eval.csv"
    data.write_text("short,description,group\n" + "VPN down,no VPN since today,network\n" * 6)
    evaluate = ["model", "evaluate", "--csv", str(data), "--text", "short,description", "--label", "group"]
    with umask(0o022):
        code = main([*evaluate, "--target", "category", "--json", "--confusion", str(desk / "confusion.png")])
    assert code == 0
    assert mode(desk / "confusion.png") == 0o600


def test_the_log_file_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, desk: Path) -> None:
    with (desk / "helpdesk.toml").open("a") as fh:
        fh.write('\n[logging]\nfile = "logs/helpdesk.log"\n')
    with umask(0o022):
        ingest_one(desk)
    assert mode(desk / "logs") == 0o700
    assert mode(desk / "logs" / "helpdesk.log") == 0o600
    assert "ROUTED" in (desk / "logs" / "helpdesk.log").read_text()


def test_files_made_without_the_cli_are_private_too(tmp_path: Path) -> None:
    # The daemon's parts are also started by other code than `helpdesk` (tests, an embedding
    # program): the database, the maildir and the models get their modes explicitly.
    with umask(0o022):
        engine = create_db_engine(DatabaseConfig(url=f"sqlite:///{tmp_path / 'data' / 'helpdesk.db'}"))
        try:
            migrate(engine)  # writes through the WAL: -wal and -shm exist now
            with engine.connect() as conn:
                assert (tmp_path / "data" / "helpdesk.db-wal").exists()
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            engine.dispose()
        MaildirTransport(tmp_path / "data" / "sent").send("support@example.test", ["a@example.com"], b"x\r\n")
        store = ModelStore(tmp_path / "data" / "models")
        with store._locked():
            atomic_write(tmp_path / "data" / "models" / "activations.json", b"{}")
    assert mode(tmp_path / "data") == 0o700
    assert_private(tmp_path / "data")


def loosen(desk: Path) -> None:
    """A desk as an older version left it: directories 0755, files 0644."""
    for path in [desk / "var", *(desk / "var").rglob("*")]:
        if path.is_symlink():
            continue
        path.chmod(0o755 if path.is_dir() else 0o644)
    (desk / "helpdesk.toml").chmod(0o644)


def test_init_tightens_an_existing_desk_and_says_what_it_tightened(
    desk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest_one(desk)
    loosen(desk)
    capsys.readouterr()
    assert main(["init"]) == 0
    err = capsys.readouterr().err
    assert "TIGHTENED" in err
    assert "helpdesk.db" in err
    assert "helpdesk.toml" in err
    assert mode(desk / "helpdesk.toml") == 0o600
    assert_private(desk / "var")


def test_serve_tightens_an_existing_desk_before_it_accepts_mail(desk: Path) -> None:
    ingest_one(desk)
    loosen(desk)
    log = desk / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HELPDESK_SMTP_LISTEN": f"127.0.0.1:{free_port()}"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "helpdesk.cli", "serve"],
            cwd=desk,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            assert wait_until(lambda: b"SERVING" in log.read_bytes() or proc.poll() is not None, 60), (
                log.read_text()
            )
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    text = log.read_text()
    assert "SERVING" in text, text
    assert "TIGHTENED" in text
    assert text.index("TIGHTENED") < text.index("SERVING")
    assert mode(desk / "helpdesk.toml") == 0o600
    assert_private(desk / "var")


# -- another local user -------------------------------------------------------------------------


def other_user_or_skip() -> None:
    """Reading as another user needs root (runuser); without root the test cannot run here."""
    if os.geteuid() != 0:
        pytest.skip(f"reading the desk as another local user needs root (runuser -u {OTHER_USER}); not root")
    missing = []
    if shutil.which("runuser") is None:
        missing.append("runuser")
    try:
        import pwd

        pwd.getpwnam(OTHER_USER)
    except KeyError:
        missing.append(f"the user {OTHER_USER}")
    if missing:
        reason = f"running as root but {' and '.join(missing)} missing: cannot read as another user"
        if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason)


def read_as_other_user(path: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["runuser", "-u", OTHER_USER, "--", "cat", str(path)], capture_output=True, timeout=30, check=False
    )


def test_another_local_user_cannot_read_the_database_a_sent_mail_or_the_config(
    monkeypatch: pytest.MonkeyPatch, starter_store: Path
) -> None:
    other_user_or_skip()
    # Not under pytest's 0700 temp root: the desk sits in a directory everybody may enter, like
    # /var/lib/helpdesk or a home directory, so only the desk's own modes stand in the way.
    root = Path(tempfile.mkdtemp(prefix="helpdesk-files-", dir="/tmp"))
    try:
        root.chmod(0o755)
        monkeypatch.chdir(root)
        monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
        with umask(0o022):
            shutil.copytree(starter_store, root / "var" / "models")
            assert main(["init"]) == 0
            ingest_one(root, subject="VPN token for alicja")
        control = root / "readme.txt"
        control.write_text("anyone may read this\n")
        control.chmod(0o644)
        assert read_as_other_user(control).returncode == 0, "the other user cannot read anything here"
        sent = next((root / "var" / "sent" / "new").iterdir())
        for secret in (root / "var" / "helpdesk.db", sent, root / "helpdesk.toml"):
            done = read_as_other_user(secret)
            assert done.returncode != 0, f"{OTHER_USER} read {secret}"
            assert b"Permission denied" in done.stderr
            assert done.stdout == b""
    finally:
        shutil.rmtree(root, ignore_errors=True)
