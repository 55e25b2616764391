"""Running the `helpdesk` command in-process and reading its JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpdesk.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr().out
    assert code == 0, out
    return json.loads(out)
