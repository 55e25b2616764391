"""Turn a mail's subject and body into the feature matrix the text classifier learns from.

This is the one feature path for training and for prediction: `MailVectorizer` takes
(subject, body) pairs, cleans them with `routing.text_cleaning.prepare` and vectorizes them, so a saved model carries
its own text cleaning and can never be fed differently from how it was trained.

The features are meant to work across English, Polish and German without language-specific
stemmers: TF-IDF word uni/bi-grams catch fixed phrases ("reset password", "nie działa"), and
character n-grams inside word boundaries match inflected forms ("drukarka", "drukarki",
"drukarce") and the parts of German compounds ("Netzwerkdrucker" shares "drucker" with
"Drucker"). The subject gets its own, weighted, word vectorizer because a requester's subject
is usually the densest statement of the problem.
"""

from __future__ import annotations

import hashlib
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer

from routing.text_cleaning import prepare_rows

# Bumped whenever `prepare` changes what it produces, so a model's metadata tells which cleaning it saw.
FEATURES_VERSION = 1

# Column order of the prepared matrix.
SUBJECT, BODY, FULL = 0, 1, 2
# The vectorizers, in the column order of the feature matrix: (name, analyzer, prepared column).
VECTORIZERS = (("word", "word", FULL), ("char", "char_wb", FULL), ("subject", "word", SUBJECT))


@dataclass(frozen=True)
class FeatureSettings:
    """How text becomes features; stored with every model so it can be rebuilt and compared.

    The defaults were chosen by cross-validation on the training part of a real ticket set
    (see bench/classifier_quality.py): keeping terms seen once helps the rare categories, and
    capping the vocabulary keeps the model file small without costing accuracy.
    """

    word_ngrams: tuple[int, int] = (1, 2)
    char_ngrams: tuple[int, int] = (2, 5)
    subject_weight: float = 1.0  # weight of the subject-only vectorizer relative to the full text
    min_df: int = 1
    max_word_features: int | None = 30_000
    max_char_features: int | None = 60_000
    sublinear_tf: bool = True
    version: int = FEATURES_VERSION

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSettings:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known
        }
        return cls(**values)


