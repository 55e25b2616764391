"""A throwaway PostgreSQL cluster for tests: initdb into a temp dir, one fresh database per test.

PostgreSQL refuses to run as root, and CI runs as root, so the cluster belongs to the `postgres`
account there (`runuser -u postgres -- ...`); anyone else runs it as themselves. It listens on
127.0.0.1 on a free port with trust authentication for loopback connections, and on a unix
socket inside its temp dir, never the system one. Durability is switched off (fsync,
synchronous_commit, full_page_writes): a crash loses nothing a test cares about, and a cluster
starts in about a second and a half, a database is created in under a tenth of a second.
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from tests.loopback import LOOPBACK, free_port
from tests.servers.common import (
    ServerUnavailable,
    account,
    chown,
    current_account,
    is_root,
    remove_tree,
    short_tempdir,
    tail,
)

SUPERUSER = "postgres"
# The Debian layout; every installed major version has its own bin dir.
DEBIAN_BIN_GLOB = "/usr/lib/postgresql/*/bin"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "log_min_messages": "warning",
}


def _version(bin_dir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def find_bin_dir() -> Path:
    """The bin dir of the newest PostgreSQL installed (Debian layout first, then PATH)."""
    for bin_dir in sorted((Path(p) for p in glob.glob(DEBIAN_BIN_GLOB)), key=_version, reverse=True):
        if (bin_dir / "initdb").is_file() and (bin_dir / "pg_ctl").is_file():
            return bin_dir
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    raise ServerUnavailable(
        f"PostgreSQL is not installed (no initdb in {DEBIAN_BIN_GLOB} or on PATH); "
        "install the Debian package `postgresql` (make system-deps does it as root)"
    )


class PostgresCluster:
    """A private PostgreSQL cluster: `start()`, `create_database()` per test, `close()`."""

    def __init__(self, bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or find_bin_dir()
        if is_root():
            if shutil.which("runuser") is None:
                raise ServerUnavailable("running as root but `runuser` (util-linux) is missing")
            self._owner = account(SUPERUSER)
        else:
            self._owner = current_account()
        self.host = LOOPBACK
        self.port = 0
        self.root: Path | None = None
        self._admin: psycopg.Connection[tuple[object, ...]] | None = None
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        self._running = False

    @property
    def data_dir(self) -> Path:
        return self._root / "data"

    @property
    def socket_dir(self) -> Path:
        return self._root / "sock"

    @property
    def log_file(self) -> Path:
        return self._root / "postgres.log"

    @property
    def _root(self) -> Path:
        if self.root is None:
            raise RuntimeError("the cluster has not been started")
        return self.root

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(self.bin_dir / args[0]), *args[1:]]
        if is_root():
            command = ["runuser", "-u", self._owner.pw_name, "--", *command]
        result = subprocess.run(
            command,
            cwd=self._root,  # the owner may not be able to read our working directory
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout.strip()}\n"
                f"{tail(self.log_file)}"
            )
        return result

    def start(self, *, port: int | None = None) -> None:
        """initdb (first time only) and start on a free port (retried when it was taken), or on `port`:
        the one it had, to start a stopped cluster again where its clients look for it."""
        if self._running:
            return
        if self.root is None:
            self.root = short_tempdir("hdpg-")
            chown(self.root, self._owner)
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",  # loopback and the private socket only
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            )
            self.socket_dir.mkdir()
            chown(self.socket_dir, self._owner)
        for attempt in range(3):
            self.port = port or free_port()
            self._write_settings()
            data, log = str(self.data_dir), str(self.log_file)
            result = self._run("pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start", check=False)
            if result.returncode == 0:
                self._running = True
                return
            if "already in use" not in tail(self.log_file, 10) or attempt == 2 or port:
                raise RuntimeError(f"pg_ctl start failed: {result.stderr.strip()}\n{tail(self.log_file)}")

    def _write_settings(self) -> None:
        settings = dict(_SETTINGS)
        settings.update(
            listen_addresses=f"'{self.host}'",
            port=str(self.port),
            unix_socket_directories=f"'{self.socket_dir}'",
        )
        # postgresql.auto.conf is read last, so it overrides whatever initdb wrote.
        path = self.data_dir / "postgresql.auto.conf"
        path.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()))
        chown(path, self._owner)

    def stop(self) -> None:
        with self._lock:
            if self._admin is not None:
                self._admin.close()
                self._admin = None
        if self._running:
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop", check=False)
            self._running = False

    def close(self) -> None:
        """Stop the cluster and delete its files."""
        self.stop()
        if self.root is not None:
            remove_tree(self.root)
            self.root = None

    def __enter__(self) -> PostgresCluster:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def url(self, database: str = SUPERUSER) -> str:
        """The SQLAlchemy URL of a database of this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def _admin_connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(
                host=self.host, port=self.port, user=SUPERUSER, dbname=SUPERUSER, autocommit=True
            )
        return self._admin

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a generated name by default) and return its SQLAlchemy URL."""
        if name is None:
            name = f"test_{os.getpid()}_{next(self._counter)}"
        if not _NAME.match(name):
            raise ValueError(f"database name {name!r}: use lower-case letters, digits and _")
        with self._lock:
            self._admin_connection().execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, closing whatever connections a test left open to it."""
        with self._lock:
            self._admin_connection().execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
