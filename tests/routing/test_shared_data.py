"""Reading the real ticket exports in the shared data folder (skipped when it is not there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.classifier import TextModel, fit_pipeline
from routing.dataset import load_csv, stratified_split
from routing.evaluation import evaluate

from .conftest import shared_data_dir


def _csv(relative: str) -> Path:
    path = shared_data_dir() / relative
    if not path.is_file():
        pytest.skip(f"shared data not found at {path} (set HELPDESK_SHARED_DATA)")
    return path


def test_it_ticket_export_loads_with_two_text_columns() -> None:
    data = load_csv(
        _csv("it-ticket-assignment/input_data.csv"), "Short description,Description", "Assignment group"
    )
    assert len(data.examples) == 8500
    assert len(data.counts) == 74
    split = stratified_split(data.examples)
    assert 1600 < len(split.test) < 1750
    assert "GRP_73" in split.train_only_labels


def test_a_model_learns_real_tickets() -> None:
    data = load_csv(_csv("endava-tickets-subset/all_tickets_subset.csv"), "title,body", "category")
    examples = data.examples[:1500]
    split = stratified_split(examples)
    train = [examples[i] for i in split.train]
    pipeline = fit_pipeline([ex.text for ex in train], [ex.label for ex in train])
    report = evaluate(TextModel(pipeline, target="category", version="v"), [examples[i] for i in split.test])
    majority = max(data.counts.values()) / len(data.examples)
    assert report.accuracy > majority - 0.05
