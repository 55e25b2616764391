"""Quality, speed and size of the routing text classifier on real ticket exports, beside a plain baseline.

Run:  python -m bench.classifier_quality [--data DIR] [--explore] [--with-lr] [--json FILE]

Data: the shared data folder ($HELPDESK_SHARED_DATA, else <repo root>/../shared/data):
- it-ticket-assignment: 8,500 incidents, text = short description + description, label = one
  of 74 assignment groups;
- endava-tickets-subset: 5,431 tickets, text = title + body, label = category.

Split (fixed, the same for every model): `routing.dataset.stratified_split(SplitSpec())`:
seed 20240611, 20% of every label held out, chosen per label by the lowest keyed
blake2b(seed, row key, subject, body); labels with a single example stay in training and are
not evaluated. Metrics are those of `routing.evaluation` (macro-F1 over every label seen in the
truth or the predictions; precision at X% coverage = precision on the X% most confident).

Baseline: scikit-learn `TfidfVectorizer()` with defaults over subject and body joined by a
space, `LinearSVC()` with defaults; its confidence is the largest decision value.
Ours: `routing.classifier.fit_pipeline` with the default `ModelSettings`.

`--explore` compares feature and model variants on a validation slice of the training part
(never on the held-out part) - the experiments behind the defaults. Nothing trained here is
kept: models go to a temporary directory that is removed at exit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from routing.classifier import ModelSettings, TextModel, build_pipeline, fit_pipeline
from routing.dataset import Example, SplitSpec, load_csv, stratified_split
from routing.evaluation import EvaluationReport, evaluate_predictions
from routing.features import FeatureSettings
from routing.model_store import ModelStore

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    "it-ticket-assignment": (
        "it-ticket-assignment/input_data.csv",
        "Short description,Description",
        "Assignment group",
    ),
    "endava-tickets-subset": ("endava-tickets-subset/all_tickets_subset.csv", "title,body", "category"),
}
LATENCY_SAMPLE = 500


def shared_data_dir() -> Path:
    env = os.environ.get("HELPDESK_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


@dataclass(frozen=True)
class Scores:
    name: str
    report: EvaluationReport
    train_seconds: float

    def row(self) -> str:
        r = self.report
        p = r.precision_at_coverage
        return (
            f"  {self.name:<34} {r.accuracy:>8.3f} {r.macro_f1:>8.3f} "
            f"{p[0.5]:>7.3f} {p[0.6]:>7.3f} {p[0.8]:>7.3f} {self.train_seconds:>8.1f}"
        )


HEADER = (
    f"  {'model':<34} {'accuracy':>8} {'macro-F1':>8} {'P@50%':>7} {'P@60%':>7} {'P@80%':>7} {'train s':>8}"
)


def _texts(examples: Sequence[Example]) -> list[tuple[str, str]]:
    return [ex.text for ex in examples]


def _labels(examples: Sequence[Example]) -> list[str]:
    return [ex.label for ex in examples]


def score_baseline(train: Sequence[Example], test: Sequence[Example]) -> Scores:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    vectorizer = TfidfVectorizer()
    x = vectorizer.fit_transform([f"{ex.subject} {ex.body}" for ex in train])
    svc = LinearSVC().fit(x, _labels(train))
    seconds = time.perf_counter() - started
    scores = svc.decision_function(vectorizer.transform([f"{ex.subject} {ex.body}" for ex in test]))
    if scores.ndim == 1:
        scores = np.column_stack([-scores, scores])
    pred = [str(svc.classes_[i]) for i in scores.argmax(axis=1)]
    report = evaluate_predictions(_labels(test), pred, list(scores.max(axis=1)), model_version="baseline")
    return Scores("baseline TF-IDF + LinearSVC", report, seconds)


def score_logistic(train: Sequence[Example], test: Sequence[Example]) -> Scores:
    """The plain TF-IDF + logistic regression reference (slow: lbfgs over 74 classes)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    started = time.perf_counter()
    vectorizer = TfidfVectorizer()
    x = vectorizer.fit_transform([f"{ex.subject} {ex.body}" for ex in train])
    lr = LogisticRegression(max_iter=1000).fit(x, _labels(train))
    seconds = time.perf_counter() - started
    proba = lr.predict_proba(vectorizer.transform([f"{ex.subject} {ex.body}" for ex in test]))
    pred = [str(lr.classes_[i]) for i in proba.argmax(axis=1)]
    report = evaluate_predictions(_labels(test), pred, list(proba.max(axis=1)), model_version="baseline-lr")
    return Scores("baseline TF-IDF + LogisticRegression", report, seconds)


def score_pipeline(name: str, pipeline: Any, seconds: float, test: Sequence[Example]) -> Scores:
    proba = pipeline.predict_proba(_texts(test))
    classes = pipeline.classes_
    pred = [str(classes[i]) for i in proba.argmax(axis=1)]
    report = evaluate_predictions(_labels(test), pred, list(proba.max(axis=1)), model_version=name)
    return Scores(name, report, seconds)


