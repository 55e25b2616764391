"""The model store: arrays round trip, old skops models, atomic saves, refusing tampered files,
activation history."""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from routing.classifier import TextModel
from routing.compact_model import CompactModel
from routing.dataset import Example
from routing.errors import (
    ModelIntegrityError,
    ModelLoadError,
    ModelNotFoundError,
    ModelStoreError,
    UntrustedModelError,
)
from routing.model_files import library_versions
from routing.model_store import ModelStore, clear_cache
from routing.training import TrainingResult, train

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def _train(examples: list[Example], minutes: int = 0, target: str = "category") -> TrainingResult:
    return train(examples, target, now=T0 + timedelta(minutes=minutes))


def _files(store: ModelStore) -> list[str]:
    return sorted(p.name for p in store.directory.iterdir() if p.name != ".lock")


def test_arrays_round_trip_gives_identical_predictions(store: ModelStore, examples: list[Example]) -> None:
    result = _train(examples)
    info = store.save(result)
    assert info.version == result.version
    assert info.target == "category"
    assert not info.active
    clear_cache()
    loaded = store.load(result.version)
    items = [ex.text for ex in examples[:15]]
    assert loaded.predict_many(items) == result.model.predict_many(items)
    assert loaded.labels == result.model.labels
    assert _files(store) == sorted(
        [f"{result.version}.npz", f"{result.version}.json", f"{result.version}.confusion.png"]
    )


def _save_as_skops(store: ModelStore, result: TrainingResult) -> None:
    """Store a model as versions before the arrays format did: a skops file named by the metadata."""
    import skops.io

    store.save(result)
    data = skops.io.dumps(result.model.pipeline, compression=zipfile.ZIP_DEFLATED)
    (store.directory / f"{result.version}.npz").unlink()
    (store.directory / f"{result.version}.skops").write_bytes(data)
    meta_path = store.directory / f"{result.version}.json"
    meta = json.loads(meta_path.read_text())
    meta.update(model_file=f"{result.version}.skops", model_sha256=hashlib.sha256(data).hexdigest())
    meta_path.write_text(json.dumps(meta))
    clear_cache()


def test_an_old_skops_model_still_loads_and_migrates_to_arrays(
    store: ModelStore, examples: list[Example]
) -> None:
    result = _train(examples)
    _save_as_skops(store, result)
    items = [ex.text for ex in examples[:20]]
    old = store.load(result.version)
    assert isinstance(old, TextModel)
    assert old.predict_many(items) == result.model.predict_many(items)
    assert store.migrate_to_arrays() == [result.version]
    assert store.migrate_to_arrays() == []  # once
    clear_cache()
    migrated = store.load(result.version)
    assert isinstance(migrated, CompactModel)
    assert migrated.predict_many(items) == result.model.predict_many(items)
    assert store.metadata(result.version)["model_file"] == f"{result.version}.npz"


def test_an_npz_with_pickled_objects_is_refused_unread(
    store: ModelStore, examples: list[Example], tmp_path: Path
) -> None:
    import numpy as np

    marker = tmp_path / "ran"
    result = _train(examples)
    store.save(result)
    # An object array is stored as a pickle: loading it would call whatever it names.
    hostile = np.empty(1, dtype=object)
    hostile[0] = _Trap(str(marker))
    buffer = io.BytesIO()
    np.savez(buffer, meta=hostile)
    _replace_model_bytes(store, result.version, buffer.getvalue())
    with pytest.raises(ModelLoadError, match="not a readable model file"):
        store.load(result.version)
    assert not marker.exists()


