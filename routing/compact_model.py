"""A fitted text model as plain arrays: a safe file lighter than skops, and prediction with numpy alone.

The daemon only predicts. Loading a model through skops imported scikit-learn and scipy (about
120 MB and three seconds) and rebuilt the estimators object by object; a `CompactModel` is the
same fitted model as arrays, and needs numpy and the standard library.

The file (`<version>.npz`, written by `to_npz`) holds only numeric and byte arrays and is read
with `numpy.load(allow_pickle=False)`: nothing in it can name a class or a function, so loading
it builds no object and runs no code, whoever wrote the file. Its arrays:

    meta                  UTF-8 JSON: format, class labels, each vectorizer's name, analyzer and
                          n-gram range, the subject weight, sublinear tf
    terms_<vectorizer>    UTF-8 of the vocabulary, one term per line, in column order
    idf_<vectorizer>      float64 inverse document frequencies
    coef_t                float32 SVM weights, one row per feature, one column per class
    intercept, platt_a, platt_b   float64, one per class

Prediction repeats, operation for operation and in the same floating-point types, what
scikit-learn's `TfidfVectorizer.transform` (counts, log + 1, times idf, L2 norm summed in double
precision), our `MailVectorizer` (the weighted subject block) and `PlattCalibratedSVC`
(`csr @ coef.T` accumulated in float32 in column order, then the sigmoid of libm's exp) compute,
so a model answers every mail with the same label and the same confidence to the last bit
(tests/routing/test_compact_model.py compares the two on real tickets).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from routing.errors import ModelLoadError
from routing.explanations import is_explanatory, readable_term
from routing.facts import Prediction
from routing.text_cleaning import prepare_rows

ARRAY_FORMAT = 1
TOP_TERMS = 5
MAX_NGRAM = 10
# scikit-learn's defaults, which `MailVectorizer` keeps; `to_arrays` refuses a model that changed one.
_TOKEN_PATTERN = r"(?u)\b\w\w+\b"
_TOKEN_RE = re.compile(_TOKEN_PATTERN)
_WHITE_SPACES = re.compile(r"\s\s+")
_EXPECTED = {
    "lowercase": False,
    "norm": "l2",
    "use_idf": True,
    "binary": False,
    "token_pattern": _TOKEN_PATTERN,
    "strip_accents": None,
    "preprocessor": None,
    "tokenizer": None,
    "stop_words": None,
}

FloatArray = npt.NDArray[np.float64]
Row = tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]  # (sorted columns, values) of one mail


def _word_ngrams(text: str, ngrams: tuple[int, int]) -> Iterator[str]:
    """What scikit-learn's word analyzer yields (default token pattern, no stop words)."""
    tokens = _TOKEN_RE.findall(text)
    low, high = ngrams
    if low == 1:
        yield from tokens
        low = 2
    for n in range(low, min(high + 1, len(tokens) + 1)):
        for i in range(len(tokens) - n + 1):
            yield " ".join(tokens[i : i + n])


def _char_wb_ngrams(text: str, ngrams: tuple[int, int]) -> Iterator[str]:
    """What scikit-learn's "char_wb" analyzer yields: n-grams inside words padded with a space."""
    low, high = ngrams
    for word in _WHITE_SPACES.sub(" ", text).split():
        w = f" {word} "
        for n in range(low, high + 1):
            offset = 0
            yield w[offset : offset + n]
            while offset + n < len(w):
                offset += 1
                yield w[offset : offset + n]
            if offset == 0:  # a word shorter than n is counted once
                break


_ANALYZERS: dict[str, Callable[[str, tuple[int, int]], Iterator[str]]] = {
    "word": _word_ngrams,
    "char_wb": _char_wb_ngrams,
}


