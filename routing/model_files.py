"""Model files written so that nothing half-written is ever read, private to the desk, with what made them.

A model is written to a temporary file, synced and renamed over the old one (then the directory
is synced): a reader sees the old file or the whole new one. Files are 0600 and directories 0700
whatever the umask, since a model holds the vocabulary of requesters' mail. `library_versions`
is recorded beside each model, so a model can be told apart from what loads it.
"""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name, dist in (
        ("sklearn", "scikit-learn"),
        ("numpy", "numpy"),
        ("scipy", "scipy"),
        ("skops", "skops"),
    ):
        try:
            out[name] = package_version(dist)
        except PackageNotFoundError:
            out[name] = "unknown"
    return out


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see either the old content or all of the new."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # Made 0600 whatever the umask, like every file of the desk: another local user must not
        # read what the desk learnt from its mail (the vocabulary of requesters' text).
        os.fchmod(fd, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)