class _Trap:
    """Unpickled, it would create a file: the proof that a load ran code."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (self.path, "w"))


def test_metadata_records_what_is_needed_to_reproduce(store: ModelStore, examples: list[Example]) -> None:
    result = _train(examples)
    store.save(result)
    meta = store.metadata(result.version)
    assert meta["version"].startswith("category-20250301T120000Z-")
    assert meta["target"] == "category"
    assert meta["created_at"] == "2025-03-01T12:00:00Z"
    assert meta["training_data"]["total"] == len(examples)
    assert meta["training_data"]["per_label"] == {"accounts": 30, "network": 30, "printing": 30}
    assert len(meta["training_data"]["sha256"]) == 64
    assert meta["labels"] == ["accounts", "network", "printing"]
    assert set(meta["libraries"]) == {"python", "sklearn", "numpy", "scipy", "skops"}
    assert meta["libraries"] == library_versions()
    assert {"accuracy", "macro_f1", "n", "precision_at_coverage"} <= set(meta["metrics"])
    assert meta["split"]["seed"]
    assert meta["split"]["test"] == 18
    assert meta["settings"]["features"]["char_ngrams"] == [2, 5]
    assert (
        meta["model_sha256"]
        == hashlib.sha256(store.directory.joinpath(meta["model_file"]).read_bytes()).hexdigest()
    )


def test_failed_save_leaves_no_partial_file(
    store: ModelStore, examples: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _train(examples)

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("routing.model_store.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        store.save(result)
    monkeypatch.undo()
    assert _files(store) == []
    assert store.list_models() == []


def test_metadata_write_failure_removes_the_model_file(
    store: ModelStore, examples: list[Example], monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _train(examples)
    real_replace = os.replace

    def fail_on_metadata(src: str, dst: str | Path) -> None:
        if str(dst).endswith(".json"):
            raise OSError(5, "I/O error")
        real_replace(src, dst)

    monkeypatch.setattr("routing.model_store.os.replace", fail_on_metadata)
    with pytest.raises(OSError, match="I/O error"):
        store.save(result)
    monkeypatch.undo()
    assert _files(store) == []


def test_tampered_model_file_is_refused(store: ModelStore, examples: list[Example]) -> None:
    result = _train(examples)
    store.save(result)
    store.activate("category", result.version)
    path = store.directory / f"{result.version}.npz"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    clear_cache()
    with pytest.raises(ModelIntegrityError, match="checksum"):
        store.load_active("category")


def _replace_model_bytes(store: ModelStore, version: str, data: bytes, suffix: str = ".npz") -> None:
    """Write a model file and a matching checksum, as someone with write access to the store could."""
    (store.directory / f"{version}{suffix}").write_bytes(data)
    meta_path = store.directory / f"{version}.json"
    meta = json.loads(meta_path.read_text())
    meta["model_sha256"] = hashlib.sha256(data).hexdigest()
    meta["model_file"] = f"{version}{suffix}"
    meta_path.write_text(json.dumps(meta))
    clear_cache()


def test_corrupt_model_file_gives_a_clear_error(store: ModelStore, examples: list[Example]) -> None:
    result = _train(examples)
    store.save(result)
    store.activate("category", result.version)
    _replace_model_bytes(store, result.version, b"not a zip archive at all")
    with pytest.raises(ModelLoadError, match="not a readable model file"):
        store.load_active("category")
    os.unlink(store.directory / f"{result.version}.npz")
    with pytest.raises(ModelLoadError, match="cannot read model file"):
        store.load(result.version)


def test_model_with_untrusted_types_is_refused(store: ModelStore, examples: list[Example]) -> None:
    import skops.io
    from sklearn.preprocessing import FunctionTransformer

    result = _train(examples)
    store.save(result)
    # A transformer that would call an arbitrary function: exactly what a hostile file would carry.
    hostile = skops.io.dumps(FunctionTransformer(func=os.system), compression=zipfile.ZIP_DEFLATED)
    _replace_model_bytes(store, result.version, hostile, ".skops")
    with pytest.raises(UntrustedModelError, match="system"):
        store.load(result.version)


def test_activate_rollback_and_history(store: ModelStore, examples: list[Example]) -> None:
    first, second, third = (_train(examples[: 60 + 10 * i], minutes=i) for i in range(3))
    for r in (first, second, third):
        store.save(r)
    assert store.active("category") is None
    assert store.load_active("category") is None
    assert store.activate("category", first.version) is None
    assert store.activate("category", second.version) == first.version
    assert store.activate("category", third.version) == second.version
    assert store.activate("category", third.version) == third.version  # no-op
    assert store.rollback("category") == second.version
    assert store.active("category") == second.version
    assert store.rollback("category") == first.version
    with pytest.raises(ModelStoreError, match="no earlier"):
        store.rollback("category")
    actions = [(e["action"], e["version"]) for e in store.history("category")]
    assert actions == [
        ("activate", first.version),
        ("activate", second.version),
        ("activate", third.version),
        ("rollback", second.version),
        ("rollback", first.version),
    ]
    listing = store.list_models("category")
    assert [m.version for m in listing] == [first.version, second.version, third.version]
    assert [m.active for m in listing] == [True, False, False]
    assert store.list_models("priority") == []


def test_activation_checks_target_and_existence(store: ModelStore, examples: list[Example]) -> None:
    result = _train(examples)
    store.save(result)
    with pytest.raises(ModelStoreError, match="not a priority model"):
        store.activate("priority", result.version)
    with pytest.raises(ModelNotFoundError):
        store.activate("category", "category-20250101T000000Z-deadbeef")
    with pytest.raises(ModelNotFoundError):
        store.load("../../etc/passwd")
    with pytest.raises(ModelStoreError, match="invalid target"):
        store.active("../x")


def test_delete_refuses_the_active_model(store: ModelStore, examples: list[Example]) -> None:
    old, new = _train(examples[:60]), _train(examples, minutes=1)
    store.save(old)
    store.save(new)
    store.activate("category", old.version)
    store.activate("category", new.version)
    with pytest.raises(ModelStoreError, match="active"):
        store.delete(new.version)
    store.delete(old.version)
    assert [m.version for m in store.list_models()] == [new.version]
    with pytest.raises(ModelStoreError):
        store.rollback("category")  # the deleted version left the history too


def test_load_active_is_cached_per_version(store: ModelStore, examples: list[Example]) -> None:
    result = _train(examples)
    store.save(result)
    store.activate("category", result.version)
    first = store.load_active("category")
    assert first is not None
    assert first is store.load_active("category")
    assert isinstance(first, CompactModel)
    assert first.version == result.version
    assert ModelStore(store.directory).load_active("category") is first  # another handle, same cache