@dataclass(frozen=True)
class Vocabulary:
    """One vectorizer of a model: its terms (in column order), their idf, and how text is cut."""

    name: str
    analyzer: str
    ngrams: tuple[int, int]
    column: int  # which prepared text (subject, body, full) it reads
    index: dict[str, int]
    terms: list[str]  # by column: the same strings as the index's keys
    idf: FloatArray
    digest: str  # equal for equal vocabularies: the category and priority models share one

    def counts(self, text: str) -> Row:
        counter: dict[int, int] = {}
        for feature in _ANALYZERS[self.analyzer](text, self.ngrams):
            j = self.index.get(feature)
            if j is not None:
                counter[j] = counter.get(j, 0) + 1
        columns = np.fromiter(counter.keys(), dtype=np.int64, count=len(counter))
        values = np.fromiter(counter.values(), dtype=np.float32, count=len(counter))
        order = np.argsort(columns, kind="stable")
        return columns[order], values[order]


# Vocabularies in use, by digest: two models fitted on the same texts hold one copy.
_vocabularies: dict[str, Vocabulary] = {}
# The last few vectorized mails, by (the model's vocabularies, the prepared text): routing asks
# the category and then the priority model about the same mail.
_recent: deque[tuple[tuple[str, tuple[str, str, str]], Row]] = deque(maxlen=4)
_lock = threading.Lock()


def _vocabulary(spec: Mapping[str, Any], terms: bytes, idf: FloatArray) -> Vocabulary:
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode() + terms + idf.tobytes()).hexdigest()
    with _lock:
        known = _vocabularies.get(digest)
    if known is not None:
        return known
    words = terms.decode("utf-8").split("\n") if terms else []
    if len(words) != len(idf):
        raise ModelLoadError(f"vectorizer {spec['name']}: {len(words)} terms but {len(idf)} weights")
    vocabulary = Vocabulary(
        name=str(spec["name"]),
        analyzer=str(spec["analyzer"]),
        ngrams=(int(spec["ngrams"][0]), int(spec["ngrams"][1])),
        column=int(spec["column"]),
        index={term: j for j, term in enumerate(words)},
        terms=words,
        idf=idf,
        digest=digest,
    )
    if vocabulary.analyzer not in _ANALYZERS:
        raise ModelLoadError(f"vectorizer {vocabulary.name}: unknown analyzer {vocabulary.analyzer!r}")
    low, high = vocabulary.ngrams
    # A model is read, not trusted: absurd n-gram ranges would make every mail cost minutes.
    if not 1 <= low <= high <= MAX_NGRAM or vocabulary.column not in (0, 1, 2):
        raise ModelLoadError(
            f"vectorizer {vocabulary.name}: n-grams {low}-{high}, column {vocabulary.column}"
        )
    with _lock:
        return _vocabularies.setdefault(digest, vocabulary)


