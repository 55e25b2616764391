"""What both private servers need: short temp dirs, privilege handling, their logs.

Dovecot and PostgreSQL both refuse to run their workers as root, and both put unix sockets
under their run directory; a socket path must fit in `sun_path` (108 bytes on Linux), so temp
dirs stay short.
"""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from pathlib import Path

# Room for a base dir plus e.g. "/run/login/imap-login" or "/.s.PGSQL.54321" inside sun_path.
_MAX_TEMP_PREFIX = 40


class ServerUnavailable(RuntimeError):
    """A server binary (or the account it must run as) is missing on this machine."""


def is_root() -> bool:
    return os.geteuid() == 0


def account(name: str) -> pwd.struct_passwd:
    """The passwd entry of a system account the server needs when we run as root."""
    try:
        return pwd.getpwnam(name)
    except KeyError as exc:
        raise ServerUnavailable(f"system user {name!r} does not exist") from exc


def current_account() -> pwd.struct_passwd:
    return pwd.getpwuid(os.geteuid())


def short_tempdir(prefix: str) -> Path:
    """A fresh temp dir whose path is short enough for unix sockets below it, readable by all.

    0755 because the servers' unprivileged helpers (dovecot/dovenull, postgres) must traverse it.
    """
    base = tempfile.gettempdir()
    if len(base) > _MAX_TEMP_PREFIX:
        base = "/tmp"
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    path.chmod(0o755)
    return path


def chown(path: Path, user: pwd.struct_passwd) -> None:
    if is_root():
        os.chown(path, user.pw_uid, user.pw_gid)


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
