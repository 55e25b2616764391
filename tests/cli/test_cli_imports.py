"""The command line loads only what the command it runs needs: a listing never pays for the
classifier, the migrations or the mail parser at import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpdesk.cli import build_parser, command_of
from tests.conftest import REPO_ROOT

HEAVY = ("sklearn", "scipy", "skops", "matplotlib", "alembic")
AT_IMPORT = (*HEAVY, "mailparser", "sqlalchemy", "jinja2", "aiosmtpd", "imapclient", "dkim")


def loaded_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running `code`."""
    probe = f"import sys\n{code}\nimport json\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True
    )
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_importing_the_command_line_loads_none_of_the_heavy_libraries() -> None:
    assert loaded_after("import helpdesk.cli") & set(AT_IMPORT) == set()


def test_the_parser_of_a_listing_loads_no_classifier_and_no_migrations() -> None:
    code = (
        "from helpdesk.cli import build_parser\nbuild_parser(only='tickets').parse_args(['tickets', 'list'])"
    )
    assert loaded_after(code) & set(HEAVY) == set()
    assert loaded_after("from helpdesk.cli import build_parser\nbuild_parser()") & set(HEAVY) == set()


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["tickets", "list"], "tickets"),
        (["-c", "status", "tickets", "list"], "tickets"),
        (["--config", "x.toml", "-q", "status", "--json"], "status"),
        (["--config=x.toml", "model", "list"], "model"),
        (["-q", "bogus"], None),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_command_is_found_past_the_global_options(argv: list[str], command: str | None) -> None:
    assert command_of(argv) == command


@pytest.mark.parametrize(
    "argv",
    [
        ["-c", "h.toml", "tickets", "list", "--status", "open", "--json"],
        ["quarantine", "retry", "1", "2"],
        ["retrain", "--csv", "t.csv", "--text", "subject,body", "--label", "category"],
        ["model", "rollback", "--target", "priority"],
        ["ingest", "--maildir", "m", "--no-send"],
    ],
)
def test_the_parser_of_one_command_reads_it_as_the_whole_parser_does(argv: list[str]) -> None:
    assert build_parser(only=command_of(argv)).parse_args(argv) == build_parser().parse_args(argv)
