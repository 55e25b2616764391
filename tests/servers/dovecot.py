"""A private Dovecot IMAP server for tests: its own config, users, Maildirs and ports, in a temp dir.

Nothing under /etc/dovecot, /run/dovecot or /var/lib/dovecot is read or written: `base_dir` and
`state_dir` point into the temp dir. Facts about Dovecot 2.3 that shape this file:

* It will not let uid 0 own mail ("userdb returned 0 as uid"); as root the Maildirs belong to the
  unprivileged `mail` account, otherwise to whoever runs the tests.
* Its auth and login processes run as `dovecot`/`dovenull` and must traverse the temp dir (0755).
* Unix socket paths must fit in 108 bytes, hence a short temp dir.
* The master keeps the stdio it was started with, so it writes to a file, never to a pipe a caller
  waits on. We run it in the foreground (`-F`) as our own child in a new session, so stopping it
  never depends on a pid file and killing the session takes every helper process with it.
* It tells an idling client about an APPEND up to about 0.5 s later. It starts in a few
  hundredths of a second; a graceful stop takes one to a few seconds (a kill is immediate).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import ssl
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import IO

from imapclient import IMAPClient

from tests.loopback import LOOPBACK, free_port, port_open, wait_until
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

DEFAULT_USERS: Mapping[str, str] = {
    "alice": "alice-secret",
    "bob": "bob-secret",
    "carol": "carol-secret",
}
_USER = re.compile(r"^[A-Za-z0-9._@+-]+$")
_APPENDUID = re.compile(rb"APPENDUID (\d+) (\d+)")
# MULTIAPPEND (RFC 3502) sends many mails in one command; chunks keep each command a few MB.
_APPEND_CHUNK = 100


def find_binary(name: str) -> str:
    """A Dovecot binary: on PATH, or in /usr/sbin and /usr/bin which a non-root PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise ServerUnavailable(
            f"Dovecot is not installed (no `{name}`); install the Debian package `dovecot-imapd` "
            "(make system-deps does it as root)"
        )
    return found


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1 (EC keys: generated in milliseconds)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise ServerUnavailable("the `openssl` command is missing; it makes the test server's certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "7", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=60,
    )  # fmt: skip
    key.chmod(0o600)
    return cert, key


