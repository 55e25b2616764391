"""Models saved before the arrays format: loaded with skops, safely, and rewritten as arrays.

Such a model is a scikit-learn pipeline in a skops file. Loading it refuses any type outside
`ALLOWED_TYPES` before skops builds a single object (skops itself trusts the scikit-learn and
numpy types a Pipeline is made of), and imports scikit-learn, which the arrays format spares the
daemon. `migrate` (run by `helpdesk init`) rewrites each one as an .npz whose predictions are the
same to the last bit, checks that they are on a few sample texts, and points the metadata at
the new file. The skops file stays (unused) until the version is deleted: a daemon that read the
old metadata a moment before may still be opening it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routing.errors import ModelLoadError, UntrustedModelError
from routing.model_files import atomic_write, library_versions

if TYPE_CHECKING:
    from routing.classifier import TextModel
    from routing.model_store import ModelStore

log = logging.getLogger("helpdesk.routing.models")

# Our own classes; skops itself trusts the scikit-learn and numpy types a Pipeline is made of.
ALLOWED_TYPES = frozenset({"routing.features.MailVectorizer", "routing.calibration.PlattCalibratedSVC"})
# Texts a migrated model must answer exactly as the skops one did before the skops file goes.
CHECK_TEXTS = (
    ("Printer does not print", "The printer on floor 3 shows a paper jam."),
    ("VPN się rozłącza", "Od aktualizacji połączenie VPN zrywa się co kilka minut."),
    ("Passwort abgelaufen", "Mein Passwort ist abgelaufen, bitte zurücksetzen. Dringend!"),
    ("", ""),
)


def load_skops(version: str, meta: Mapping[str, Any], path: Path, data: bytes) -> TextModel:
    """A model from the bytes of its skops file (checksum already verified against `meta`)."""
    import skops.io

    from routing.classifier import TextModel

    try:
        untrusted = skops.io.get_untrusted_types(data=data)
    except Exception as exc:  # a damaged archive can fail in zipfile, json or skops
        raise ModelLoadError(f"{path}: not a readable model file: {exc}") from exc
    refused = sorted(set(untrusted) - ALLOWED_TYPES)
    if refused:
        raise UntrustedModelError(f"{path}: refusing to load types {', '.join(refused)}")
    try:
        pipeline = skops.io.loads(data, trusted=sorted(untrusted))
        model = TextModel(pipeline, target=str(meta.get("target", version.split("-")[0])), version=version)
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot build the model: {exc}") from exc
    if list(model.labels) != list(meta.get("labels", [])):
        raise ModelLoadError(f"{path}: labels differ from its metadata")
    saved_with = meta.get("libraries", {}).get("sklearn")
    if saved_with and saved_with != library_versions()["sklearn"]:
        log.warning("model %s was saved with scikit-learn %s, running %s", version, saved_with,
                    library_versions()["sklearn"])  # fmt: skip
    log.info("LOADED model %s (%d bytes)", version, len(data))
    return model


def migrate(store: ModelStore) -> list[str]:
    """Rewrite each skops model of `store` as arrays; a model that cannot be read is left as it is."""
    from routing.compact_model import from_npz, to_arrays, to_npz
    from routing.model_store import ARRAYS_SUFFIX, META_SUFFIX, MODEL_SUFFIX

    done = []
    for info in store.list_models():
        meta = dict(info.metadata)
        if str(meta.get("model_file", "")).endswith(ARRAYS_SUFFIX):
            continue
        old_path = store.directory / f"{info.version}{MODEL_SUFFIX}"
        try:
            data = old_path.read_bytes()
            if hashlib.sha256(data).hexdigest() != meta.get("model_sha256"):
                raise ModelLoadError(f"{old_path}: checksum differs from its metadata")
            old = load_skops(info.version, meta, old_path, data)
            steps = old.pipeline.named_steps
            arrays = to_npz(to_arrays(steps["features"], steps["classifier"]))
            new = from_npz(arrays, target=old.target, version=old.version)
        except (ModelLoadError, OSError, ValueError) as exc:
            log.error("MIGRATE model %s kept in skops: %s", info.version, exc)
            continue
        if new.predict_many(list(CHECK_TEXTS)) != old.predict_many(list(CHECK_TEXTS)):
            log.error("MIGRATE model %s kept in skops: the arrays answer differently", info.version)
            continue
        atomic_write(store.directory / f"{info.version}{ARRAYS_SUFFIX}", arrays)
        meta.update(
            model_file=f"{info.version}{ARRAYS_SUFFIX}",
            model_sha256=hashlib.sha256(arrays).hexdigest(),
            model_bytes=len(arrays),
            migrated_from=f"{info.version}{MODEL_SUFFIX}",
        )
        text = json.dumps(meta, indent=2, sort_keys=True) + "\n"
        atomic_write(store.directory / f"{info.version}{META_SUFFIX}", text.encode("utf-8"))
        log.info("MIGRATED model %s to arrays (%d bytes, was %d)", info.version, len(arrays), len(data))
        done.append(info.version)
    return done
