"""Listings on a big desk: `tickets list` shows a page (`--limit`, `--since`) and says what it left
out, and the listing commands load none of the daemon's parts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.desk import database_url, seed_tickets
from helpdesk.cli import main
from helpdesk.cli.tickets import DEFAULT_LIMIT
from tests.conftest import REPO_ROOT

# What only the daemon, ingest or retraining use: a listing that loads one of them pays for it.
DAEMON_ONLY = (
    "sklearn",
    "scipy",
    "skops",
    "alembic",
    "mailparser",
    "jinja2",
    "aiosmtpd",
    "dkim",
    "inscriptis",
)


def listing(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[list[dict[str, object]], str]:
    capsys.readouterr()
    assert main(["tickets", "list", "--json", *argv]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_a_big_desk_lists_a_page_and_says_how_many_it_left_out(
    desk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_tickets(database_url(desk), DEFAULT_LIMIT * 2, seed=3)
    every, note = listing(capsys, "--all", "--limit", "0")
    assert len(every) == DEFAULT_LIMIT * 2 and note == ""
    page, note = listing(capsys, "--all")
    assert [t["number"] for t in page] == [t["number"] for t in every[:DEFAULT_LIMIT]]
    assert f"{DEFAULT_LIMIT} of {DEFAULT_LIMIT * 2} tickets shown" in note
    newest, _ = listing(capsys, "--all", "--limit", "5", "--newest-first")
    assert [t["number"] for t in newest] == [t["number"] for t in every[::-1][:5]]
    moment = str(every[-3]["created_at"])
    recent, note = listing(capsys, "--all", "--since", moment)
    assert [t["number"] for t in recent] == [t["number"] for t in every[-3:]] and note == ""


def test_a_small_desk_lists_every_ticket_without_a_note(
    desk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seed_tickets(database_url(desk), 7, seed=4)
    shown, note = listing(capsys, "--all")
    assert len(shown) == 7 and note == ""


def test_since_takes_a_duration_back_from_now(desk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed_tickets(database_url(desk), 3, seed=5)  # opened in 2025
    assert listing(capsys, "--all", "--since", "2025-01-01")[0] != []
    assert listing(capsys, "--all", "--since", "1h")[0] == []
    with pytest.raises(SystemExit):
        main(["tickets", "list", "--since", "yesterday-ish"])


@pytest.mark.parametrize(
    "argv", [["tickets", "list"], ["tickets", "show", "1"], ["status"], ["quarantine", "list"]]
)
def test_a_listing_loads_nothing_of_the_daemon(desk: Path, argv: list[str]) -> None:
    seed_tickets(database_url(desk), 2, seed=6)
    probe = (
        "import sys, json\nfrom helpdesk.cli import main\n"
        f"code = main({argv!r})\n"
        "print(json.dumps([code, sorted({m.split('.')[0] for m in sys.modules})]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=desk,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    code, loaded = json.loads(done.stdout.splitlines()[-1])
    assert code == 0
    assert set(loaded) & set(DAEMON_ONLY) == set()


def test_a_reader_that_stops_early_gets_no_traceback(desk: Path) -> None:
    """`helpdesk tickets list --limit 0 | head -1` on a big desk: the listing outgrows the pipe,
    `head` leaves, and the command ends quietly with the shell's code for it (128 + SIGPIPE)."""
    seed_tickets(database_url(desk), 1500, seed=7)
    listing = subprocess.Popen(
        [sys.executable, "-m", "helpdesk.cli", "tickets", "list", "--all", "--limit", "0"],
        cwd=desk,
        env={"PYTHONPATH": str(REPO_ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert listing.stdout is not None and listing.stderr is not None
    assert listing.stdout.readline().startswith(b"#")
    listing.stdout.close()  # as head does after its line
    errors = listing.stderr.read().decode()
    assert listing.wait(60) == 141
    assert "Traceback" not in errors and "BrokenPipe" not in errors, errors
