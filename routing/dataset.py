"""Labelled examples for training and evaluation: reading them from CSV, fingerprinting, splitting.

The held-out split is stratified and reproducible from its definition alone: within each label,
the test examples are those whose keyed hash (seed, example key, text) is lowest, a
`test_fraction` of them. Unlike a shuffled split it does not depend on the order of the rows,
and a ticket keeps its side when more tickets are added later, so a model trained last month
has (almost) never seen this month's held-out tickets and the two can be compared fairly.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from routing.errors import DatasetError

DEFAULT_SPLIT_SEED = 20240611


@dataclass(frozen=True)
class Example:
    """One labelled mail. `key` identifies it in its source (ticket id, CSV row) for the split."""

    subject: str
    body: str
    label: str
    key: str = ""

    @property
    def text(self) -> tuple[str, str]:
        return (self.subject, self.body)


@dataclass(frozen=True)
class Dataset:
    examples: tuple[Example, ...]
    source: str = ""
    skipped: int = 0  # rows without a label

    @property
    def sha256(self) -> str:
        return dataset_sha256(self.examples)

    @property
    def counts(self) -> dict[str, int]:
        return label_counts(self.examples)


def dataset_sha256(examples: Iterable[Example]) -> str:
    """A fingerprint of the training data: same examples in the same order -> same hash."""
    digest = hashlib.sha256()
    for ex in examples:
        digest.update(json.dumps([ex.subject, ex.body, ex.label], ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


def label_counts(examples: Iterable[Example]) -> dict[str, int]:
    return dict(sorted(Counter(ex.label for ex in examples).items(), key=lambda kv: (-kv[1], kv[0])))


def parse_columns(columns: str | Sequence[str]) -> tuple[str, ...]:
    """`"a,b"` or `["a", "b"]` -> `("a", "b")`, as the CLI's `--text COL[,COL...]` gives them."""
    parts = columns.split(",") if isinstance(columns, str) else list(columns)
    out = tuple(p.strip() for p in parts if p.strip())
    if not out:
        raise DatasetError("no text column given")
    return out


def load_csv(
    path: str | Path,
    text_columns: str | Sequence[str],
    label_column: str,
    *,
    encoding: str = "utf-8-sig",
) -> Dataset:
    """Read labelled examples from a CSV file with a header row.

    The first text column is the subject, the others are joined (blank line between) into the
    body. Rows with an empty label are skipped and counted.
    """
    columns = parse_columns(text_columns)
    file = Path(path)
    # Ticket bodies can be longer than the csv module's default 128 KiB field limit.
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with file.open(newline="", encoding=encoding) as fh:
            reader = csv.DictReader(fh)
            header = reader.fieldnames or []
            missing = [c for c in (*columns, label_column) if c not in header]
            if missing:
                raise DatasetError(
                    f"{file}: no column {', '.join(map(repr, missing))}; columns are {', '.join(header)}"
                )
            examples: list[Example] = []
            skipped = 0
            for row in reader:
                label = (row.get(label_column) or "").strip()
                if not label:
                    skipped += 1
                    continue
                texts = [(row.get(c) or "") for c in columns]
                body = "\n\n".join(t for t in texts[1:] if t.strip())
                examples.append(Example(texts[0], body, label, key=f"row:{reader.line_num}"))
    except OSError as exc:
        raise DatasetError(f"{file}: cannot read: {exc.strerror or exc}") from exc
    except (UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{file}: not a readable {encoding} CSV file: {exc}") from exc
    if not examples:
        raise DatasetError(f"{file}: no labelled rows")
    return Dataset(tuple(examples), source=str(file), skipped=skipped)


@dataclass(frozen=True)
class SplitSpec:
    """The definition of a held-out split; stored with each model so the split can be rebuilt."""

    seed: int = DEFAULT_SPLIT_SEED
    test_fraction: float = 0.2
    min_label_examples: int = 2  # labels with fewer examples stay entirely in training
    method: str = "per-label lowest keyed blake2b(seed, key, subject, body)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitSpec:
        return cls(
            seed=int(data.get("seed", cls.seed)),
            test_fraction=float(data.get("test_fraction", cls.test_fraction)),
            min_label_examples=int(data.get("min_label_examples", cls.min_label_examples)),
        )


@dataclass(frozen=True)
class Split:
    spec: SplitSpec
    train: tuple[int, ...]  # indices into the examples
    test: tuple[int, ...]
    train_only_labels: tuple[str, ...]  # too few examples to hold any out: not evaluated

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.spec.as_dict(),
            "train": len(self.train),
            "test": len(self.test),
            "train_only_labels": list(self.train_only_labels),
        }


def _rank_key(seed: int, ex: Example) -> bytes:
    h = hashlib.blake2b(digest_size=16, key=str(seed).encode("ascii"))
    h.update(json.dumps([ex.key, ex.subject, ex.body], ensure_ascii=False).encode("utf-8"))
    return h.digest()


def stratified_split(examples: Sequence[Example], spec: SplitSpec | None = None) -> Split:
    """Hold out `test_fraction` of every label (at least one, never all) for evaluation."""
    s = spec or SplitSpec()
    if not 0.0 < s.test_fraction < 1.0:
        raise ValueError("test_fraction must be between 0 and 1")
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_label.setdefault(ex.label, []).append(i)
    train: list[int] = []
    test: list[int] = []
    train_only: list[str] = []
    for label in sorted(by_label):
        members = by_label[label]
        if len(members) < max(2, s.min_label_examples):
            train.extend(members)
            train_only.append(label)
            continue
        n_test = min(len(members) - 1, max(1, math.floor(s.test_fraction * len(members) + 0.5)))
        ranked = sorted(members, key=lambda i: (_rank_key(s.seed, examples[i]), i))
        test.extend(ranked[:n_test])
        train.extend(ranked[n_test:])
    return Split(s, tuple(sorted(train)), tuple(sorted(test)), tuple(train_only))
