"""A private Postfix for tests: its own config, queue and data directories in a temp dir, loopback only.

Nothing under /etc/postfix, /var/spool/postfix or /var/lib/postfix is read or written, and the
system's service is never started: `postfix -c DIR start` runs a master of our own whose
`config_directory`, `queue_directory` and `data_directory` point into the temp dir, with SMTP on
one free loopback port. Facts about Postfix 3.7 (the Debian package) that shape this file:

* The master runs as root and its daemons as `mail_owner` (`postfix`), with the `postdrop`
  group for the queue's public directories: both are made by the package. Without root there is
  no private Postfix; the tests that need one skip loudly (fail under CI=true).
* `postfix start` checks and creates the queue's directories itself (post-install), and writes
  its log to `maillog_file` through the `postlog` service, so the log is a file of the temp dir.
* Nothing is chrooted here (every service has `n` in master.cf's chroot column), unlike Debian's
  own master.cf: a chrooted daemon would not see the temp dir's files or sockets.
* `postqueue -j` lists the queue as JSON, one object a line; `postqueue -f` flushes it.
* It starts in about a second; `postfix stop` takes a second or two.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import smtplib
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.loopback import LOOPBACK, free_port, port_open, wait_until
from tests.servers.common import ServerUnavailable, account, is_root, remove_tree, short_tempdir, tail

# The services of Debian's master.cf that a relay needs, none chrooted. The SMTP server is added
# on its loopback port; the transports a test needs (pipe) come from the test's own lines.
BASE_SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""
START_TIMEOUT = 30.0


def find_binary(name: str) -> str:
    """A Postfix command: on PATH, or in /usr/sbin which a non-root PATH may lack."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise ServerUnavailable(
            f"Postfix is not installed (no `{name}`); install the Debian package `postfix` "
            "(make system-deps does it as root, never starting the system's service)"
        )
    return found


