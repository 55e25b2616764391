"""Reading labelled CSV files and the reproducible stratified held-out split."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from routing.dataset import Example, SplitSpec, dataset_sha256, load_csv, parse_columns, stratified_split
from routing.errors import DatasetError


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_csv_with_several_text_columns(tmp_path: Path) -> None:
    csv_file = _write(
        tmp_path / "t.csv",
        "title,description,steps,group\n"
        'VPN down,"cannot connect\nsince today",restarted,network\n'
        "Printer,,,printing\n"
        "No label,text,,\n",
    )
    data = load_csv(csv_file, "title, description,steps", "group")
    assert [ex.label for ex in data.examples] == ["network", "printing"]
    first = data.examples[0]
    assert first.subject == "VPN down"
    assert first.body == "cannot connect\nsince today\n\nrestarted"
    assert data.examples[1].body == ""
    assert data.skipped == 1
    assert data.counts == {"network": 1, "printing": 1}
    assert first.key.startswith("row:")
    assert data.sha256 == dataset_sha256(data.examples)


def test_csv_errors_are_clear(tmp_path: Path) -> None:
    csv_file = _write(tmp_path / "t.csv", "subject,body,category\na,b,c\n")
    with pytest.raises(DatasetError, match="no column 'label'"):
        load_csv(csv_file, "subject,body", "label")
    with pytest.raises(DatasetError, match="cannot read"):
        load_csv(tmp_path / "missing.csv", "subject", "category")
    with pytest.raises(DatasetError):
        parse_columns(" , ")
    (tmp_path / "latin1.csv").write_bytes(
        "subject,category\nDrucker f\xfcr B\xfcro,printing\n".encode("latin-1")
    )
    with pytest.raises(DatasetError, match="not a readable"):
        load_csv(tmp_path / "latin1.csv", "subject", "category")


def _examples(counts: dict[str, int]) -> list[Example]:
    return [
        Example(f"{label} {i}", "", label, key=f"{label}{i}") for label, n in counts.items() for i in range(n)
    ]


def test_split_is_stratified_and_handles_rare_labels() -> None:
    examples = _examples({"big": 50, "mid": 10, "pair": 2, "single": 1})
    split = stratified_split(examples, SplitSpec(test_fraction=0.2))
    test_labels = Counter(examples[i].label for i in split.test)
    assert test_labels == {"big": 10, "mid": 2, "pair": 1}
    assert split.train_only_labels == ("single",)
    assert sorted(split.train + split.test) == list(range(len(examples)))
    assert split.as_dict()["test"] == 13


def test_split_is_reproducible_and_independent_of_row_order() -> None:
    examples = _examples({"a": 30, "b": 20})
    first = stratified_split(examples)
    again = stratified_split(list(reversed(examples)))
    held_first = {examples[i].key for i in first.test}
    held_again = {list(reversed(examples))[i].key for i in again.test}
    assert held_first == held_again
    other_seed = stratified_split(examples, SplitSpec(seed=1))
    assert {examples[i].key for i in other_seed.test} != held_first


def test_adding_examples_keeps_most_held_out_examples_held_out() -> None:
    old = _examples({"a": 100, "b": 50})
    new = old + [Example(f"new {i}", "", "a" if i % 2 else "b", key=f"n{i}") for i in range(50)]
    old_train = {old[i].key for i in stratified_split(old).train}
    new_test = {new[i].key for i in stratified_split(new).test}
    # A shuffled split would put ~80% of the new held-out examples in the old training part.
    assert len(new_test & old_train) / len(new_test) < 0.25
