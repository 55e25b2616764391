"""Fixtures for the classifier tests: a small synthetic ticket set, trained models, model stores."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from routing.classifier import TextModel, fit_pipeline
from routing.dataset import Example
from routing.model_store import ModelStore, clear_cache
from routing.seed import train_starter_models

_VOCAB = {
    "network": (
        ["vpn", "wifi", "network", "internet", "router"],
        ["drops", "is slow", "disconnects", "times out"],
    ),
    "printing": (
        ["printer", "toner", "paper jam", "print queue", "scanner"],
        ["is empty", "is stuck", "prints blank pages", "is offline"],
    ),
    "accounts": (
        ["password", "account", "login", "permission", "mfa"],
        ["is locked", "expired", "was reset", "is missing"],
    ),
}


def synthetic_examples(per_label: int = 30, seed: int = 7) -> list[Example]:
    """Short tickets whose words give their label away, with some shared filler words."""
    rng = random.Random(seed)
    filler = ["please help", "since today", "on my laptop", "again", "hello team", "thanks"]
    out = []
    for label, (nouns, verbs) in _VOCAB.items():
        for i in range(per_label):
            noun, verb = rng.choice(nouns), rng.choice(verbs)
            subject = f"{noun} {verb}"
            body = f"{rng.choice(filler)}, the {noun} {verb} {rng.choice(filler)}"
            out.append(Example(subject, body, label, key=f"{label}-{i}"))
    rng.shuffle(out)
    return out


def shared_data_dir() -> Path:
    """The shared real-data folder: $HELPDESK_SHARED_DATA, else <repo root>/../shared/data."""
    env = os.environ.get("HELPDESK_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def examples() -> list[Example]:
    return synthetic_examples()


@pytest.fixture(scope="session")
def model(examples: list[Example]) -> TextModel:
    pipeline = fit_pipeline([ex.text for ex in examples], [ex.label for ex in examples])
    return TextModel(pipeline, target="category", version="category-20250101T000000Z-00000000")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ModelStore]:
    clear_cache()
    yield ModelStore(tmp_path / "models")
    clear_cache()


@pytest.fixture(scope="session")
def starter_store(tmp_path_factory: pytest.TempPathFactory) -> ModelStore:
    store = ModelStore(tmp_path_factory.mktemp("starter") / "models")
    train_starter_models(store)
    return store
