"""A helpdesk installed as an administrator installs it behind an MTA, for the Postfix tests.

Its files belong to an account of their own, as `deploy/mta.md` asks of the `helpdesk` user:
`helpdesk serve` and the `helpdesk ingest` that Postfix's pipe runs both run as that account.
As root (the only way a private Postfix runs) the account is `nobody`, an unprivileged account
every Debian system has; the `helpdesk` command it runs is a small launcher on the system's
Python of our version, since the interpreter of the tests may lie where that account cannot
reach (root's home). The test process reads the desk only through the command line run as
that account: opening the SQLite database as root would leave root's journal files beside it.

The configuration and the MTA lines come from `deploy/mta.md` (`mta_blocks`), with the few
words that name a place on a real system put in their test place (`places`); `set_up` gives
them to a private Postfix and to the desk for one way of the notes (`MODES`).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from collections.abc import Mapping
from email import message_from_bytes
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from helpdesk.settings.reader import toml_value
from models.db import DatabaseConfig, create_db_engine, migrate
from tests.conftest import REPO_ROOT
from tests.loopback import free_port, port_open, wait_until
from tests.mail import SUPPORT
from tests.servers.common import account, current_account, is_root, remove_tree, short_tempdir
from tests.servers.postfix import PostfixServer

MTA_NOTES = REPO_ROOT / "deploy" / "mta.md"
# A block of deploy/mta.md that the tests run: an HTML comment naming it, then a fenced block.
_BLOCK = re.compile(r"<!-- mta-test: (?P<name>[\w.-]+) -->\n```[a-z]*\n(?P<body>.*?)```", re.S)
START_TIMEOUT = 60.0


def mta_blocks() -> dict[str, str]:
    """The marked blocks of deploy/mta.md, by name."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(MTA_NOTES.read_text())}


def substitute(text: str, places: Mapping[str, str]) -> str:
    """`text` with each word of a real system in its test place; every word must occur in some
    block, which the caller checks, so the notes cannot drift from what is tested."""
    for word, place in places.items():
        text = text.replace(word, place)
    return text


def desk_account() -> pwd.struct_passwd:
    return account("nobody") if is_root() else current_account()


