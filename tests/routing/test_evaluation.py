"""The evaluation report, precision at coverage, the 'worse' rule and the confusion PNG."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from routing.classifier import TextModel
from routing.confusion_plot import OTHER, pool_confusion
from routing.dataset import Example
from routing.evaluation import compare, evaluate, evaluate_predictions, precision_at_coverage


def test_precision_at_coverage_on_a_hand_made_example() -> None:
    # Ten predictions; sorted by confidence the correctness is T T F T T F T F F F.
    confidence = [0.95, 0.90, 0.85, 0.80, 0.75, 0.70, 0.65, 0.60, 0.55, 0.50]
    correct = [True, True, False, True, True, False, True, False, False, False]
    assert precision_at_coverage(correct, confidence, 0.5) == pytest.approx(4 / 5)
    assert precision_at_coverage(correct, confidence, 0.6) == pytest.approx(4 / 6)
    assert precision_at_coverage(correct, confidence, 0.8) == pytest.approx(5 / 8)
    assert precision_at_coverage(correct, confidence, 1.0) == pytest.approx(5 / 10)
    # Order of the input does not matter, only the confidence does.
    assert precision_at_coverage(correct[::-1], confidence[::-1], 0.5) == pytest.approx(4 / 5)
    assert math.isnan(precision_at_coverage([], [], 0.5))


def test_report_fields_and_json() -> None:
    report = evaluate_predictions(
        ["a", "a", "b", "b", "c"],
        ["a", "b", "b", "b", "a"],
        [0.9, 0.4, 0.8, 0.7, 0.3],
        target="category",
        model_version="v1",
    )
    assert report.n == 5
    assert report.accuracy == pytest.approx(3 / 5)
    # F1: a = 2*(1/2*1/2)/(1) = 0.5, b = 2*(2/3*1)/(5/3) = 0.8, c = 0.
    assert report.macro_f1 == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert report.precision_at_coverage[0.6] == pytest.approx(1.0)  # the 3 surest are right
    data = json.loads(json.dumps(report.as_dict()))
    assert {"accuracy", "macro_f1", "n", "precision_at_coverage"} <= set(data)
    assert set(data["precision_at_coverage"]) == {"0.5", "0.6", "0.8"}
    assert data["per_class"]["b"] == {
        "precision": pytest.approx(2 / 3),
        "recall": 1.0,
        "f1": 0.8,
        "support": 2,
    }
    assert data["confusion"]["labels"] == ["a", "b", "c"]
    assert data["confusion"]["matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    text = report.render_text()
    assert "accuracy 0.600" in text
    assert "60%: 1.000" in text


def test_evaluate_runs_a_model_and_notes_unknown_labels(model: TextModel, examples: list[Example]) -> None:
    held = [*examples[:10], Example("monitor flickers", "", "hardware")]
    report = evaluate(model, held)
    assert report.n == 11
    assert report.model_version == model.version
    assert any("hardware" in note for note in report.notes)


def test_compare_calls_worse_only_beyond_the_tolerance() -> None:
    truth = ["a"] * 5 + ["b"] * 5
    good = evaluate_predictions(truth, truth, [0.9] * 10)
    one_off = evaluate_predictions(truth, ["a"] * 6 + ["b"] * 4, [0.9] * 10)
    assert compare(one_off, good).worse
    assert "macro-F1" in compare(one_off, good).reasons[0]
    assert not compare(good, one_off).worse
    assert not compare(good, good).worse
    assert not compare(one_off, good, tolerance=0.2).worse
    changes = compare(one_off, good).class_changes
    assert {c.label for c in changes} == {"a", "b"}
    with pytest.raises(ValueError, match="same examples"):
        compare(good, evaluate_predictions(["a"], ["a"], [1.0]))


def test_confusion_png_pools_small_labels(tmp_path: Path) -> None:
    labels = [f"L{i}" for i in range(6)]
    matrix = [[10 if i == j else 1 for j in range(6)] for i in range(6)]
    matrix[5][5] = 0
    names, pooled = pool_confusion(labels, matrix, top_n=3)
    assert names[-1] == OTHER
    assert len(names) == 4
    assert pooled.sum() == sum(map(sum, matrix))
    report = evaluate_predictions(["a", "b", "a"], ["a", "b", "b"], [0.9, 0.8, 0.7], model_version="v")
    png = report.write_confusion_png(tmp_path / "out" / "confusion.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
