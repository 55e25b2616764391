"""Imports point one way: helpdesk -> intake -> routing, notify -> models. Nothing imports helpdesk."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

ALLOWED = {
    "models": {"models"},
    "routing": {"routing", "models"},
    "notify": {"notify", "models"},
    "intake": {"intake", "routing", "notify", "models"},
    "helpdesk": {"helpdesk", "intake", "routing", "notify", "models"},
}
OURS = set(ALLOWED)


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_one_way(package: str) -> None:
    wrong = {}
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        bad = imported_packages(path) - ALLOWED[package]
        if bad:
            wrong[str(path.relative_to(REPO_ROOT))] = sorted(bad)
    assert wrong == {}
