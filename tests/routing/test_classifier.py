"""TextModel: a small synthetic training run, calibrated probabilities and meaningful top terms."""

from __future__ import annotations

import numpy as np
import pytest

from routing.classifier import TextModel, fit_pipeline
from routing.dataset import Example
from routing.facts import Prediction


def test_probabilities_are_calibrated_distributions(model: TextModel, examples: list[Example]) -> None:
    proba = model.predict_proba([ex.text for ex in examples[:20]])
    assert proba.shape == (20, len(model.labels))
    assert np.all(proba >= 0.0)
    assert np.all(proba <= 1.0)
    assert np.allclose(proba.sum(axis=1), 1.0)


def test_predict_returns_prediction_with_version_and_confidence(model: TextModel) -> None:
    p = model.predict("VPN disconnects", "the vpn disconnects every few minutes")
    assert isinstance(p, Prediction)
    assert p.label == "network"
    assert 0.5 < p.confidence <= 1.0
    assert p.model_version == model.version
    assert model.labels == ("accounts", "network", "printing")


def test_predict_many_matches_predict(model: TextModel) -> None:
    items = [("printer is offline", ""), ("password expired", "cannot login"), ("wifi is slow", "")]
    many = model.predict_many(items)
    assert [p.label for p in many] == ["printing", "accounts", "network"]
    assert many == [model.predict(s, b) for s, b in items]
    assert model.predict_many([]) == []


def test_top_terms_are_the_mails_own_telling_words(model: TextModel) -> None:
    p = model.predict("Toner is empty", "hello team, the toner in the printer is empty again")
    assert p.label == "printing"
    assert p.top_terms
    assert set(p.top_terms) & {"toner", "printer", "empty", "toner is"}
    assert not set(p.top_terms) & {"hello", "team", "the", "again"}
    assert len(p.top_terms) <= model.top_n


def test_confidence_is_lower_for_mail_without_telling_words(model: TextModel) -> None:
    sure = model.predict("printer paper jam", "the printer has a paper jam")
    vague = model.predict("hello", "please help since today")
    assert vague.confidence < sure.confidence


def test_two_labels_work_and_one_label_is_refused() -> None:
    items = [("printer jam", ""), ("toner empty", ""), ("vpn drops", ""), ("wifi slow", "")] * 3
    labels = ["printing", "printing", "network", "network"] * 3
    model = TextModel(fit_pipeline(items, labels), target="category", version="v")
    assert model.predict("printer toner", "").label == "printing"
    assert model.predict("vpn wifi", "").top_terms
    with pytest.raises(ValueError, match="two different labels"):
        fit_pipeline(items, ["printing"] * len(items))


def test_textmodel_refuses_a_foreign_pipeline() -> None:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    with pytest.raises(TypeError):
        TextModel(Pipeline([("features", FunctionTransformer())]), target="category", version="v")