class PostfixServer:
    """A private Postfix: `configure(...)`, `start()`, then SMTP on `smtp_port` (loopback only)."""

    def __init__(self, myhostname: str = "mx.example.test") -> None:
        self.postfix = find_binary("postfix")
        self.postmap = find_binary("postmap")
        self.postqueue = find_binary("postqueue")
        self.postconf = find_binary("postconf")
        if not is_root():
            raise ServerUnavailable("a private Postfix needs root (its master runs as root)")
        account("postfix")  # the package's mail_owner
        self.myhostname = myhostname
        self.smtp_port = free_port()
        self.root = short_tempdir("hdpfx-")
        self.config_dir = self.root / "etc"
        self.queue_dir = self.root / "spool"
        self.data_dir = self.root / "lib"
        for directory in (self.config_dir, self.queue_dir, self.data_dir):
            directory.mkdir()
        os.chown(self.data_dir, account("postfix").pw_uid, account("postfix").pw_gid)
        self.configure()

    @property
    def log_file(self) -> Path:
        return self.root / "maillog"

    @property
    def version(self) -> str:
        done = subprocess.run([self.postconf, "-d", "-h", "mail_version"], capture_output=True, text=True)
        return done.stdout.strip()

    # -- configuration ---------------------------------------------------------------------------

    def base_main_cf(self) -> list[str]:
        return [
            "compatibility_level = 3.6",
            f"config_directory = {self.config_dir}",
            f"queue_directory = {self.queue_dir}",
            f"data_directory = {self.data_dir}",
            f"maillog_file_prefixes = {self.root}",
            f"maillog_file = {self.log_file}",
            f"myhostname = {self.myhostname}",
            "mydomain = example.test",
            "mydestination =",
            "inet_interfaces = loopback-only",
            "inet_protocols = ipv4",
            "mynetworks = 127.0.0.0/8",
            "smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
            "alias_maps =",
            "alias_database =",
            "biff = no",
            "smtp_dns_support_level = disabled",
            # Retries come within seconds, not the 5 minutes of a real queue; a test waits for them.
            "queue_run_delay = 1s",
            "minimal_backoff_time = 1s",
            "maximal_backoff_time = 2s",
            "delay_warning_time = 0h",
        ]

    def configure(
        self,
        main_cf: Sequence[str] = (),
        master_cf: Sequence[str] = (),
        maps: Mapping[str, str] | None = None,
    ) -> None:
        """Write main.cf (ours, then `main_cf`), master.cf (ours, then `master_cf`) and each map file
        of `maps` (name -> text, compiled with postmap); a running server reloads them."""
        lines = self.base_main_cf() + list(main_cf)
        (self.config_dir / "main.cf").write_text("\n".join(lines) + "\n")
        smtpd = f"{LOOPBACK}:{self.smtp_port} inet n - n - - smtpd\n"
        (self.config_dir / "master.cf").write_text(
            smtpd + BASE_SERVICES + "".join(f"{line}\n" for line in master_cf)
        )
        for name, text in (maps or {}).items():
            path = self.config_dir / name
            path.write_text(text)
            self._run(self.postmap, "-c", str(self.config_dir), str(path))
        if self.running:
            self._run(self.postfix, "-c", str(self.config_dir), "reload")

    def check(self) -> str:
        """What `postfix check` says of the configuration (empty when it finds nothing)."""
        done = subprocess.run(
            [self.postfix, "-c", str(self.config_dir), "check"], capture_output=True, text=True, timeout=60
        )
        return (done.stdout + done.stderr).strip()

    def postconf_value(self, name: str) -> str:
        done = self._run(self.postconf, "-c", str(self.config_dir), "-h", name)
        return done.stdout.strip()

    def _run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout}{done.stderr}\n{self.log_text()}"
            )
        return done

    # -- life cycle ------------------------------------------------------------------------------

    def master_pid(self) -> int | None:
        try:
            pid = int((self.queue_dir / "pid" / "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    @property
    def running(self) -> bool:
        return self.master_pid() is not None

    def start(self) -> None:
        if self.running:
            return
        self._run(self.postfix, "-c", str(self.config_dir), "start")
        if not wait_until(lambda: port_open(self.smtp_port), timeout=START_TIMEOUT):
            raise RuntimeError(f"postfix did not start listening on {self.smtp_port}:\n{self.log_text()}")

    def stop(self) -> None:
        pid = self.master_pid()
        if pid is None:
            return
        subprocess.run([self.postfix, "-c", str(self.config_dir), "stop"], capture_output=True, timeout=60)
        if not wait_until(lambda: self.master_pid() is None, timeout=20):
            os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not port_open(self.smtp_port), timeout=5)

    def close(self) -> None:
        """Stop the server and delete its files."""
        try:
            self.stop()
        finally:
            remove_tree(self.root)

    def __enter__(self) -> PostfixServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def log_text(self) -> str:
        return tail(self.log_file, 200)

    # -- mail, as a client and an administrator see it -------------------------------------------

    def send(self, data: bytes, sender: str, recipients: Sequence[str]) -> dict[str, tuple[int, bytes]]:
        """Submit one mail over SMTP; the recipients Postfix refused (code, text)."""
        with smtplib.SMTP(LOOPBACK, self.smtp_port, timeout=60) as client:
            try:
                return client.sendmail(sender, list(recipients), data)
            except smtplib.SMTPRecipientsRefused as refused:
                return dict(refused.recipients)

    def queue(self) -> list[dict[str, Any]]:
        """The mail in the queue, as `postqueue -j` tells it (one JSON object per mail)."""
        done = self._run(self.postqueue, "-c", str(self.config_dir), "-j")
        return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]

    def flush(self) -> None:
        """`postqueue -f`: try every deferred mail now."""
        self._run(self.postqueue, "-c", str(self.config_dir), "-f")

    def wait_queue_empty(self, timeout: float = 60.0) -> None:
        if not wait_until(lambda: not self.queue(), timeout=timeout, interval=0.2):
            raise AssertionError(f"Postfix's queue is not empty:\n{self.queue()}\n{self.log_text()}")

    def delivered(self, status: str = "sent") -> list[str]:
        """The log lines of each delivery with that status (sent, deferred, bounced)."""
        return [line for line in self.log_text().splitlines() if f" status={status} " in line]


def wait_for_log(server: PostfixServer, text: str, timeout: float = 60.0) -> bool:
    return wait_until(lambda: text in server.log_text(), timeout=timeout, interval=0.2)
