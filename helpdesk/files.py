"""The desk's files are private: its data directories 0700 and every file in them 0600.

The database holds every ticket, the outgoing maildir every signed reply address a technician
acts with, the configuration the secret that signs them all. Every command runs under umask 077
(set by the `helpdesk` entry point), and the parts that write security-relevant files give
them their mode explicitly as well (models/db.py, notify/sender.py, routing/model_store.py), so
a part started by other code is no less private.

A desk made by an older version, or whose files were copied in under a looser umask, is
tightened when `helpdesk init` or `helpdesk serve` starts, and each change is logged.
Tightening only ever removes group and other permissions; it never follows a symbolic link,
and it leaves a directory others share (sticky, like /tmp) alone.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from helpdesk.settings import Settings
from models.urls import parse_url

log = logging.getLogger("helpdesk.files")

PRIVATE_UMASK = 0o077
PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
NOT_OURS = 0o077  # group and other: what tightening takes away
# SQLite's companions of a database file; it creates them with the database file's own mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")
LOGGED_ONE_BY_ONE = 20  # past this many changes, the rest are counted in one line


@dataclass(frozen=True)
class Tightened:
    path: Path
    before: int
    after: int


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (None for PostgreSQL or an in-memory database)."""
    parsed = parse_url(url)
    if parsed is None:  # not read here: SQLAlchemy's reading, and its error
        from sqlalchemy.engine import make_url

        full = make_url(url)
        if full.get_backend_name() != "sqlite" or full.database in (None, "", ":memory:"):
            return None
        return Path(str(full.database))
    return Path(parsed.sqlite_file) if parsed.sqlite_file is not None else None


def data_directories(settings: Settings) -> list[Path]:
    """The directories that hold nothing but the desk's own data, made 0700 with all they contain."""
    candidates = [settings.base_dir / "var", settings.models.dir]
    if settings.outgoing.maildir is not None:
        candidates.append(settings.outgoing.maildir)
    found: list[Path] = []
    for path in candidates:
        if path.is_dir() and not path.is_symlink() and path not in found:
            found.append(path)
    return found


def private_files(settings: Settings) -> list[Path]:
    """Files of the desk that may sit outside its data directories: database, log, configuration."""
    files: list[Path] = []
    database = sqlite_file(settings.database.url)
    if database is not None:
        files += [database, *(database.with_name(database.name + s) for s in SQLITE_COMPANIONS)]
    if settings.logging.file is not None:
        files.append(settings.logging.file)
    if settings.path is not None:
        files.append(settings.path)
    return files


def _walk(directory: Path) -> Iterator[os.DirEntry[str]]:
    """Every entry under `directory`, not following symbolic links."""
    try:
        entries = list(os.scandir(directory))
    except OSError as exc:
        log.warning("cannot list %s to check its modes: %s", directory, exc)
        return
    for entry in entries:
        yield entry
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path))


def _tighten(path: Path, current: int, changed: list[Tightened]) -> None:
    wanted = current & ~NOT_OURS
    if wanted == current:
        return
    try:
        os.chmod(path, wanted, follow_symlinks=False)
    except OSError as exc:  # another user's file: say so, the desk still starts
        log.warning("CANNOT TIGHTEN %s (mode %04o): %s", path, current, exc)
        return
    changed.append(Tightened(path, current, wanted))


def tighten(directories: Iterable[Path], files: Iterable[Path]) -> list[Tightened]:
    """Take group and other permissions off `directories` (with everything in them) and `files`."""
    changed: list[Tightened] = []
    for directory in directories:
        info = directory.lstat()
        if info.st_mode & stat.S_ISVTX:
            log.warning("not tightening %s: a shared directory (sticky bit set)", directory)
            continue
        _tighten(directory, stat.S_IMODE(info.st_mode), changed)
        for entry in _walk(directory):
            if entry.is_symlink():
                continue
            try:
                current = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
            except FileNotFoundError:  # gone meanwhile (a maildir file moved to cur/)
                continue
            _tighten(Path(entry.path), current, changed)
    for path in files:
        try:
            info = path.lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(info.st_mode):
            _tighten(path, stat.S_IMODE(info.st_mode), changed)
    return changed


def secure_desk(settings: Settings) -> list[Tightened]:
    """Tighten an existing desk (its data directories and private files) and log each change."""
    directories = data_directories(settings)
    files = [f for f in private_files(settings) if not any(f.is_relative_to(d) for d in directories)]
    changed = tighten(directories, files)
    for item in changed[:LOGGED_ONE_BY_ONE]:
        log.warning(
            "TIGHTENED %s from %04o to %04o: it was open to other users", item.path, item.before, item.after
        )
    if len(changed) > LOGGED_ONE_BY_ONE:
        log.warning("TIGHTENED %d more files and directories the same way", len(changed) - LOGGED_ONE_BY_ONE)
    return changed


def private_directory(path: Path) -> None:
    """Create `path` (and missing parents) 0700; an existing directory is left as it is."""
    if path.is_dir():
        return
    private_directory(path.parent)
    try:
        path.mkdir(mode=PRIVATE_DIR)
    except FileExistsError:
        return
    os.chmod(path, PRIVATE_DIR)  # mkdir's mode passes through the umask; this does not


def private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists (then it keeps its content and mode)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        return
    os.close(fd)
