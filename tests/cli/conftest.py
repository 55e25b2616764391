"""Fixtures of the command-line tests: a desk initialised in a temp dir, starter models trained once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpdesk.cli import main


@pytest.fixture(scope="session")
def starter_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The starter models, trained once for the whole session (init would train them for each desk)."""
    from routing.model_store import ModelStore
    from routing.seed import train_starter_models

    directory = tmp_path_factory.mktemp("starter") / "models"
    train_starter_models(ModelStore(directory))
    return directory


@pytest.fixture
def desk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, starter_store: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HELPDESK_CONFIG", raising=False)
    shutil.copytree(starter_store, tmp_path / "var" / "models")
    assert main(["init"]) == 0
    return tmp_path