class DovecotServer:
    """A private Dovecot: `start()`, then IMAP on `imap_port` (plain) and `imaps_port` (TLS).

    `capabilities`, when given, replaces what the server announces after login (RFC 3501
    CAPABILITY), to stand in for servers without IDLE, MOVE or UIDPLUS; the commands still work,
    but a well-behaved client does not use what is not announced.
    """

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        *,
        capabilities: Sequence[str] | None = None,
        extra_config: str = "",
    ) -> None:
        self.dovecot = find_binary("dovecot")
        self.doveadm = find_binary("doveadm")
        self._mail_owner = account("mail") if is_root() else current_account()
        self.users: dict[str, str] = {}
        for user, password in (users or DEFAULT_USERS).items():
            self._check_user(user, password)
            self.users[user] = password
        self.capabilities = tuple(capabilities) if capabilities is not None else None
        self.extra_config = extra_config
        self.host = LOOPBACK
        self.imap_port = 0
        self.imaps_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None
        self._users_stamp = 0
        self.root = short_tempdir("hdimap-")
        try:
            self.cert_file, self.key_file = make_certificate(self.root)
            for sub in ("run", "state", "home"):
                (self.root / sub).mkdir()
            chown(self.root / "home", self._mail_owner)
            self._write_users()
        except BaseException:
            remove_tree(self.root)
            raise

    # -- configuration ---------------------------------------------------------------------------

    @property
    def config_file(self) -> Path:
        return self.root / "dovecot.conf"

    @property
    def log_file(self) -> Path:
        return self.root / "dovecot.log"

    @property
    def users_file(self) -> Path:
        return self.root / "users"

    @staticmethod
    def _check_user(user: str, password: str) -> None:
        if not _USER.match(user):
            raise ValueError(f"user name {user!r}: letters, digits and . _ @ + - only")
        if ":" in password or "\n" in password:
            raise ValueError("a password may not contain ':' or a newline (passwd-file format)")

    def _write_users(self) -> None:
        owner = self._mail_owner
        lines = [
            f"{user}:{{PLAIN}}{password}:{owner.pw_uid}:{owner.pw_gid}::{self.root / 'home' / user}::\n"
            for user, password in self.users.items()
        ]
        tmp = self.users_file.with_suffix(".tmp")
        tmp.write_text("".join(lines))
        tmp.chmod(0o644)  # read by the auth process, which runs as `dovecot`
        tmp.replace(self.users_file)
        # Dovecot re-reads a passwd-file when its mtime or size changes; mtime has a one-second
        # resolution, so each rewrite gets a later stamp than the last one.
        self._users_stamp = max(self._users_stamp + 1, int(time.time()))
        os.utime(self.users_file, (self._users_stamp, self._users_stamp))
        if self.running:
            # ...and it looks at the file at most once a second: let that second pass.
            time.sleep(1.05 - time.time() % 1)

    def _config_text(self) -> str:
        owner = self._mail_owner
        lines = [
            f"base_dir = {self.root / 'run'}",
            f"state_dir = {self.root / 'state'}",
            f"instance_name = {self.root.name}",
            "protocols = imap",
            f"listen = {self.host}",
            f"log_path = {self.log_file}",
            "ssl = yes",
            f"ssl_cert = <{self.cert_file}",
            f"ssl_key = <{self.key_file}",
            "disable_plaintext_auth = no",
            "auth_mechanisms = plain login xoauth2",
            "auth_failure_delay = 0",
            f"first_valid_uid = {owner.pw_uid}",
            "mail_location = maildir:~/Maildir",
            # Tests open many connections per user; the default of 10 would refuse some.
            "mail_max_userip_connections = 1000",
            "passdb {",
            "  driver = passwd-file",
            f"  args = scheme=PLAIN username_format=%u {self.users_file}",
            "}",
            "userdb {",
            "  driver = passwd-file",
            f"  args = username_format=%u {self.users_file}",
            "}",
            "service imap-login {",
            "  inet_listener imap {",
            f"    address = {self.host}",
            f"    port = {self.imap_port}",
            "  }",
            "  inet_listener imaps {",
            f"    address = {self.host}",
            f"    port = {self.imaps_port}",
            "    ssl = yes",
            "  }",
        ]
        if not is_root():
            lines += ["  chroot =", "}", "service anvil {", "  chroot ="]
        lines.append("}")
        if not is_root():
            me = current_account()
            lines += [
                f"default_internal_user = {me.pw_name}",
                f"default_login_user = {me.pw_name}",
                f"default_internal_group = {me.pw_gid}",
            ]
        if self.capabilities is not None:
            lines.append(f"imap_capability = {' '.join(self.capabilities)}")
        lines.append(self.extra_config)
        return "\n".join(lines) + "\n"

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        """Start on free ports (the same ports again after a stop); retried if a port was taken."""
        if self.running:
            return
        keep_ports = self.imap_port != 0
        for attempt in range(3):
            if not keep_ports:
                self.imap_port, self.imaps_port = free_port(), free_port()
                if self.imap_port == self.imaps_port:
                    continue
            self.config_file.write_text(self._config_text())
            self._spawn()
            if wait_until(self._ready, timeout=15):
                return
            output = self._stop_process(graceful=False)
            if "Address already in use" in output and not keep_ports and attempt < 2:
                continue
            raise RuntimeError(f"dovecot did not start:\n{output}\n{tail(self.log_file)}")

    def _spawn(self) -> None:
        self._output = (self.root / "master.out").open("ab")
        self._process = subprocess.Popen(
            [self.dovecot, "-F", "-c", str(self.config_file)],
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )

    def _ready(self) -> bool:
        if self._process is None or self._process.poll() is not None:
            return True  # exited: stop waiting, start() looks at why
        return port_open(self.imap_port) and port_open(self.imaps_port)

    def _stop_process(self, *, graceful: bool) -> str:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None and graceful:
                process.terminate()  # the master says BYE to clients and stops its helpers
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    pass
            try:
                os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the session
            except ProcessLookupError:
                pass
            process.wait(timeout=15)
        if self._output is not None:
            self._output.close()
            self._output = None
        wait_until(lambda: not port_open(self.imap_port), timeout=5)
        return tail(self.root / "master.out")

    def stop(self, *, graceful: bool = True) -> None:
        """Stop the server: gracefully (clients get BYE; one to a few seconds) or by killing it (EOF)."""
        self._stop_process(graceful=graceful)

    def restart(self, *, graceful: bool = True) -> None:
        self.stop(graceful=graceful)
        self.start()

    def close(self) -> None:
        """Kill the server and delete its files."""
        self._stop_process(graceful=False)
        remove_tree(self.root)

    def __enter__(self) -> DovecotServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    # -- users and mail, as a client would do it ---------------------------------------------------

    def set_password(self, user: str, password: str) -> None:
        self._check_user(user, password)
        if user not in self.users:
            raise KeyError(user)
        self.users[user] = password
        self._write_users()

    def add_user(self, user: str, password: str) -> None:
        self._check_user(user, password)
        self.users[user] = password
        self._write_users()

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's certificate (and checks the host name)."""
        return ssl.create_default_context(cafile=str(self.cert_file))

    def connect(self, user: str, *, tls: bool = False) -> IMAPClient:
        """A logged-in imapclient connection as `user` (plain IMAP, or IMAPS with `tls`)."""
        if tls:
            client = IMAPClient(
                self.host, self.imaps_port, ssl=True, ssl_context=self.ssl_context(), timeout=30
            )
        else:
            client = IMAPClient(self.host, self.imap_port, ssl=False, timeout=30)
        client.login(user, self.users[user])
        return client

    def _ensure_folder(self, client: IMAPClient, folder: str) -> None:
        if folder.upper() != "INBOX" and not client.folder_exists(folder):
            client.create_folder(folder)

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        *,
        internal_date: datetime | None = None,
        flags: Sequence[bytes | str] = (),
    ) -> int:
        """APPEND one mail (creating the folder if needed); returns its UID (RFC 4315 APPENDUID)."""
        with self.connect(user) as client:
            self._ensure_folder(client, folder)
            response = client.append(folder, raw, flags=flags, msg_time=internal_date)
        match = _APPENDUID.search(response if isinstance(response, bytes) else str(response).encode())
        return int(match.group(2)) if match else 0

    def append_many(
        self, user: str, folder: str, mails: Iterable[bytes], *, internal_date: datetime | None = None
    ) -> int:
        """APPEND many mails over one connection with MULTIAPPEND (RFC 3502); returns how many."""
        count = 0
        with self.connect(user) as client:
            self._ensure_folder(client, folder)
            if not client.has_capability("MULTIAPPEND"):  # announced capabilities narrowed
                for raw in mails:
                    client.append(folder, raw, msg_time=internal_date)
                    count += 1
                return count
            chunk: list[dict[str, object]] = []
            for raw in mails:
                item: dict[str, object] = {"msg": raw}
                if internal_date is not None:
                    item["date"] = internal_date
                chunk.append(item)
                if len(chunk) >= _APPEND_CHUNK:
                    client.multiappend(folder, chunk)
                    count += len(chunk)
                    chunk = []
            if chunk:
                client.multiappend(folder, chunk)
                count += len(chunk)
        return count

    def uidvalidity(self, user: str, folder: str = "INBOX") -> int:
        with self.connect(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def flags(self, user: str, folder: str = "INBOX") -> dict[int, tuple[bytes, ...]]:
        """UID -> flags of every mail in a folder (empty when the folder does not exist)."""
        with self.connect(user) as client:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                return {}
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                return {}
            return {int(uid): tuple(item[b"FLAGS"]) for uid, item in client.fetch(uids, ["FLAGS"]).items()}

    def recreate_mailbox(self, user: str, folder: str = "INBOX", *, uidvalidity: int | None = None) -> int:
        """Delete and re-create a folder with the same mails, flags and dates: a new UIDVALIDITY.

        RFC 3501 forbids deleting INBOX, so INBOX is emptied and given a new UIDVALIDITY with
        `doveadm mailbox update` before the mails go back in; that is also how `uidvalidity`
        chooses the new value (any folder). Dovecot disconnects every client that had the folder
        selected ("IMAP session state is inconsistent").
        """
        with self.connect(user) as client:
            client.normalise_times = False  # keep each INTERNALDATE's own zone
            status = client.select_folder(folder)
            old = int(status[b"UIDVALIDITY"])
            uids = client.search(["ALL"])
            mails = client.fetch(uids, ["BODY.PEEK[]", "INTERNALDATE", "FLAGS"]) if uids else {}
            if folder.upper() == "INBOX":
                if uids:
                    client.add_flags(uids, [b"\\Deleted"], silent=True)
                    client.expunge()
                client.logout()
            else:
                client.close_folder()
                client.delete_folder(folder)
                client.create_folder(folder)
        if folder.upper() == "INBOX" or uidvalidity is not None:
            new_value = uidvalidity if uidvalidity is not None else max(old + 1, int(time.time()))
            subprocess.run(
                [self.doveadm, "-c", str(self.config_file), "mailbox", "update", "-u", user,
                 "--uid-validity", str(new_value), folder],
                check=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=60,
            )  # fmt: skip
        with self.connect(user) as client:
            for uid in sorted(mails):
                item = mails[uid]
                flags = [flag for flag in item[b"FLAGS"] if flag != b"\\Recent"]
                client.append(folder, item[b"BODY[]"], flags=flags, msg_time=item[b"INTERNALDATE"])
            new = int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])
        if new == old:
            raise RuntimeError(f"UIDVALIDITY of {user}/{folder} did not change ({old})")
        return new
