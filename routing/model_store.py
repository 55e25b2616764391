"""A directory of versioned text models: save, list, activate, roll back, load safely.

Layout (the directory is given by the caller, e.g. `var/models`):

    <version>.npz            the fitted arrays (`routing.compact_model`): numpy arrays only, read
                             without pickle, predicted with numpy alone
    <version>.skops          a model saved before the arrays format (skops, never pickle); still
                             loaded, and `migrate_to_arrays` (run by `helpdesk init`) rewrites it
    <version>.json           metadata: the model file and its checksum, labels, data fingerprint and
                             counts, split, metrics, settings, library versions. Its presence is what
                             makes a version exist.
    <version>.confusion.png  the held-out confusion matrix, when one was drawn
    activations.json         per target, the stack of activated versions (top = active) and a log

Every file is written to a temporary name, fsynced and renamed, so a reader (the daemon) sees
the old file or the new one, never half of one. Loading checks the file's SHA-256 against its
metadata; an .npz is read with `allow_pickle=False`, and of a skops file any type outside
`ALLOWED_TYPES` is refused before skops builds a single object.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routing.errors import (
    ModelIntegrityError,
    ModelLoadError,
    ModelNotFoundError,
    ModelStoreError,
)
from routing.model_files import PRIVATE_DIR, PRIVATE_FILE, atomic_write, library_versions

if TYPE_CHECKING:
    from routing.classifier import TextModel
    from routing.compact_model import CompactModel
    from routing.training import TrainingResult

    LoadedModel = TextModel | CompactModel

log = logging.getLogger("helpdesk.routing.models")

FORMAT = 1
ARRAYS_SUFFIX = ".npz"
MODEL_SUFFIX = ".skops"  # models saved before the arrays format
META_SUFFIX = ".json"
PNG_SUFFIX = ".confusion.png"
HISTORY = "activations.json"
CACHE_SIZE = 4

_TARGET_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_VERSION_RE = re.compile(r"^([a-z][a-z0-9_]{0,39})-\d{8}T\d{6}Z-[0-9a-f]{8}$")

# Loaded models by (store directory, version): a version's file never changes, so the daemon
# can keep answering from memory and only reads the small activation file per mail.
_cache: OrderedDict[tuple[str, str], LoadedModel] = OrderedDict()
_cache_lock = threading.Lock()


def check_target(target: str) -> str:
    if not _TARGET_RE.match(target):
        raise ModelStoreError(f"invalid target name {target!r}")
    return target


def target_of(version: str) -> str:
    match = _VERSION_RE.match(version)
    if not match:
        raise ModelNotFoundError(
            f"{version!r} is not a model version (like category-20250101T120000Z-1a2b3c4d)"
        )
    return match.group(1)


@dataclass(frozen=True)
class ModelInfo:
    version: str
    target: str
    created_at: str
    metadata: Mapping[str, Any]
    active: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "target": self.target,
            "created_at": self.created_at,
            "active": self.active,
            "labels": len(self.metadata.get("labels", ())),
            "examples": self.metadata.get("training_data", {}).get("total"),
            "metrics": self.metadata.get("metrics", {}),
        }


class ModelStore:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self._history: tuple[tuple[int, ...], dict[str, Any]] | None = None  # (file stamp, history)

    # -- paths and small files -------------------------------------------------------------
    def _path(self, version: str, suffix: str) -> Path:
        target_of(version)
        return self.directory / f"{version}{suffix}"

    def _make_directory(self) -> None:
        if not self.directory.is_dir():
            self.directory.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
            os.chmod(self.directory, PRIVATE_DIR)  # mkdir's mode passes through the umask

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise writers (two admins activating at once); readers never need the lock."""
        self._make_directory()
        fd = os.open(
            self.directory / ".lock", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, PRIVATE_FILE
        )
        with os.fdopen(fd, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _read_history(self) -> dict[str, Any]:
        path = self.directory / HISTORY
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {"format": FORMAT, "targets": {}}
        except (OSError, ValueError) as exc:
            raise ModelStoreError(f"{path}: unreadable activation history: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.get("targets"), dict):
            raise ModelStoreError(f"{path}: not an activation history")
        return data

    def _write_history(self, history: Mapping[str, Any]) -> None:
        text = json.dumps(history, indent=2, sort_keys=True) + "\n"
        atomic_write(self.directory / HISTORY, text.encode("utf-8"))

    def metadata(self, version: str) -> dict[str, Any]:
        path = self._path(version, META_SUFFIX)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ModelNotFoundError(f"no model {version} in {self.directory}") from exc
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: unreadable metadata: {exc}") from exc
        if not isinstance(data, dict):
            raise ModelLoadError(f"{path}: metadata is not an object")
        return data

    # -- saving ----------------------------------------------------------------------------
    def save(self, result: TrainingResult, *, confusion_png: bool = True) -> ModelInfo:
        """Store a trained model with its metadata (and confusion matrix); does not activate it.

        A version names its data, settings and second of training, and training is
        deterministic, so saving an existing version again keeps the stored one.
        """
        if self._path(result.version, META_SUFFIX).exists():
            log.info("model %s is already stored", result.version)
            return self.info(result.version)
        meta = result.metadata()
        path = self.save_model(result.model, meta)
        if confusion_png and result.report.n:
            png = self._path(result.version, PNG_SUFFIX)
            result.report.write_confusion_png(png)
            png.chmod(PRIVATE_FILE)  # written by matplotlib, with the umask's mode
        return self.info(path.stem)

    def save_model(self, model: TextModel, metadata: Mapping[str, Any]) -> Path:
        from routing.compact_model import to_arrays, to_npz

        check_target(model.target)
        version = model.version
        if target_of(version) != model.target:
            raise ModelStoreError(f"version {version} does not belong to target {model.target}")
        self._make_directory()
        steps = model.pipeline.named_steps
        data = to_npz(to_arrays(steps["features"], steps["classifier"]))
        meta = {
            **metadata,
            "format": FORMAT,
            "version": version,
            "target": model.target,
            "labels": list(model.labels),
            "model_file": f"{version}{ARRAYS_SUFFIX}",
            "model_sha256": hashlib.sha256(data).hexdigest(),
            "model_bytes": len(data),
            "libraries": library_versions(),
        }
        model_path = self._path(version, ARRAYS_SUFFIX)
        meta_path = self._path(version, META_SUFFIX)
        with self._locked():
            if meta_path.exists():
                raise ModelStoreError(f"model {version} already exists")
            atomic_write(model_path, data)
            try:
                atomic_write(meta_path, (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode("utf-8"))
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    model_path.unlink()
                raise
        log.info("SAVED model %s (%d bytes)", version, len(data))
        return model_path

    # -- listing and activation -----------------------------------------------------------
    def info(self, version: str) -> ModelInfo:
        meta = self.metadata(version)
        target = str(meta.get("target", target_of(version)))
        return ModelInfo(
            version, target, str(meta.get("created_at", "")), meta, self.active(target) == version
        )

    def list_models(self, target: str | None = None) -> list[ModelInfo]:
        if not self.directory.is_dir():
            return []
        history = self._read_history()["targets"]
        out = []
        for path in self.directory.glob(f"*{META_SUFFIX}"):
            version = path.name[: -len(META_SUFFIX)]
            if not _VERSION_RE.match(version) or (target and target_of(version) != target):
                continue
            try:
                meta = self.metadata(version)
            except ModelLoadError as exc:
                log.warning("skipping model %s: %s", version, exc)
                continue
            t = str(meta.get("target", target_of(version)))
            stack = history.get(t, {}).get("stack", [])
            out.append(
                ModelInfo(
                    version, t, str(meta.get("created_at", "")), meta, bool(stack) and stack[-1] == version
                )
            )
        return sorted(out, key=lambda m: (m.target, m.created_at, m.version))

    def history(self, target: str) -> list[dict[str, Any]]:
        entry = self._read_history()["targets"].get(check_target(target), {})
        return list(entry.get("log", []))

    def active(self, target: str) -> str | None:
        stack = self._current_history()["targets"].get(check_target(target), {}).get("stack", [])
        return str(stack[-1]) if stack else None

    def _current_history(self) -> dict[str, Any]:
        """The history as `_read_history` gives it, read again only when the file changed: routing
        asks on every mail, and a stat is far cheaper than reading and decoding the JSON. The file
        is only ever replaced whole (`atomic_write`), so a change is a new inode."""
        try:
            st = os.stat(self.directory / HISTORY)
            stamp: tuple[int, ...] = (st.st_ino, st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = ()
        except OSError as exc:
            raise ModelStoreError(f"{self.directory / HISTORY}: {exc}") from exc
        if self._history is None or self._history[0] != stamp:
            self._history = (stamp, self._read_history())
        return self._history[1]

    def _record(self, target: str, action: str, version: str, previous: str | None, stack: list[str]) -> None:
        history = self._read_history()
        entry = history["targets"].setdefault(target, {"stack": [], "log": []})
        entry["stack"] = stack
        at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        entry.setdefault("log", []).append(
            {"at": at, "action": action, "version": version, "previous": previous}
        )
        self._write_history(history)

    def activate(self, target: str, version: str) -> str | None:
        """Make `version` the active model of `target`; returns the version it replaces."""
        check_target(target)
        if target_of(version) != target:
            raise ModelStoreError(f"{version} is a {target_of(version)} model, not a {target} model")
        self.metadata(version)  # must exist
        with self._locked():
            stack = list(self._read_history()["targets"].get(target, {}).get("stack", []))
            previous = str(stack[-1]) if stack else None
            if previous == version:
                return previous
            self._record(target, "activate", version, previous, [*stack, version])
        log.info("ACTIVATED model %s (was %s)", version, previous)
        return previous

    def rollback(self, target: str) -> str:
        """Re-activate the version that was active before the current one; returns it."""
        check_target(target)
        with self._locked():
            stack = list(self._read_history()["targets"].get(target, {}).get("stack", []))
            if len(stack) < 2:
                raise ModelStoreError(f"no earlier {target} model to roll back to")
            current = stack.pop()
            self._record(target, "rollback", stack[-1], current, stack)
        log.info("ROLLED BACK %s model %s -> %s", target, current, stack[-1])
        return str(stack[-1])

    def delete(self, version: str) -> None:
        """Remove a version that is not active; it also leaves the rollback history."""
        target = target_of(version)
        with self._locked():
            stack = list(self._read_history()["targets"].get(target, {}).get("stack", []))
            if stack and stack[-1] == version:
                raise ModelStoreError(f"{version} is the active {target} model; activate another first")
            self.metadata(version)
            if version in stack:
                self._record(target, "delete", version, None, [v for v in stack if v != version])
            for suffix in (
                META_SUFFIX,
                ARRAYS_SUFFIX,
                MODEL_SUFFIX,
                PNG_SUFFIX,
            ):  # metadata first: the version is gone
                with contextlib.suppress(FileNotFoundError):
                    self._path(version, suffix).unlink()
        _forget(self.directory, version)

    # -- loading ---------------------------------------------------------------------------
    def load(self, version: str) -> LoadedModel:
        """Load one version, verifying checksum and types; raises a `ModelLoadError` subclass."""
        key = (str(self.directory.resolve()), version)
        with _cache_lock:
            cached = _cache.get(key)
            if cached is not None:
                _cache.move_to_end(key)
                return cached
        model = self._load_uncached(version)
        with _cache_lock:
            _cache[key] = model
            while len(_cache) > CACHE_SIZE:
                _cache.popitem(last=False)
        return model

    def load_active(self, target: str) -> LoadedModel | None:
        """The active model of `target`, or None when there is none; cached per version."""
        version = self.active(target)
        return self.load(version) if version else None

    def _model_file(self, version: str, meta: Mapping[str, Any]) -> tuple[Path, bytes]:
        """The model file the metadata names (an .npz, or a .skops of an older version), checked."""
        suffix = ARRAYS_SUFFIX if str(meta.get("model_file", "")).endswith(ARRAYS_SUFFIX) else MODEL_SUFFIX
        path = self._path(version, suffix)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"{path}: cannot read model file: {exc.strerror or exc}") from exc
        if hashlib.sha256(data).hexdigest() != meta.get("model_sha256"):
            raise ModelIntegrityError(
                f"{path}: checksum differs from its metadata; file tampered with or corrupt"
            )
        return path, data

    def _load_uncached(self, version: str) -> LoadedModel:
        meta = self.metadata(version)
        path, data = self._model_file(version, meta)
        target = str(meta.get("target", target_of(version)))
        if path.suffix == ARRAYS_SUFFIX:
            from routing.compact_model import from_npz

            try:
                compact = from_npz(data, target=target, version=version)
            except ModelLoadError as exc:
                raise ModelLoadError(f"{path}: {exc}") from exc
            if list(compact.labels) != list(meta.get("labels", [])):
                raise ModelLoadError(f"{path}: labels differ from its metadata")
            log.info("LOADED model %s (%d bytes)", version, len(data))
            return compact
        from routing.skops_models import load_skops

        return load_skops(version, meta, path, data)

    def migrate_to_arrays(self) -> list[str]:
        """Rewrite every model still stored with skops as arrays; returns the versions rewritten."""
        from routing.skops_models import migrate

        return migrate(self)


def _forget(directory: Path, version: str) -> None:
    with _cache_lock:
        _cache.pop((str(directory.resolve()), version), None)


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()