class MtaDesk:
    """A desk in a temp dir, owned by `desk_account()`, configured with `toml` besides the basics."""

    def __init__(self, toml: str = "") -> None:
        self.owner = desk_account()
        self.root = short_tempdir("hddesk-")
        self.config = self.root / "helpdesk.toml"
        self.smtp_port = free_port()
        self.lmtp_port = free_port()
        self.launcher = self.root / "bin" / "helpdesk"
        self.sent = self.root / "var" / "sent"
        self.log = self.root / "var" / "helpdesk.log"
        self._serve: subprocess.Popen[bytes] | None = None
        self._write_launcher()
        self.write_config(toml)
        engine = create_db_engine(DatabaseConfig(url=f"sqlite:///{self.root / 'var' / 'helpdesk.db'}"))
        migrate(engine)
        engine.dispose()
        self.own()

    def _write_launcher(self) -> None:
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        system = Path(f"/usr/bin/python{version}")
        python = system if is_root() and system.exists() else Path(sys.executable)
        site = next(p for p in sys.path if p.endswith("site-packages"))
        self.launcher.parent.mkdir()
        self.launcher.write_text(
            f"#!{python}\n"
            "import site, sys\n"
            f"site.addsitedir({site!r})\n"
            f"sys.path.insert(0, {str(REPO_ROOT)!r})\n"
            "from helpdesk.cli import main\n"
            "sys.exit(main())\n"
        )
        self.launcher.chmod(0o755)

    def write_config(self, toml: str) -> None:
        lines = [
            "[mail]",
            f"address = {toml_value(SUPPORT)}",
            'secret = "mta-test-secret"',
            'instance = "helpdesk-mta-test"',
            "[database]",
            'url = "sqlite:///var/helpdesk.db"',
            'sqlite_synchronous = "NORMAL"',
            "[outgoing]",
            'url = "maildir:var/sent"',
            "[web]",
            'listen = ""',
            "[logging]",
            'file = "var/helpdesk.log"',
            "[limits]",
            "automatic_per_hour = 1000000",
            "automatic_per_domain_per_hour = 1000000",
            "[intake]",
            "processing_budget = 0",
        ]
        text = "\n".join(lines) + "\n" + toml
        # Each section once: the notes' [smtp] lines get the listener's port added.
        if "[smtp]" in text:
            text = text.replace(
                "[smtp]\n", f"[smtp]\nlisten = {toml_value(f'127.0.0.1:{self.smtp_port}')}\n", 1
            )
        else:
            text += f"[smtp]\nlisten = {toml_value(f'127.0.0.1:{self.smtp_port}')}\n"
        self.config.write_text(text)
        self.config.chmod(0o600)

    def own(self) -> None:
        """Give every file of the desk to its account (the launcher stays root's)."""
        for path in [self.root, *self.root.rglob("*")]:
            if path != self.launcher and path != self.launcher.parent:
                os.chown(path, self.owner.pw_uid, self.owner.pw_gid, follow_symlinks=False)
        self.root.chmod(0o755)  # Postfix's pipe and the tests reach the configuration's directory

    # -- processes, as the desk's account --------------------------------------------------------

    def _as_owner(self) -> dict[str, Any]:
        if not is_root():
            return {}
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/bin:/bin",
            "HOME": str(self.root),
            "LANG": "C.UTF-8",
        }

    def cli(
        self, *args: str, stdin: bytes | None = None, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [str(self.launcher), "--config", str(self.config), *args],
            input=stdin if stdin is not None else b"",
            capture_output=True,
            env=self._env(),
            cwd=self.root,
            timeout=timeout,
            check=False,
            **self._as_owner(),
        )

    def serve(self) -> None:
        out = (self.root / "serve.out").open("ab")
        self._serve = subprocess.Popen(
            [str(self.launcher), "--config", str(self.config), "serve"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=self._env(),
            cwd=self.root,
            **self._as_owner(),
        )
        out.close()
        proc = self._serve

        def ready() -> bool:
            assert proc.poll() is None, f"helpdesk serve exited early:\n{self.serve_output()}"
            return port_open(self.smtp_port)

        assert wait_until(ready, START_TIMEOUT, 0.1), f"helpdesk serve did not listen:\n{self.serve_output()}"

    def serve_output(self) -> str:
        path = self.root / "serve.out"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self._serve is not None and self._serve.poll() is None:
            self._serve.terminate()
            try:
                self._serve.wait(30)
            except subprocess.TimeoutExpired:
                self._serve.kill()
                self._serve.wait(30)
        self._serve = None

    def close(self) -> None:
        self.stop()
        remove_tree(self.root)

    # -- what came out ---------------------------------------------------------------------------

    def tickets(self) -> list[dict[str, Any]]:
        done = self.cli("tickets", "list", "--all", "--json")
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        found: list[dict[str, Any]] = json.loads(done.stdout)
        return found

    def sent_files(self) -> list[Path]:
        return sorted(
            p for sub in ("new", "cur") if (self.sent / sub).is_dir() for p in (self.sent / sub).iterdir()
        )

    def wait_acks(self, count: int, timeout: float = 60.0) -> list[Path]:
        assert wait_until(lambda: len(self.sent_files()) >= count, timeout, 0.1), (
            f"{len(self.sent_files())} of {count} acknowledgments\n{self.serve_output()[-3000:]}"
        )
        return self.sent_files()

    def reply_address(self, ack: Path) -> str:
        """The signed reply address (Reply-To) of an acknowledgment."""
        ((_, address),) = getaddresses([str(message_from_bytes(ack.read_bytes())["Reply-To"])])
        return address


MODES = ("smtp", "lmtp", "lmtp-unix", "pipe")
# `install -d -o helpdesk -g helpdesk -m 0755 DIR`, the one shell line of the notes that is run.
_INSTALL_DIR = re.compile(r"^install -d -o helpdesk -g helpdesk -m 0755 (?P<dir>\S+)$")


def places(postfix: PostfixServer, desk: MtaDesk) -> dict[str, str]:
    """Each word of deploy/mta.md that names a place on a real system, and its place here."""
    return {
        "/etc/postfix/": f"{postfix.config_dir}/",
        "127.0.0.1]:2525": f"127.0.0.1]:{desk.smtp_port}",
        "127.0.0.1:2424": f"127.0.0.1:{desk.lmtp_port}",
        "/opt/helpdesk/.venv/bin/helpdesk": str(desk.launcher),
        "/etc/helpdesk/helpdesk.toml": str(desk.config),
        "/var/spool/postfix/": f"{postfix.queue_dir}/",
        "user=helpdesk": f"user={desk.owner.pw_name}",
    }


def set_up(postfix: PostfixServer, desk: MtaDesk, mode: str, **changed: str) -> None:
    """Postfix and the desk configured for `mode` with the lines of deploy/mta.md (and words of
    them `changed`, for a test that needs a value of its own)."""
    blocks = mta_blocks()
    words = places(postfix, desk)
    for word in changed:
        assert word in "".join(blocks.values()), word
    words.update(changed)
    used = {
        "main.cf": blocks["main.cf"],
        "helpdesk_recipients": blocks["helpdesk_recipients"],
        "transport": blocks[f"transport-{mode}"],
        "helpdesk.toml": blocks["helpdesk.toml"] + blocks.get(f"helpdesk.toml-{mode}", ""),
        "master.cf": blocks["master.cf-pipe"] if mode == "pipe" else "",
    }
    every = "".join(blocks.values())
    for word in words:
        assert word in every, f"deploy/mta.md no longer names {word!r}: the tests cannot follow it"
    desk.write_config(substitute(used["helpdesk.toml"], words))
    desk.own()
    for line in substitute(blocks.get(f"install-{mode}", ""), words).splitlines():
        match = _INSTALL_DIR.match(line)
        assert match, f"deploy/mta.md: a line the tests cannot run: {line}"
        directory = Path(match["dir"])
        directory.mkdir(mode=0o755)
        os.chown(directory, desk.owner.pw_uid, desk.owner.pw_gid)
    postfix.configure(
        main_cf=substitute(used["main.cf"], words).splitlines(),
        master_cf=substitute(used["master.cf"], words).splitlines(),
        maps={
            "helpdesk_recipients": substitute(used["helpdesk_recipients"], words),
            "transport": substitute(used["transport"], words),
        },
    )
    assert postfix.check() == ""
