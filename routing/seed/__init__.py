"""Starter models, so a fresh install routes mail before it has resolved tickets of its own.

`tickets.csv` is a hand-written set of example IT tickets in English, Polish and German with
columns subject, body, language, category (network, hardware, software, accounts, email,
printing, security, other) and priority (low, normal, high, urgent). `helpdesk init` calls
`train_starter_models`; later `helpdesk retrain` replaces them with models trained on the
organisation's own resolved tickets.
"""

from __future__ import annotations

from pathlib import Path

from routing.dataset import Example, load_csv
from routing.model_store import ModelStore
from routing.training import ProgressCallback, train

SEED_CSV = Path(__file__).with_name("tickets.csv")
CATEGORIES = ("network", "hardware", "software", "accounts", "email", "printing", "security", "other")
PRIORITIES = ("low", "normal", "high", "urgent")
STARTER_TARGETS = ("category", "priority")


def seed_examples(target: str) -> tuple[Example, ...]:
    """The seed tickets labelled for `target` ("category" or "priority")."""
    return load_csv(SEED_CSV, ("subject", "body"), target).examples


def train_starter_models(store: ModelStore, *, progress: ProgressCallback | None = None) -> list[str]:
    """Train, save and activate a category and a priority model from the seed tickets.

    The seed set is small, so after the held-out evaluation each model is refitted on all of
    it; the metadata keeps the held-out figures and says `fit_on: all`. Returns the versions.
    """
    versions = []
    for target in STARTER_TARGETS:
        result = train(seed_examples(target), target, refit_on_all=True, progress=progress, source="seed")
        store.save(result)
        store.activate(target, result.version)
        versions.append(result.version)
    return versions
