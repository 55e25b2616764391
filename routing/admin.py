"""What the admin commands do (`helpdesk retrain`, `helpdesk model ...`), each returning a typed result.

Every result has `.as_dict()` (for `--json`) and `.render_text()` (one screen for a person).
The command-line wiring lives in the `helpdesk` package; nothing here prints or exits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from routing.classifier import ModelSettings
from routing.dataset import Example, SplitSpec, load_csv
from routing.errors import ModelLoadError, ModelNotFoundError, ModelStoreError
from routing.evaluation import Comparison, EvaluationReport, compare, evaluate
from routing.model_store import ModelInfo, ModelStore, check_target, target_of
from routing.training import ProgressCallback, TrainingResult, train

DEFAULT_TARGET = "category"


@dataclass(frozen=True)
class RetrainReport:
    target: str
    version: str
    result: TrainingResult
    previous: str | None  # the model that was active when training started
    previous_report: EvaluationReport | None  # the active model on the same held-out examples
    comparison: Comparison | None
    activated: bool
    refused: bool  # activation was asked for and refused because the new model is worse
    forced: bool  # activated although worse, because --force was given
    notes: tuple[str, ...] = ()

    @property
    def report(self) -> EvaluationReport:
        return self.result.report

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "version": self.version,
            "saved": True,
            "activated": self.activated,
            "refused": self.refused,
            "forced": self.forced,
            "previous_version": self.previous,
            "training": {
                "examples": len(self.result.examples),
                "train": len(self.result.split.train),
                "held_out": len(self.result.split.test),
                "labels": len(self.result.model.labels),
                "seconds": round(self.result.seconds, 3),
                "data_sha256": self.result.data_sha256,
                "split": self.result.split.as_dict(),
            },
            "evaluation": self.report.as_dict(),
            "previous_evaluation": self.previous_report.as_dict() if self.previous_report else None,
            "comparison": self.comparison.as_dict() if self.comparison else None,
            "notes": list(self.notes),
        }

    def render_text(self) -> str:
        r = self.result
        lines = [
            f"trained {self.version}: {len(r.examples)} examples, {len(r.model.labels)} labels, "
            f"{len(r.split.train)} for training / {len(r.split.test)} held out, {r.seconds:.1f} s",
        ]
        if self.comparison is not None:
            lines.append(f"held-out comparison with the active model {self.previous}:")
            lines.append(self.comparison.render_text())
        else:
            rep = self.report
            lines.append(
                f"  held out: accuracy {rep.accuracy:.3f}   macro-F1 {rep.macro_f1:.3f}   "
                f"precision at coverage {rep.coverage_line()}"
            )
        if self.activated:
            how = " despite being worse (--force)" if self.forced else ""
            lines.append(
                f"ACTIVATED {self.version}{how}" + (f" (was {self.previous})" if self.previous else "")
            )
        elif self.refused:
            lines.append(
                f"NOT ACTIVATED: worse than the active model {self.previous}; use --force to activate anyway"
            )
        else:
            lines.append(f"saved, not activated (activate with: helpdesk model activate {self.version})")
        lines.extend(f"note: {n}" for n in (*self.notes, *self.report.notes))
        return "\n".join(lines)


def retrain(
    store: ModelStore,
    examples: Sequence[Example],
    target: str = DEFAULT_TARGET,
    *,
    activate: bool = False,
    force: bool = False,
    progress: ProgressCallback | None = None,
    split: SplitSpec | None = None,
    settings: ModelSettings | None = None,
    source: str = "",
) -> RetrainReport:
    """Train, evaluate on a held-out split, save; with `activate`, replace the active model unless worse.

    The active model is evaluated on exactly the new model's held-out examples; "worse" is
    defined in `routing.evaluation` (macro-F1 or accuracy lower by more than 0.01).
    """
    check_target(target)
    result = train(examples, target, settings=settings, split=split, progress=progress, source=source)
    store.save(result)
    previous = store.active(target)
    previous_report = comparison = None
    notes: list[str] = []
    if previous:
        try:
            old = store.load(previous)
        except ModelLoadError as exc:
            notes.append(f"the active model {previous} cannot be loaded, so no comparison: {exc}")
        else:
            previous_report = evaluate(old, result.held_out())
            if result.report.n:
                comparison = compare(result.report, previous_report)
    worse = comparison is not None and comparison.worse
    activated = refused = forced = False
    if activate:
        if worse and not force:
            refused = True
        else:
            store.activate(target, result.version)
            activated, forced = True, worse
    return RetrainReport(
        target, result.version, result, previous, previous_report, comparison, activated, refused, forced,
        tuple(notes),
    )  # fmt: skip


@dataclass(frozen=True)
class ModelListing:
    models: tuple[ModelInfo, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"models": [m.as_dict() for m in self.models]}

    def render_text(self) -> str:
        if not self.models:
            return "no models"
        lines = [f"  {'version':<44} {'examples':>8} {'labels':>6} {'accuracy':>8} {'macro-F1':>8}"]
        for m in self.models:
            metrics = m.metadata.get("metrics", {})
            total = m.metadata.get("training_data", {}).get("total", "")
            n_labels = len(m.metadata.get("labels", ()))
            lines.append(
                f"{'*' if m.active else ' '} {m.version:<44} {total!s:>8} {n_labels:>6} "
                f"{_fmt(metrics.get('accuracy')):>8} {_fmt(metrics.get('macro_f1')):>8}"
            )
        lines.append("(* = active; figures are on the model's own held-out examples)")
        return "\n".join(lines)


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, int | float) else "-"


def list_models(store: ModelStore, target: str | None = None) -> ModelListing:
    return ModelListing(tuple(store.list_models(target)))


@dataclass(frozen=True)
class ActivationResult:
    action: str  # "activate" or "rollback"
    target: str
    version: str  # active now
    previous: str | None  # active before

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "target": self.target,
            "version": self.version,
            "previous": self.previous,
        }

    def render_text(self) -> str:
        if self.previous == self.version:
            return f"{self.version} is already the active {self.target} model"
        verb = "rolled back to" if self.action == "rollback" else "activated"
        was = f" (was {self.previous})" if self.previous else ""
        return f"{verb} {self.version}{was}"


def activate(store: ModelStore, version: str) -> ActivationResult:
    """Activate a version; its target is read from the version name."""
    target = target_of(version)
    previous = store.activate(target, version)
    return ActivationResult("activate", target, version, previous)


def rollback(store: ModelStore, target: str = DEFAULT_TARGET) -> ActivationResult:
    current = store.active(target)
    version = store.rollback(target)
    return ActivationResult("rollback", target, version, current)


def evaluate_csv(
    store: ModelStore,
    path: str | Path,
    text_cols: str | Sequence[str],
    label_col: str,
    version: str | None = None,
    *,
    target: str | None = None,
    confusion_png: str | Path | None = None,
) -> EvaluationReport:
    """Evaluate a stored model (the given version, else the active one) on a labelled CSV file.

    Without `version` or `target`, the target is the label column's name when a model is
    active for it (e.g. `--label priority`), otherwise "category".
    """
    if version is None:
        if target is None:
            target = label_col if _has_active(store, label_col) else DEFAULT_TARGET
        version = store.active(target)
        if version is None:
            raise ModelNotFoundError(f"no active {target} model; train one with helpdesk retrain")
    model = store.load(version)
    data = load_csv(path, text_cols, label_col)
    notes = [f"{data.skipped} rows without a label skipped"] if data.skipped else []
    report = evaluate(model, data.examples, notes=notes)
    if confusion_png is not None:
        report.write_confusion_png(confusion_png)
    return report


def _has_active(store: ModelStore, name: str) -> bool:
    try:
        return store.active(name) is not None
    except ModelStoreError:  # the label column's name is not a valid target name
        return False
