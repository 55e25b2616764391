"""How good a model is on labelled examples, and whether a new model is worse than the active one.

Definitions used throughout (and in the benchmark):

- accuracy: share of examples whose predicted label is the true one.
- macro-F1: the unweighted mean of per-label F1 over every label that occurs in the true or the
  predicted labels (scikit-learn's `average="macro"`, a label never predicted scores 0).
- precision at X% coverage: sort the predictions by confidence, highest first (ties keep the
  input order), keep the first ceil(X * n); the share of those that are right. It answers
  "if the model only decided the X% of mails it is surest about, how often would it be right".
- worse (see `compare`): a new model is worse than the old one when, on the same held-out
  examples, its macro-F1 or its accuracy is lower by more than `TOLERANCE` (0.01). Small
  differences are noise on a few hundred tickets, so they neither block nor count as progress.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from routing.dataset import Example

if TYPE_CHECKING:
    from routing.classifier import TextModel
    from routing.compact_model import CompactModel

COVERAGES = (0.5, 0.6, 0.8)
TOLERANCE = 0.01
CLASS_CHANGE_MIN = 0.05  # per-label F1 changes smaller than this are not listed in a comparison
TEXT_CLASSES = 20  # per-label rows shown by render_text


@dataclass(frozen=True)
class ClassMetrics:
    label: str
    precision: float
    recall: float
    f1: float
    support: int

    def as_dict(self) -> dict[str, Any]:
        return {"precision": self.precision, "recall": self.recall, "f1": self.f1, "support": self.support}


def precision_at_coverage(correct: Sequence[bool], confidence: Sequence[float], coverage: float) -> float:
    """Precision on the `coverage` share of predictions with the highest confidence (see module doc)."""
    n = len(correct)
    if n == 0:
        return float("nan")
    k = max(1, math.ceil(coverage * n - 1e-9))
    order = np.argsort(-np.asarray(confidence, dtype=np.float64), kind="stable")[:k]
    return float(np.asarray(correct, dtype=bool)[order].mean())


@dataclass(frozen=True)
class EvaluationReport:
    target: str
    model_version: str
    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    precision_at_coverage: Mapping[float, float]
    per_class: tuple[ClassMetrics, ...]  # by support, largest first
    labels: tuple[str, ...]  # rows/columns of `confusion`
    confusion: tuple[tuple[int, ...], ...]  # [true][predicted]
    mean_confidence: float
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "model_version": self.model_version,
            "n": self.n,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "weighted_f1": self.weighted_f1,
            "precision_at_coverage": {f"{c:g}": p for c, p in self.precision_at_coverage.items()},
            "mean_confidence": self.mean_confidence,
            "per_class": {m.label: m.as_dict() for m in self.per_class},
            "confusion": {"labels": list(self.labels), "matrix": [list(r) for r in self.confusion]},
            "notes": list(self.notes),
        }

    def summary(self) -> dict[str, Any]:
        """The headline figures only, for model metadata and listings."""
        full = self.as_dict()
        return {k: full[k] for k in ("n", "accuracy", "macro_f1", "weighted_f1", "precision_at_coverage")}

    def coverage_line(self) -> str:
        return "  ".join(f"{c:.0%}: {p:.3f}" for c, p in self.precision_at_coverage.items())

    def render_text(self) -> str:
        lines = [
            f"{self.target} model {self.model_version} on {self.n} examples",
            f"  accuracy {self.accuracy:.3f}   macro-F1 {self.macro_f1:.3f}"
            f"   weighted-F1 {self.weighted_f1:.3f}   mean confidence {self.mean_confidence:.3f}",
            f"  precision at coverage  {self.coverage_line()}",
            "",
            f"  {'label':<24} {'precision':>9} {'recall':>7} {'F1':>6} {'support':>8}",
        ]
        for m in self.per_class[:TEXT_CLASSES]:
            lines.append(
                f"  {m.label[:24]:<24} {m.precision:>9.3f} {m.recall:>7.3f} {m.f1:>6.3f} {m.support:>8}"
            )
        rest = self.per_class[TEXT_CLASSES:]
        if rest:
            lines.append(f"  ... {len(rest)} more labels with {sum(m.support for m in rest)} examples")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def write_confusion_png(self, path: str | Path, top_n: int = 15) -> Path:
        """Draw the confusion matrix; past `top_n` labels (by support) the rest are pooled as "other"."""
        from routing.confusion_plot import draw_confusion

        return draw_confusion(self.labels, self.confusion, Path(path), top_n=top_n, title=self.model_version)


def evaluate_predictions(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    confidence: Sequence[float],
    *,
    target: str = "",
    model_version: str = "",
    notes: Sequence[str] = (),
    coverages: Sequence[float] = COVERAGES,
) -> EvaluationReport:
    """Score predictions against the truth (the pure part of `evaluate`)."""
    if not (len(y_true) == len(y_pred) == len(confidence)):
        raise ValueError("y_true, y_pred and confidence must have the same length")
    n = len(y_true)
    true = np.asarray(y_true, dtype=object)
    pred = np.asarray(y_pred, dtype=object)
    if n == 0:
        return EvaluationReport(
            target, model_version, 0, float("nan"), float("nan"), float("nan"),
            {c: float("nan") for c in coverages}, (), (), (), float("nan"),
            (*notes, "no examples to evaluate"),
        )  # fmt: skip
    labels = sorted(set(true) | set(pred))
    precision, recall, f1, support = precision_recall_fscore_support(
        true, pred, labels=labels, zero_division=0
    )
    per_class = sorted(
        (
            ClassMetrics(str(lab), float(p), float(r), float(f), int(s))
            for lab, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
        ),
        key=lambda m: (-m.support, m.label),
    )
    correct = true == pred
    with warnings.catch_warnings():
        # It warns about a 1x1 matrix even when given the labels; one label is a valid evaluation.
        warnings.filterwarnings("ignore", message="A single label was found", category=UserWarning)
        matrix = confusion_matrix(true, pred, labels=labels)
    return EvaluationReport(
        target=target,
        model_version=model_version,
        n=n,
        accuracy=float(accuracy_score(true, pred)),
        macro_f1=float(f1_score(true, pred, labels=labels, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(true, pred, labels=labels, average="weighted", zero_division=0)),
        precision_at_coverage={c: precision_at_coverage(list(correct), confidence, c) for c in coverages},
        per_class=tuple(per_class),
        labels=tuple(str(lab) for lab in labels),
        confusion=tuple(tuple(int(v) for v in row) for row in matrix),
        mean_confidence=float(np.mean(confidence)),
        notes=tuple(notes),
    )


def evaluate(
    model: TextModel | CompactModel, examples: Sequence[Example], *, notes: Sequence[str] = ()
) -> EvaluationReport:
    """Run an existing model over labelled examples and score it."""
    # Probabilities only: the per-mail explanations of `predict_many` are not needed here.
    proba = model.predict_proba([ex.text for ex in examples]) if examples else np.zeros((0, 1))
    unknown = sorted({ex.label for ex in examples} - set(model.labels))
    extra = [f"labels the model does not know (always wrong): {', '.join(unknown)}"] if unknown else []
    return evaluate_predictions(
        [ex.label for ex in examples],
        [model.labels[i] for i in proba.argmax(axis=1)],
        [float(c) for c in proba.max(axis=1)],
        target=model.target,
        model_version=model.version,
        notes=[*notes, *extra],
    )


@dataclass(frozen=True)
class ClassChange:
    label: str
    old_f1: float
    new_f1: float
    support: int

    def as_dict(self) -> dict[str, Any]:
        return {"label": self.label, "old_f1": self.old_f1, "new_f1": self.new_f1, "support": self.support}


@dataclass(frozen=True)
class Comparison:
    """New against old on the same held-out examples."""

    new: EvaluationReport
    old: EvaluationReport
    worse: bool
    reasons: tuple[str, ...]
    class_changes: tuple[ClassChange, ...] = field(default=())
    tolerance: float = TOLERANCE

    def deltas(self) -> dict[str, float]:
        out = {
            "accuracy": self.new.accuracy - self.old.accuracy,
            "macro_f1": self.new.macro_f1 - self.old.macro_f1,
        }
        for c, p in self.new.precision_at_coverage.items():
            out[f"precision_at_{c:g}"] = p - self.old.precision_at_coverage.get(c, float("nan"))
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "worse": self.worse,
            "reasons": list(self.reasons),
            "tolerance": self.tolerance,
            "deltas": self.deltas(),
            "class_changes": [c.as_dict() for c in self.class_changes],
        }

    def render_text(self) -> str:
        rows = [
            ("accuracy", self.old.accuracy, self.new.accuracy),
            ("macro-F1", self.old.macro_f1, self.new.macro_f1),
        ]
        rows += [
            (f"precision @{c:.0%}", self.old.precision_at_coverage.get(c, float("nan")), p)
            for c, p in self.new.precision_at_coverage.items()
        ]
        lines = [f"  {'':<18} {'active':>8} {'new':>8} {'change':>8}"]
        lines += [f"  {name:<18} {old:>8.3f} {new:>8.3f} {new - old:>+8.3f}" for name, old, new in rows]
        if self.class_changes:
            lines.append("  labels whose F1 moved most:")
            lines += [
                f"    {c.label[:30]:<30} {c.old_f1:.2f} -> {c.new_f1:.2f}  ({c.support} held out)"
                for c in self.class_changes
            ]
        verdict = "WORSE: " + "; ".join(self.reasons) if self.worse else "not worse"
        lines.append(f"  verdict: {verdict}")
        return "\n".join(lines)


def compare(
    new: EvaluationReport, old: EvaluationReport, *, tolerance: float = TOLERANCE, max_changes: int = 8
) -> Comparison:
    """Decide whether `new` is worse than `old`; both must be evaluated on the same examples."""
    if new.n != old.n:
        raise ValueError("compare needs both models evaluated on the same examples")
    reasons = []
    if new.macro_f1 < old.macro_f1 - tolerance:
        reasons.append(f"macro-F1 {new.macro_f1:.3f} < {old.macro_f1:.3f} - {tolerance:g}")
    if new.accuracy < old.accuracy - tolerance:
        reasons.append(f"accuracy {new.accuracy:.3f} < {old.accuracy:.3f} - {tolerance:g}")
    old_f1 = {m.label: m for m in old.per_class}
    changes = []
    for m in new.per_class:
        before = old_f1.get(m.label)
        support = m.support or (before.support if before else 0)
        previous = before.f1 if before else 0.0
        if support and abs(m.f1 - previous) >= CLASS_CHANGE_MIN:
            changes.append(ClassChange(m.label, previous, m.f1, support))
    # Weighted by support: a label with one held-out ticket flips between 0 and 1 by chance.
    changes.sort(key=lambda c: (-abs(c.new_f1 - c.old_f1) * c.support, c.label))
    return Comparison(new, old, bool(reasons), tuple(reasons), tuple(changes[:max_changes]), tolerance)