def score_ours(
    train: Sequence[Example], test: Sequence[Example], settings: ModelSettings
) -> tuple[Scores, TextModel]:
    started = time.perf_counter()
    pipeline = fit_pipeline(_texts(train), _labels(train), settings)
    seconds = time.perf_counter() - started
    model = TextModel(pipeline, target="category", version="category-20000101T000000Z-00000000")
    return score_pipeline("ours (calibrated SVM, word+char)", pipeline, seconds, test), model


def latency(model: TextModel, test: Sequence[Example]) -> tuple[float, float]:
    """Milliseconds per ticket, one ticket at a time through `TextModel.predict` (median, p99)."""
    sample = list(test[:LATENCY_SAMPLE])
    for ex in sample[:20]:  # warm caches (feature names, first-call allocations)
        model.predict(ex.subject, ex.body)
    times = []
    for ex in sample:
        started = time.perf_counter()
        model.predict(ex.subject, ex.body)
        times.append((time.perf_counter() - started) * 1000.0)
    return statistics.median(times), float(np.percentile(times, 99))


_LOAD_PROBE = textwrap.dedent(
    """
    import json, resource, sys, time
    def rss():
        with open("/proc/self/status") as fh:
            return next(int(l.split()[1]) for l in fh if l.startswith("VmRSS")) / 1024.0
    t0 = time.perf_counter(); base = rss()
    from routing.model_store import ModelStore
    import routing.classifier, sklearn.svm, sklearn.feature_extraction.text, skops.io
    t1 = time.perf_counter(); after_import = rss()
    model = ModelStore(sys.argv[1]).load(sys.argv[2])
    model.predict("warm up", "first prediction")
    t2 = time.perf_counter(); after_load = rss()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "rss_import_mb": after_import - base,
                      "rss_model_mb": after_load - after_import, "rss_total_mb": after_load}))
    """
)


