"""Train a text model for one target from labelled examples and measure it on held-out data.

`train` splits the examples (`routing.dataset.stratified_split`), fits on the training part,
evaluates on the held-out part and returns everything the model store records beside the
model. By default the model that is kept is the one fitted on the training part only, so its
held-out figures are honest and a later model can be compared with it on held-out tickets it
has not seen. Library code reports progress through a callback and never prints.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from routing.classifier import ModelSettings, TextModel, fit_pipeline
from routing.dataset import (
    Dataset,
    Example,
    Split,
    SplitSpec,
    dataset_sha256,
    label_counts,
    load_csv,
    stratified_split,
)
from routing.errors import TrainingError
from routing.evaluation import Comparison, EvaluationReport, compare, evaluate, evaluate_predictions

__all__ = [
    "STAGES",
    "Dataset",
    "Example",
    "ProgressCallback",
    "SplitSpec",
    "TrainingResult",
    "compare",
    "compare_on",
    "evaluate",
    "evaluate_predictions",
    "load_csv",
    "make_version",
    "train",
]

# (stage, steps done, total steps): the CLI turns this into a progress bar.
ProgressCallback = Callable[[str, int, int], None]
STAGES = ("split", "fit", "evaluate", "refit", "done")

MIN_EXAMPLES = 4


def make_version(target: str, created_at: datetime, fingerprint: str) -> str:
    """`<target>-<UTC timestamp>-<8 hex>`: sorts by time within a target, unique per data and settings."""
    stamp = created_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{target}-{stamp}-{hashlib.sha256(fingerprint.encode()).hexdigest()[:8]}"


@dataclass(frozen=True)
class TrainingResult:
    model: TextModel
    report: EvaluationReport  # on the held-out examples
    split: Split
    examples: tuple[Example, ...] = field(repr=False)
    settings: ModelSettings
    created_at: datetime
    data_sha256: str
    seconds: float
    fit_on: str  # "train-split" or "all"
    source: str = ""

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def target(self) -> str:
        return self.model.target

    def held_out(self) -> list[Example]:
        return [self.examples[i] for i in self.split.test]

    def metadata(self) -> dict[str, Any]:
        """What the model store writes beside the model (it adds the file checksum and libraries)."""
        return {
            "version": self.version,
            "target": self.target,
            "created_at": self.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "labels": list(self.model.labels),
            "training_data": {
                "sha256": self.data_sha256,
                "source": self.source,
                "total": len(self.examples),
                "per_label": label_counts(self.examples),
            },
            "split": self.split.as_dict(),
            "fit_on": self.fit_on,
            "metrics": self.report.summary(),
            "per_class": {m.label: m.as_dict() for m in self.report.per_class},
            "settings": self.settings.as_dict(),
            "training_seconds": round(self.seconds, 3),
        }


def _tick(progress: ProgressCallback | None, stage: str) -> None:
    if progress is not None:
        progress(stage, STAGES.index(stage) + 1, len(STAGES))


def train(
    examples: Sequence[Example],
    target: str,
    *,
    settings: ModelSettings | None = None,
    split: SplitSpec | None = None,
    refit_on_all: bool = False,
    progress: ProgressCallback | None = None,
    source: str = "",
    now: datetime | None = None,
) -> TrainingResult:
    """Fit and evaluate a model for `target` ("category" or "priority").

    `refit_on_all` refits on every example after the evaluation (for a first model that no
    later comparison needs to be fair to); the recorded figures are still the held-out ones.
    """
    started = time.perf_counter()
    examples = tuple(examples)
    s = settings or ModelSettings()
    labels = {ex.label for ex in examples}
    if len(examples) < MIN_EXAMPLES or len(labels) < 2:
        raise TrainingError(
            f"{target}: need at least {MIN_EXAMPLES} examples with two different labels "
            f"(got {len(examples)} with {len(labels)})"
        )
    parts = stratified_split(examples, split)
    _tick(progress, "split")
    train_part = [examples[i] for i in parts.train]
    if len({ex.label for ex in train_part}) < 2:
        raise TrainingError(f"{target}: the training part has a single label")
    created_at = now or datetime.now(UTC)
    data_sha = dataset_sha256(examples)
    fingerprint = json.dumps([data_sha, s.as_dict(), parts.spec.as_dict(), refit_on_all], sort_keys=True)
    version = make_version(target, created_at, fingerprint)

    pipeline = fit_pipeline([ex.text for ex in train_part], [ex.label for ex in train_part], s)
    model = TextModel(pipeline, target=target, version=version)
    _tick(progress, "fit")

    notes = []
    if parts.train_only_labels:
        notes.append(
            f"{len(parts.train_only_labels)} labels with fewer than {max(2, parts.spec.min_label_examples)} "
            f"examples were kept for training and not evaluated: {', '.join(parts.train_only_labels[:20])}"
            + (" ..." if len(parts.train_only_labels) > 20 else "")
        )
    report = evaluate(model, [examples[i] for i in parts.test], notes=notes)
    _tick(progress, "evaluate")

    if refit_on_all:
        pipeline = fit_pipeline([ex.text for ex in examples], [ex.label for ex in examples], s)
        model = TextModel(pipeline, target=target, version=version)
    _tick(progress, "refit")
    result = TrainingResult(
        model=model,
        report=report,
        split=parts,
        examples=examples,
        settings=s,
        created_at=created_at,
        data_sha256=data_sha,
        seconds=time.perf_counter() - started,
        fit_on="all" if refit_on_all else "train-split",
        source=source,
    )
    _tick(progress, "done")
    return result


def compare_on(new: TextModel, old: TextModel, held_out: Sequence[Example]) -> Comparison:
    """Evaluate two models on the same held-out examples and decide whether the new one is worse."""
    return compare(evaluate(new, held_out), evaluate(old, held_out))