class CompactModel:
    """One trained model for one target, predicting with numpy alone; answers as `TextModel` does."""

    def __init__(
        self, arrays: Mapping[str, npt.NDArray[Any]], *, target: str, version: str, top_n: int = TOP_TERMS
    ) -> None:
        try:
            meta = json.loads(bytes(arrays["meta"]).decode("utf-8"))
            if meta.get("format") != ARRAY_FORMAT:
                raise ModelLoadError(f"array format {meta.get('format')!r}, expected {ARRAY_FORMAT}")
            self.vocabularies = tuple(
                _vocabulary(
                    spec,
                    bytes(arrays[f"terms_{spec['name']}"]),
                    np.asarray(arrays[f"idf_{spec['name']}"], dtype=np.float64),
                )
                for spec in meta["vectorizers"]
            )
            self.labels: tuple[str, ...] = tuple(str(c) for c in meta["classes"])
            self.subject_weight = np.float32(meta["subject_weight"])
            self.sublinear_tf = bool(meta["sublinear_tf"])
            self.coef_t = np.ascontiguousarray(arrays["coef_t"], dtype=np.float32)
            self.intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            self.platt_a = np.asarray(arrays["platt_a"], dtype=np.float64)
            self.platt_b = np.asarray(arrays["platt_b"], dtype=np.float64)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"not a model's arrays: {exc!r}") from exc
        width = sum(len(v.index) for v in self.vocabularies)
        k = len(self.labels)
        if self.coef_t.shape != (width, k) or {len(self.intercept), len(self.platt_a), len(self.platt_b)} != {
            k
        }:
            raise ModelLoadError(f"array shapes do not fit {width} features and {k} classes")
        self.offsets = np.cumsum([0, *(len(v.index) for v in self.vocabularies)])[:-1]
        self.target = target
        self.version = version
        self.top_n = top_n
        self._key = "/".join(v.digest for v in self.vocabularies) + f"/{meta['subject_weight']}"

    def __repr__(self) -> str:
        return f"CompactModel(target={self.target!r}, version={self.version!r}, labels={len(self.labels)})"

    # -- features ----------------------------------------------------------------------------
    def _tfidf(self, vocabulary: Vocabulary, text: str) -> Row:
        """One vectorizer's row, as `TfidfVectorizer.transform` computes it (float32 throughout)."""
        columns, values = vocabulary.counts(text)
        if self.sublinear_tf:
            np.log(values, out=values)
            values += 1.0
        values *= vocabulary.idf[columns]  # float64 product, stored as float32, as scikit-learn does
        # L2 norm: float32 squares summed one after another in double precision, then each value
        # divided in double precision and stored as float32 (sklearn's _inplace_csr_row_normalize_l2).
        total = float(np.cumsum(values * values, dtype=np.float64)[-1]) if len(values) else 0.0
        if total != 0.0:
            values = (values.astype(np.float64) / math.sqrt(total)).astype(np.float32)
        return columns, values

    def transform_prepared(self, row: tuple[str, str, str]) -> Row:
        """One prepared mail -> its feature row (columns ascending, float32 values)."""
        key = (self._key, row)
        with _lock:
            for seen, found in _recent:
                if seen == key:
                    return found
        columns, values = [], []
        last = len(self.vocabularies) - 1
        for i, (vocabulary, offset) in enumerate(zip(self.vocabularies, self.offsets, strict=True)):
            cols, vals = self._tfidf(vocabulary, row[vocabulary.column])
            if i == last:
                vals = vals * self.subject_weight  # MailVectorizer weighs the subject block
            columns.append(cols + offset)
            values.append(vals)
        found = (np.concatenate(columns), np.concatenate(values).astype(np.float32, copy=False))
        with _lock:
            _recent.append((key, found))
        return found

    # -- prediction ----------------------------------------------------------------------------
    def _proba(self, row: Row) -> FloatArray:
        columns, values = row
        if len(columns):
            # csr @ coef.T as scipy computes it: each class's score summed in float32, column by column.
            scores = np.cumsum(values[:, None] * self.coef_t[columns], axis=0)[-1]
        else:
            scores = np.zeros(len(self.labels), dtype=np.float32)
        z = (scores.astype(np.float64) + self.intercept) * self.platt_a + self.platt_b
        # scipy's expit is 1 / (1 + exp(-x)) with libm's exp, which math.exp calls; numpy's own
        # vectorised exp differs from it in the last bit for some inputs.
        p = np.array([[1.0 / (1.0 + math.exp(-v)) for v in z.tolist()]], dtype=np.float64)
        total = p.sum(axis=1, keepdims=True)
        out: FloatArray = (p / np.where(total > 0.0, total, 1.0))[0]
        return out

    def predict(self, subject: str, body: str) -> Prediction:
        return self.predict_many([(subject, body)])[0]

    def predict_many(self, items: Sequence[tuple[str, str]]) -> list[Prediction]:
        out = []
        for prepared in prepare_rows(items):
            row = self.transform_prepared(prepared)
            proba = self._proba(row)
            k = int(proba.argmax())
            out.append(
                Prediction(
                    label=self.labels[k],
                    confidence=float(proba[k]),
                    model_version=self.version,
                    top_terms=self._top_terms(row, k, prepared[2]),
                )
            )
        return out

    def predict_proba(self, items: Sequence[tuple[str, str]]) -> FloatArray:
        """Calibrated probabilities, one row per item, columns in the order of `labels`."""
        rows = [self._proba(self.transform_prepared(p)) for p in prepare_rows(items)]
        return np.vstack(rows) if rows else np.zeros((0, len(self.labels)))

    def _feature_name(self, column: int) -> str:
        """ "<vectorizer>__<term>" of a column, as `MailVectorizer.get_feature_names_out` names it."""
        which = int(np.searchsorted(self.offsets, column, side="right")) - 1
        vocabulary = self.vocabularies[which]
        return f"{vocabulary.name}__{vocabulary.terms[column - int(self.offsets[which])]}"

    def _top_terms(self, row: Row, label: int, document: str) -> tuple[str, ...]:
        """The mail's own words that pushed hardest towards `label` (see `TextModel._top_terms`)."""
        columns, values = row
        contributions = values * self.coef_t[columns, label]
        order = np.argsort(-contributions, kind="stable")
        weights: dict[str, float] = {}
        for j in order[: 8 * self.top_n]:
            if contributions[j] <= 0:
                break
            term = readable_term(self._feature_name(int(columns[j])), document)
            if not is_explanatory(term):
                continue
            weights[term] = weights.get(term, 0.0) + float(contributions[j])
        ranked = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))
        return tuple(term for term, _ in ranked[: self.top_n])