def storage_costs(model: TextModel, directory: Path) -> dict[str, float]:
    """Save through the model store; measure file size, and import/load time and memory in a fresh process."""
    store = ModelStore(directory)
    path = store.save_model(model, {})
    probe = subprocess.run(
        [sys.executable, "-c", _LOAD_PROBE, str(directory), model.version],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    costs: dict[str, float] = json.loads(probe.stdout)
    costs["file_mb"] = path.stat().st_size / 1e6
    return costs


def explore(train: Sequence[Example]) -> list[Scores]:
    """Variants scored on a validation slice of the training part (the held-out part is never used)."""
    inner = stratified_split(list(train), SplitSpec(seed=7))
    fit_part = [train[i] for i in inner.train]
    val_part = [train[i] for i in inner.test]
    base = ModelSettings()
    f = base.features
    variants: list[tuple[str, Callable[[], Any]]] = [
        ("default", lambda: build_pipeline(base)),
        ("min_df=2", lambda: build_pipeline(replace(base, features=replace(f, min_df=2)))),
        (
            "subject weight 0.5",
            lambda: build_pipeline(replace(base, features=replace(f, subject_weight=0.5))),
        ),
        ("subject weight 2", lambda: build_pipeline(replace(base, features=replace(f, subject_weight=2.0)))),
        ("char n-grams 3-6", lambda: build_pipeline(replace(base, features=replace(f, char_ngrams=(3, 6))))),
        ("word n-grams 1-3", lambda: build_pipeline(replace(base, features=replace(f, word_ngrams=(1, 3))))),
        ("half the vocabulary", lambda: build_pipeline(_half_vocabulary(base, f))),
        ("C=0.25", lambda: build_pipeline(replace(base, C=0.25))),
        ("C=1.0", lambda: build_pipeline(replace(base, C=1.0))),
        ("calibration on 5 folds", lambda: build_pipeline(replace(base, calibration_folds=5))),
        ("class_weight=balanced", lambda: _with_classifier(base, class_weight="balanced")),
        ("sklearn CalibratedClassifierCV sigmoid", lambda: _sklearn_calibrated(base)),
        ("logistic regression C=20", lambda: _logistic(base)),
        ("ensemble: ours + complement NB", lambda: _ensemble(base)),
    ]
    out = []
    for name, make in variants:
        started = time.perf_counter()
        pipeline = make().fit(_texts(fit_part), np.asarray(_labels(fit_part), dtype=object))
        out.append(score_pipeline(name, pipeline, time.perf_counter() - started, val_part))
        print(out[-1].row(), flush=True)
    return out


def _half_vocabulary(base: ModelSettings, f: FeatureSettings) -> ModelSettings:
    return replace(base, features=replace(f, max_word_features=15_000, max_char_features=30_000))


def _with_classifier(base: ModelSettings, **params: Any) -> Any:
    pipeline = build_pipeline(base)
    pipeline.named_steps["classifier"].set_params(**params)
    return pipeline


def _sklearn_calibrated(base: ModelSettings) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import Pipeline
    from sklearn.svm import LinearSVC

    from routing.features import build_features

    class Splits:
        """Stratified 3-fold splits without an `n_splits` attribute: given an int (or an object with
        `n_splits`) it refuses every class with fewer examples than folds."""

        def split(self, x: Any, y: Any, groups: Any = None) -> Any:
            return StratifiedKFold(3, shuffle=True, random_state=0).split(np.zeros(len(y)), y)

        def get_n_splits(self, x: Any = None, y: Any = None, groups: Any = None) -> int:
            return 3

    calibrated = CalibratedClassifierCV(LinearSVC(C=base.C), method="sigmoid", cv=Splits(), ensemble=False)
    return Pipeline([("features", build_features(base.features)), ("classifier", calibrated)])


def _logistic(base: ModelSettings) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from routing.features import build_features

    return Pipeline([("features", build_features(base.features)), ("classifier", LogisticRegression(C=20.0))])


def _ensemble(base: ModelSettings) -> Any:
    from sklearn.ensemble import VotingClassifier
    from sklearn.naive_bayes import ComplementNB
    from sklearn.pipeline import Pipeline

    from routing.calibration import PlattCalibratedSVC
    from routing.features import build_features

    voting = VotingClassifier(
        [("svm", PlattCalibratedSVC(C=base.C)), ("nb", ComplementNB(alpha=0.03))],
        voting="soft",
        weights=[0.8, 0.2],
    )
    return Pipeline([("features", build_features(base.features)), ("classifier", voting)])


def run_dataset(name: str, data_dir: Path, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    relative, text_cols, label_col = DATASETS[name]
    data = load_csv(data_dir / relative, text_cols, label_col)
    examples = list(data.examples)
    split = stratified_split(examples)
    train = [examples[i] for i in split.train]
    test = [examples[i] for i in split.test]
    print(
        f"\n== {name}: {len(examples)} tickets, {len(data.counts)} labels; {len(train)} train / "
        f"{len(test)} held out; {len(split.train_only_labels)} labels train-only"
    )
    print(HEADER)
    results = [score_baseline(train, test)]
    print(results[-1].row(), flush=True)
    if args.with_lr:
        results.append(score_logistic(train, test))
        print(results[-1].row(), flush=True)
    ours, model = score_ours(train, test, ModelSettings())
    results.append(ours)
    print(ours.row(), flush=True)
    median_ms, p99_ms = latency(model, test)
    costs = storage_costs(model, workdir / name)
    print(
        f"  prediction latency per ticket: median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms "
        f"(one at a time through TextModel.predict, {min(len(test), LATENCY_SAMPLE)} tickets)\n"
        f"  model file {costs['file_mb']:.1f} MB; in a fresh process: import {costs['import_s']:.2f} s "
        f"(+{costs['rss_import_mb']:.0f} MB), load {costs['load_s']:.2f} s "
        f"(+{costs['rss_model_mb']:.0f} MB), resident {costs['rss_total_mb']:.0f} MB"
    )
    peak = peak_rss_mb()
    print(f"  peak RSS of the benchmark process so far: {peak:.0f} MB")
    explored = []
    if args.explore:
        print(f"  -- variants on a validation slice of the training part --\n{HEADER}")
        with warnings.catch_warnings():
            # sklearn's calibrator warns about the rare labels the variants are there to cope with.
            warnings.simplefilter("ignore")
            explored = explore(train)
    return {
        "dataset": name,
        "examples": len(examples),
        "labels": len(data.counts),
        "split": split.as_dict(),
        "results": [
            {"model": s.name, "train_seconds": s.train_seconds, **s.report.summary()} for s in results
        ],
        "latency_ms": {"median": median_ms, "p99": p99_ms},
        "storage": costs,
        "peak_rss_mb": peak,
        "explore": [{"model": s.name, **s.report.summary()} for s in explored],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=None, help="shared data folder")
    parser.add_argument("--dataset", choices=sorted(DATASETS), action="append", help="default: all")
    parser.add_argument("--explore", action="store_true", help="also score variants on a validation slice")
    parser.add_argument("--with-lr", action="store_true", help="also score TF-IDF + logistic regression")
    parser.add_argument("--json", type=Path, help="write the figures to this file as JSON")
    args = parser.parse_args(argv)
    data_dir = args.data or shared_data_dir()
    if not data_dir.is_dir():
        print(f"shared data not found at {data_dir} (set HELPDESK_SHARED_DATA or --data)", file=sys.stderr)
        return 2
    out = []
    with tempfile.TemporaryDirectory(prefix="helpdesk-bench-") as tmp:
        for name in args.dataset or list(DATASETS):
            out.append(run_dataset(name, data_dir, args, Path(tmp)))
    print(
        f"\npeak RSS of this run: {peak_rss_mb():.0f} MB"
        + (" (includes the --explore variants)" if args.explore else "")
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"datasets": out, "peak_rss_mb": peak_rss_mb()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
