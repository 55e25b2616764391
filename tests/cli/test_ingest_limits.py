"""`helpdesk ingest` holds mail to the same size limit as the SMTP listener, on every source.

A mail over `[smtp] max_message_size` is refused, never silently dropped: nothing of it is
stored, the command says which mail and why on stderr, and exits 65 (EX_DATAERR), so an MTA
that pipes mail to it bounces the mail to its sender, as it would after the listener's 552.
Finding out that a mail is too big never reads it whole into memory.
"""

from __future__ import annotations

import io
import json
import mailbox
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest
from sqlalchemy import func, select

from helpdesk.app import build_app
from helpdesk.cli import main
from helpdesk.settings import load_settings
from intake.ingest import CHUNK, split_mbox
from models.raw_message import RawMessage
from tests.cli.runner import run_json
from tests.conftest import REPO_ROOT
from tests.mail import make_mail
from tests.routing.conftest import shared_data_dir

LIMIT = 64 * 1024
EX_DATAERR = 65


@pytest.fixture
def small_limit(desk: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HELPDESK_SMTP_MAX_MESSAGE_SIZE", str(LIMIT))
    return desk


def big_mail(subject: str = "too big") -> bytes:
    return make_mail(subject=subject, body="x" * 70 + "\n" + ("y" * 76 + "\n") * (2 * LIMIT // 77))


def run_json_text(text: str) -> dict[str, int]:
    value: dict[str, int] = json.loads(text)
    return value


def stored_rows(desk: Path) -> int:
    with build_app(load_settings(desk / "helpdesk.toml")) as app, app.readers() as session:
        return session.scalar(select(func.count()).select_from(RawMessage)) or 0


def test_a_piped_mail_over_the_limit_is_refused_with_65(
    small_limit: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = big_mail()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    capsys.readouterr()
    assert main(["ingest"]) == EX_DATAERR
    err = capsys.readouterr().err
    assert f"stdin: refused, not stored: {len(data)} bytes is over the limit of {LIMIT} bytes" in err
    assert "max_message_size" in err
    assert stored_rows(small_limit) == 0


def test_a_mail_at_the_limit_is_stored(
    small_limit: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = make_mail(body="z")
    data += b"z" * (LIMIT - len(data))
    assert len(data) == LIMIT
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(data)))
    assert run_json(capsys, "ingest", "--json", "--no-process")["stored"] == 1


def test_files_over_the_limit_are_refused_and_the_others_stored(
    small_limit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = small_limit / "small.eml"
    small.write_bytes(make_mail(subject="fits"))
    big = small_limit / "big.eml"
    big.write_bytes(big_mail())
    capsys.readouterr()
    assert main(["ingest", "--json", str(small), str(big)]) == EX_DATAERR
    captured = capsys.readouterr()
    assert f"{big}: refused, not stored: {big.stat().st_size} bytes" in captured.err
    result = run_json_text(captured.out)
    assert result["stored"] == 1
    assert result["refused"] == 1
    assert result["tickets_created"] == 1
    assert big.exists()  # the source is left as it was


def test_maildir_and_mbox_messages_over_the_limit_are_refused_and_the_others_stored(
    small_limit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = mailbox.Maildir(str(small_limit / "inbox"), create=True)
    box.add(make_mail(subject="maildir fits 1"))
    big_key = box.add(big_mail("maildir too big"))
    box.add(make_mail(subject="maildir fits 2"))
    mbox = mailbox.mbox(str(small_limit / "old.mbox"), create=True)
    mbox.add(make_mail(subject="mbox fits 1"))
    mbox.add(big_mail("mbox too big"))
    mbox.add(make_mail(subject="mbox fits 2"))
    mbox.close()
    capsys.readouterr()
    sources = ["--maildir", str(small_limit / "inbox"), "--mbox", str(small_limit / "old.mbox")]
    code = main(["ingest", "--json", "--no-process", *sources])
    captured = capsys.readouterr()
    assert code == EX_DATAERR
    result = run_json_text(captured.out)
    assert (result["stored"], result["refused"]) == (4, 2)
    assert f"inbox:{big_key}: refused, not stored: more than {LIMIT} bytes" in captured.err
    assert "old.mbox:1: refused, not stored:" in captured.err


# -- memory -------------------------------------------------------------------------------------

# VmHWM, not getrusage's ru_maxrss: Linux carries ru_maxrss over from the process that forked
# (pytest, with its hundreds of megabytes) across execve; VmHWM belongs to the new program.
PEAK_RSS = (
    "import sys\n"
    "from helpdesk.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
    "print('PEAK_RSS_KB', hwm.split()[1], file=sys.stderr)\n"
    "sys.exit(code)\n"
)
HUGE = 256 * 1024 * 1024
WRITE_HUGE = (
    "import sys\n"
    "out = sys.stdout.buffer\n"
    "out.write(sys.stdin.buffer.read())\n"
    "piece = b'A' * 65535 + b'\\n'\n"
    "for _ in range(int(sys.argv[1]) // len(piece)):\n"
    "    out.write(piece)\n"
)
# `helpdesk ingest` itself (Python, SQLAlchemy, the pipeline's modules) takes about 60 MB.
RSS_BUDGET_KB = 140 * 1024


def ingest_child(desk: Path, *args: str, stdin: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HELPDESK_SMTP_MAX_MESSAGE_SIZE": "1MB"}
    return subprocess.Popen(
        [sys.executable, "-c", PEAK_RSS, "ingest", "--no-process", *args],
        cwd=desk,
        env=env,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def peak_rss_kb(stderr: bytes) -> int:
    line = next(x for x in stderr.decode().splitlines() if x.startswith("PEAK_RSS_KB"))
    return int(line.split()[1])


@pytest.mark.slow
def test_a_huge_piped_mail_is_refused_in_bounded_memory(desk: Path) -> None:
    # A writer on the other end of a pipe, as an MTA is: a mail head, then HUGE bytes of body.
    head = make_mail(subject="huge")
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITE_HUGE, str(HUGE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert writer.stdin is not None
    writer.stdin.write(head)
    writer.stdin.close()
    child = ingest_child(desk, stdin=writer.stdout)
    assert writer.stdout is not None
    writer.stdout.close()  # the child holds the read end now
    _, err = child.communicate(timeout=300)
    assert writer.wait(60) == 0  # it wrote everything: the mail was read to its end, not cut off
    assert child.returncode == EX_DATAERR, err.decode()
    assert f"stdin: refused, not stored: {len(head) + HUGE} bytes".encode() in err
    assert peak_rss_kb(err) < RSS_BUDGET_KB, f"{peak_rss_kb(err)} KB for a {HUGE} byte mail"


@pytest.mark.slow
def test_a_huge_file_and_a_huge_mbox_line_are_refused_in_bounded_memory(desk: Path) -> None:
    huge_file = desk / "huge.eml"
    with huge_file.open("wb") as fh:  # sparse: 3 GB that take no disk
        fh.write(make_mail(subject="huge file"))
        fh.truncate(3 * 1024**3)
    mbox = desk / "huge.mbox"
    with mbox.open("wb") as fh:  # one message that is one line of HUGE bytes
        fh.write(b"From eve@example.com Mon Nov 30 10:00:00 2026\n")
        fh.write(make_mail(subject="huge line").rstrip(b"\n") + b" ")
        block = b"B" * (1024 * 1024)
        for _ in range(HUGE // len(block)):
            fh.write(block)
        fh.write(b"\n\nFrom bob@example.com Mon Nov 30 10:00:01 2026\n")
        fh.write(make_mail(subject="after the huge one"))
    child = ingest_child(desk, "--json", "--mbox", str(mbox), str(huge_file))
    out, err = child.communicate(timeout=300)
    assert child.returncode == EX_DATAERR, err.decode()
    assert f"{huge_file}: refused, not stored: {3 * 1024**3} bytes".encode() in err
    assert f"{mbox}:0: refused, not stored:".encode() in err
    assert run_json_text(out.decode())["stored"] == 1  # the mail after the huge one
    assert peak_rss_kb(err) < RSS_BUDGET_KB, f"{peak_rss_kb(err)} KB"


# -- the mbox reader ----------------------------------------------------------------------------


def stdlib_messages(path: Path) -> list[bytes]:
    box = mailbox.mbox(str(path), factory=None, create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def ours(path: Path, limit: int = 10**9) -> list[bytes | None]:
    with path.open("rb") as fh:
        return [data for data, _ in split_mbox(fh, limit)]


def test_the_mbox_reader_splits_as_the_standard_library_does(tmp_path: Path) -> None:
    path = tmp_path / "edges.mbox"
    path.write_bytes(
        b"junk before the first message\n\n"
        b"From a@example.com Mon Nov 30 10:00:00 2026\nSubject: one\n\nbody\n\n\n"
        b"From b@example.com Mon Nov 30 10:00:01 2026\nSubject: two\n\n>From quoted\nno blank before\n"
        b"From c@example.com Mon Nov 30 10:00:02 2026\r\nSubject: three\r\n\r\ncrlf\r\n\r\n"
        b"From d@example.com Mon Nov 30 10:00:03 2026\n"
        b"From e@example.com " + b"x" * (3 * CHUNK) + b"\nSubject: long from line\n\n"
        b"line " + b"y" * (2 * CHUNK + 7) + b"\nFrom not at a line start\n\n"
    )
    assert ours(path) == stdlib_messages(path)


def test_the_mbox_reader_agrees_with_the_standard_library_on_real_mboxes() -> None:
    found = sorted(shared_data_dir().rglob("*mbox*")) if shared_data_dir().is_dir() else []
    files = [p for p in found if p.is_file()]
    if not files:
        pytest.skip(f"shared data not found at {shared_data_dir()} (set HELPDESK_SHARED_DATA)")
    for path in files:
        assert ours(path) == stdlib_messages(path), path


def test_the_mbox_reader_drops_a_message_over_the_limit_and_counts_it(tmp_path: Path) -> None:
    path = tmp_path / "two.mbox"
    path.write_bytes(b"From a\nSubject: big\n\n" + b"z" * 5000 + b"\n\nFrom b\nSubject: small\n\nok\n")
    with path.open("rb") as fh:
        assert list(split_mbox(fh, 1000)) == [(None, 5015), (b"Subject: small\n\nok\n", 19)]