def to_arrays(features: Any, classifier: Any) -> dict[str, npt.NDArray[Any]]:
    """The arrays of a fitted `MailVectorizer` -> `PlattCalibratedSVC` pipeline (see the module doc)."""
    from routing.features import VECTORIZERS

    specs, arrays = [], {}
    for name, analyzer, column in VECTORIZERS:
        vectorizer = features.vectorizers_[name]
        params = vectorizer.get_params()
        changed = {k: params.get(k) for k, v in _EXPECTED.items() if params.get(k) != v}
        if changed or params.get("analyzer") != analyzer:
            raise ValueError(f"vectorizer {name}: the compact format does not reproduce {changed}")
        specs.append(
            {"name": name, "analyzer": analyzer, "ngrams": list(params["ngram_range"]), "column": column}
        )
        terms = "\n".join(str(t) for t in vectorizer.get_feature_names_out())
        arrays[f"terms_{name}"] = np.frombuffer(terms.encode("utf-8"), dtype=np.uint8)
        arrays[f"idf_{name}"] = np.asarray(vectorizer.idf_, dtype=np.float64)
    meta = {
        "format": ARRAY_FORMAT,
        "classes": [str(c) for c in classifier.classes_],
        "vectorizers": specs,
        "subject_weight": float(features.subject_weight),
        "sublinear_tf": bool(features.sublinear_tf),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    arrays["coef_t"] = np.ascontiguousarray(np.asarray(classifier.coef_, dtype=np.float32).T)
    arrays["intercept"] = np.asarray(classifier.intercept_, dtype=np.float64)
    arrays["platt_a"] = np.asarray(classifier.platt_a_, dtype=np.float64)
    arrays["platt_b"] = np.asarray(classifier.platt_b_, dtype=np.float64)
    return arrays


def to_npz(arrays: Mapping[str, npt.NDArray[Any]]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **dict(arrays))
    return buffer.getvalue()


def from_npz(data: bytes, *, target: str, version: str) -> CompactModel:
    """A model from the bytes of its .npz file; never unpickles (`allow_pickle=False`)."""
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:  # a damaged archive can fail in zipfile, zlib or numpy's header parser
        raise ModelLoadError(f"not a readable model file: {exc}") from exc
    return CompactModel(arrays, target=target, version=version)