class MailVectorizer(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """(subject, body) pairs -> one sparse TF-IDF matrix: word n-grams, char n-grams, subject words.

    Saved models hold each vocabulary as one string of terms rather than scikit-learn's dict:
    the model format stores a dict entry by entry, which made a 100k-term model take seconds
    to load; a string loads in milliseconds.
    """

    def __init__(
        self,
        word_ngrams: tuple[int, int] = (1, 2),
        char_ngrams: tuple[int, int] = (2, 5),
        subject_weight: float = 1.0,
        min_df: int = 1,
        max_word_features: int | None = 30_000,
        max_char_features: int | None = 60_000,
        sublinear_tf: bool = True,
    ) -> None:
        self.word_ngrams = word_ngrams
        self.char_ngrams = char_ngrams
        self.subject_weight = subject_weight
        self.min_df = min_df
        self.max_word_features = max_word_features
        self.max_char_features = max_char_features
        self.sublinear_tf = sublinear_tf

    def _vectorizer(self, name: str, analyzer: str, vocabulary: Sequence[str] | None = None) -> Any:
        ngrams = {"word": self.word_ngrams, "char": self.char_ngrams, "subject": (1, 1)}[name]
        limit = {"word": self.max_word_features, "char": self.max_char_features}.get(name)
        return TfidfVectorizer(
            analyzer=analyzer,
            ngram_range=tuple(ngrams),
            min_df=self.min_df,
            max_features=limit,
            sublinear_tf=self.sublinear_tf,
            lowercase=False,  # `normalise` already case-folded
            dtype=np.float32,
            vocabulary=vocabulary,
        )

    def fit(self, x: Iterable[Sequence[str]], y: Any = None) -> MailVectorizer:
        self.fit_transform(x)
        return self

    def fit_transform(self, x: Iterable[Sequence[str]], y: Any = None, **_: Any) -> sp.csr_matrix:
        rows = prepare_rows(x)
        self.vectorizers_: dict[str, Any] = {}
        blocks = []
        for name, analyzer, column in VECTORIZERS:
            vectorizer = self._vectorizer(name, analyzer)
            texts = [row[column] for row in rows]
            try:
                block = vectorizer.fit_transform(texts)
            except ValueError:
                # Every subject empty (or nothing survived cleaning): an empty vocabulary is fine.
                vectorizer = self._vectorizer(name, analyzer, vocabulary=["_empty_"])
                vectorizer.idf_ = np.ones(1)
                block = vectorizer.transform(texts)
            self.vectorizers_[name] = vectorizer
            blocks.append(block)
        return self._stack(blocks)

    def _stack(self, blocks: list[Any]) -> sp.csr_matrix:
        blocks[-1] = blocks[-1] * np.float32(self.subject_weight)
        return sp.hstack(blocks, format="csr", dtype=np.float32)

    def transform(self, x: Iterable[Sequence[str]]) -> sp.csr_matrix:
        return self.transform_prepared(prepare_rows(x))

    def transform_prepared(self, rows: Sequence[tuple[str, str, str]]) -> sp.csr_matrix:
        """Vectorize rows that `prepare_rows` already produced (the caller keeps them for explanations).

        The category and the priority model of a desk are usually fitted on the same texts with
        the same settings, so their vectorizers are equal; routing asks both about one mail, and
        the second answer comes from a small cache keyed by what the vectorizer is.
        """
        key = (self.fingerprint(), tuple(rows))
        with _recent_lock:
            for seen, matrix in _recent:
                if seen == key:
                    return matrix
        blocks = []
        for name, _, column in VECTORIZERS:
            blocks.append(self.vectorizers_[name].transform([row[column] for row in rows]))
        matrix = self._stack(blocks)
        with _recent_lock:
            _recent.append((key, matrix))
        return matrix

    def fingerprint(self) -> str:
        """A digest of the fitted vocabularies, weights and settings: equal for equal vectorizers."""
        cached: str | None = self.__dict__.get("_fingerprint")
        if cached is None:
            digest = hashlib.sha256(repr(self.get_params()).encode())
            for name, _, _ in VECTORIZERS:
                vectorizer = self.vectorizers_[name]
                digest.update("\n".join(vectorizer.get_feature_names_out()).encode())
                digest.update(np.asarray(vectorizer.idf_, dtype=np.float64).tobytes())
            cached = digest.hexdigest()
            self.__dict__["_fingerprint"] = cached
        return cached

    def get_feature_names_out(self, input_features: Any = None) -> npt.NDArray[np.str_]:
        """Feature names as "<vectorizer>__<term>", e.g. "word__vpn", "char__ druk", "subject__drukarka"."""
        names: list[str] = []
        for name, _, _ in VECTORIZERS:
            names.extend(f"{name}__{term}" for term in self.vectorizers_[name].get_feature_names_out())
        return np.asarray(names, dtype=np.str_)

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in ("vectorizers_", "_fingerprint")}
        if "vectorizers_" in self.__dict__:
            for name, vectorizer in self.vectorizers_.items():
                # One newline-joined string: a fixed-width array of terms is as wide as the longest
                # term, which tripled the memory needed to load a model. Terms never hold a newline
                # (`normalise` turns every non-word character into a space).
                state[f"terms_{name}_"] = "\n".join(vectorizer.get_feature_names_out())
                state[f"idf_{name}_"] = np.asarray(vectorizer.idf_, dtype=np.float64)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        arrays = {k: state.pop(k) for k in list(state) if k.startswith(("terms_", "idf_"))}
        self.__dict__.update(state)
        if arrays:
            self.vectorizers_ = {}
            for name, analyzer, _ in VECTORIZERS:
                terms = str(arrays[f"terms_{name}_"]).split("\n")
                vectorizer = self._vectorizer(name, analyzer, vocabulary=terms)
                vectorizer.idf_ = arrays[f"idf_{name}_"]
                self.vectorizers_[name] = vectorizer


# The last few vectorized mails, shared by every model in the process (see transform_prepared).
_recent: deque[tuple[tuple[str, tuple[tuple[str, str, str], ...]], sp.csr_matrix]] = deque(maxlen=4)
_recent_lock = threading.Lock()


def build_features(settings: FeatureSettings | None = None) -> MailVectorizer:
    """The unfitted feature transformer for these settings."""
    s = settings or FeatureSettings()
    return MailVectorizer(
        word_ngrams=s.word_ngrams,
        char_ngrams=s.char_ngrams,
        subject_weight=s.subject_weight,
        min_df=s.min_df,
        max_word_features=s.max_word_features,
        max_char_features=s.max_char_features,
        sublinear_tf=s.sublinear_tf,
    )
