"""The admin operations behind `helpdesk retrain` and `helpdesk model ...`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from routing import admin
from routing.classifier import ModelSettings
from routing.dataset import Example
from routing.errors import ModelNotFoundError
from routing.features import FeatureSettings
from routing.model_store import ModelStore

# One word and one character n-gram for the whole vocabulary: a reliably worse model.
USELESS = ModelSettings(
    features=FeatureSettings(max_word_features=1, max_char_features=1, subject_weight=0.0)
)


def test_retrain_activates_the_first_model(store: ModelStore, examples: list[Example]) -> None:
    stages: list[tuple[str, int, int]] = []
    report = admin.retrain(store, examples, "category", activate=True, progress=lambda *a: stages.append(a))
    assert report.activated
    assert not report.refused
    assert report.previous is None
    assert store.active("category") == report.version
    assert stages[-1] == ("done", len(stages), len(stages))
    data = json.loads(json.dumps(report.as_dict()))
    assert data["activated"] is True
    assert data["comparison"] is None
    assert {"accuracy", "macro_f1", "n", "precision_at_coverage"} <= set(data["evaluation"])
    assert "ACTIVATED" in report.render_text()


def test_retrain_refuses_a_worse_model_unless_forced(store: ModelStore, examples: list[Example]) -> None:
    good = admin.retrain(store, examples, "category", activate=True)
    worse = admin.retrain(store, examples, "category", activate=True, settings=USELESS)
    assert worse.refused
    assert not worse.activated
    assert worse.comparison is not None
    assert worse.comparison.worse
    assert worse.previous_report is not None
    assert worse.previous_report.n == worse.report.n  # both judged on the same held-out tickets
    assert store.active("category") == good.version
    text = worse.render_text()
    assert "NOT ACTIVATED" in text
    assert "--force" in text
    assert "macro-F1" in text
    assert json.loads(json.dumps(worse.as_dict()))["comparison"]["worse"] is True

    forced = admin.retrain(store, examples, "category", activate=True, force=True, settings=USELESS)
    assert forced.activated
    assert forced.forced
    assert store.active("category") == forced.version
    assert "despite being worse" in forced.render_text()


def test_retrain_accepts_a_model_that_is_not_worse(store: ModelStore, examples: list[Example]) -> None:
    first = admin.retrain(store, examples, "category", activate=True)
    second = admin.retrain(store, list(reversed(examples)), "category", activate=True)
    assert second.comparison is not None
    assert not second.comparison.worse
    assert second.activated
    assert store.active("category") == second.version != first.version


def test_retrain_without_activate_only_saves(store: ModelStore, examples: list[Example]) -> None:
    report = admin.retrain(store, examples, "category")
    assert not report.activated
    assert store.active("category") is None
    assert "saved, not activated" in report.render_text()


def test_list_activate_rollback(store: ModelStore, examples: list[Example]) -> None:
    a = admin.retrain(store, examples, "category", activate=True)
    b = admin.retrain(store, examples[:70], "category")
    result = admin.activate(store, b.version)
    assert (result.target, result.version, result.previous) == ("category", b.version, a.version)
    listing = admin.list_models(store)
    assert [m["active"] for m in listing.as_dict()["models"]] == [False, True]
    assert f"* {b.version}" in listing.render_text()
    back = admin.rollback(store, "category")
    assert (back.version, back.previous) == (a.version, b.version)
    assert "rolled back to" in back.render_text()
    assert admin.list_models(ModelStore(store.directory / "nothing")).render_text() == "no models"


def test_evaluate_csv(store: ModelStore, examples: list[Example], tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        admin.evaluate_csv(store, tmp_path / "x.csv", "subject", "category")
    report = admin.retrain(store, examples, "category", activate=True)
    csv_file = tmp_path / "eval.csv"
    csv_file.write_text(
        "title,text,category\n"
        "VPN,the vpn disconnects all the time,network\n"
        "Printer,paper jam in the printer,printing\n"
        "Login,my password expired,accounts\n"
        "Unlabelled,,\n",
        encoding="utf-8",
    )
    png = tmp_path / "confusion.png"
    result = admin.evaluate_csv(store, csv_file, "title,text", "category", confusion_png=png)
    data = json.loads(json.dumps(result.as_dict()))
    assert data["n"] == 3
    assert data["accuracy"] == 1.0
    assert data["macro_f1"] == 1.0
    assert set(data["precision_at_coverage"]) == {"0.5", "0.6", "0.8"}
    assert data["model_version"] == report.version
    assert any("1 rows without a label" in n for n in data["notes"])
    assert png.exists()
    by_version = admin.evaluate_csv(store, csv_file, ["title", "text"], "category", version=report.version)
    assert by_version.accuracy == 1.0
