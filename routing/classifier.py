"""The trained text classifier the routing engine asks for a category or a priority.

A `TextModel` is one fitted scikit-learn pipeline (`MailVectorizer` -> `PlattCalibratedSVC`)
for one target, with the version it is stored under. It answers with `routing.facts.Prediction`:
the label, its calibrated probability, and the words of the mail that pushed hardest towards it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.pipeline import Pipeline

from routing.calibration import PlattCalibratedSVC
from routing.explanations import is_explanatory, readable_term
from routing.facts import Prediction
from routing.features import FULL, FeatureSettings, MailVectorizer, build_features
from routing.text_cleaning import prepare_rows

TOP_TERMS = 5


@dataclass(frozen=True)
class ModelSettings:
    """Everything that decides how a model is trained, stored in its metadata."""

    features: FeatureSettings = field(default_factory=FeatureSettings)
    C: float = 0.5  # SVM regularisation; 0.3-1.0 scored alike in cross-validation, 0.5 sits in the middle
    calibration_folds: int = 3
    random_state: int = 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["features"] = self.features.as_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelSettings:
        return cls(
            features=FeatureSettings.from_dict(data.get("features", {})),
            C=float(data.get("C", cls.C)),
            calibration_folds=int(data.get("calibration_folds", cls.calibration_folds)),
            random_state=int(data.get("random_state", cls.random_state)),
        )


def build_pipeline(settings: ModelSettings | None = None) -> Pipeline:
    s = settings or ModelSettings()
    classifier = PlattCalibratedSVC(C=s.C, folds=s.calibration_folds, random_state=s.random_state)
    return Pipeline([("features", build_features(s.features)), ("classifier", classifier)])


def fit_pipeline(
    items: Sequence[tuple[str, str]], labels: Sequence[str], settings: ModelSettings | None = None
) -> Pipeline:
    """Fit a fresh pipeline on (subject, body) pairs and their labels."""
    if len(set(labels)) < 2:
        raise ValueError("training needs at least two different labels")
    pipeline = build_pipeline(settings)
    pipeline.fit(list(items), np.asarray(labels, dtype=object))
    return pipeline


class TextModel:
    """One trained model for one target ("category" or "priority")."""

    def __init__(self, pipeline: Pipeline, *, target: str, version: str, top_n: int = TOP_TERMS) -> None:
        features = pipeline.named_steps.get("features")
        classifier = pipeline.named_steps.get("classifier")
        if not isinstance(features, MailVectorizer) or not isinstance(classifier, PlattCalibratedSVC):
            raise TypeError("a TextModel wraps a MailVectorizer -> PlattCalibratedSVC pipeline")
        self.pipeline = pipeline
        self.target = target
        self.version = version
        self.top_n = top_n
        self._features = features
        self._classifier = classifier
        self.labels: tuple[str, ...] = tuple(str(c) for c in classifier.classes_)
        self._names: npt.NDArray[np.str_] | None = None

    def __repr__(self) -> str:
        return f"TextModel(target={self.target!r}, version={self.version!r}, labels={len(self.labels)})"

    def predict(self, subject: str, body: str) -> Prediction:
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, items: Sequence[tuple[str, str]]) -> list[Prediction]:
        if not items:
            return []
        rows = prepare_rows(items)
        # Input validation costs more than the vectorizing of one mail; our own code built the input.
        with sklearn.config_context(assume_finite=True, skip_parameter_validation=True):
            x = self._features.transform_prepared(rows)
            proba = self._classifier.predict_proba(x)
        best = proba.argmax(axis=1)
        out = []
        for i, k in enumerate(best):
            out.append(
                Prediction(
                    label=self.labels[k],
                    confidence=float(proba[i, k]),
                    model_version=self.version,
                    top_terms=self._top_terms(x, i, int(k), rows[i][FULL]),
                )
            )
        return out

    def predict_proba(self, items: Sequence[tuple[str, str]]) -> npt.NDArray[np.float64]:
        """Calibrated probabilities, one row per item, columns in the order of `labels`."""
        rows = prepare_rows(items)
        proba: npt.NDArray[np.float64] = self._classifier.predict_proba(
            self._features.transform_prepared(rows)
        )
        return proba

    def _feature_names(self) -> npt.NDArray[np.str_]:
        if self._names is None:
            self._names = self._features.get_feature_names_out()
        return self._names

    def _top_terms(self, x: Any, row: int, label: int, document: str) -> tuple[str, ...]:
        """The mail's own terms with the largest weight x coefficient for the predicted label.

        Several features can point at one word (its char n-grams, its unigram, the subject
        copy); their contributions are added up so the word is listed once.
        """
        start, end = x.indptr[row], x.indptr[row + 1]
        columns = x.indices[start:end]
        contributions = x.data[start:end] * self._classifier.coef_[label, columns]
        order = np.argsort(-contributions, kind="stable")
        names = self._feature_names()
        weights: dict[str, float] = {}
        for j in order[: 8 * self.top_n]:
            if contributions[j] <= 0:
                break
            term = readable_term(str(names[columns[j]]), document)
            if not is_explanatory(term):
                continue
            weights[term] = weights.get(term, 0.0) + float(contributions[j])
        ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(term for term, _ in ranked[: self.top_n])
