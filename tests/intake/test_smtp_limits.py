"""A few hostile connections must not exhaust the SMTP listener (the `[smtp]` session limits).

Each test plays an attacker against the real listener over loopback: with raw sockets where a
well-behaved client library would refuse to misbehave, with smtplib and real TLS otherwise, and
against a real `helpdesk serve` child process where memory or file descriptors are what is measured.
Hostile clients come from other loopback addresses (127.0.0.2 and up, all routed to `lo` on Linux),
so that the per-client cap can tell them from the normal client on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from helpdesk.app import App
from intake.smtp_listener import SmtpListener
from models.raw_message import RawMessage
from tests.conftest import REPO_ROOT
from tests.intake.daemon_harness import START_TIMEOUT, DaemonDesk
from tests.loopback import free_port, wait_until
from tests.mail import SUPPORT, make_mail, wait_for_listener

Start = Callable[..., tuple[App, SmtpListener]]


@pytest.fixture
def listening(make_app: Callable[..., App]) -> Iterator[Start]:
    """Starts the real listener of a desk with `[smtp]` overrides; stops them all afterwards."""
    listeners: list[SmtpListener] = []

    def start(**smtp: Any) -> tuple[App, SmtpListener]:
        app = make_app(smtp={"listen": f"127.0.0.1:{free_port()}", **smtp})
        listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
        listener.start()
        listeners.append(listener)
        return app, listener

    yield start
    for listener in listeners:
        listener.stop()


class RawClient:
    """A client on a plain socket that says exactly what the test wants, NUL bytes included."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 10.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self._file = self.sock.makefile("rb")

    def reply(self) -> bytes:
        """One whole reply (the last line of a multi-line one); b"" once the server has closed."""
        line = self._file.readline()
        while line[3:4] == b"-":
            line = self._file.readline()
        return line

    def command(self, line: bytes) -> bytes:
        self.sock.sendall(line + b"\r\n")
        return self.reply()

    def closed_by_server(self) -> bool:
        """True when the server has closed: reading gives end of file (or a reset)."""
        try:
            rest = self._file.read()
        except ConnectionResetError:
            return True
        return rest == b"" or rest.endswith(b"\r\n")

    def close(self) -> None:
        self._file.close()
        self.sock.close()


def raw_count(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(RawMessage)) or 0


def hostile(port: int, count: int, addresses: int = 1) -> list[RawClient]:
    """`count` idle connections from `addresses` loopback addresses other than 127.0.0.1."""
    return [RawClient(port, source=f"127.0.0.{2 + i % addresses}") for i in range(count)]


# -- sessions: caps in total and per client ---------------------------------------------------------


@pytest.mark.sqlite_only
def test_past_the_per_client_cap_a_connection_gets_421_and_others_still_get_in(listening: Start) -> None:
    _, listener = listening(max_sessions_per_client=3)
    port = listener.port
    held = hostile(port, 3)
    try:
        assert all(client.reply().startswith(b"220") for client in held)
        extra = RawClient(port, source="127.0.0.2")
        assert extra.reply().startswith(b"421 4.7.0")
        assert extra.closed_by_server()
        extra.close()
        # Another address is not held back by the first one's sessions.
        other = RawClient(port, source="127.0.0.3")
        assert other.reply().startswith(b"220")
        other.close()
        # A session that ends makes room for the same address again.
        held.pop().close()

        def admitted_again() -> bool:
            client = RawClient(port, source="127.0.0.2")
            try:
                return client.reply().startswith(b"220")
            finally:
                client.close()

        assert wait_until(admitted_again, 5, 0.1)
    finally:
        for client in held:
            client.close()


@pytest.mark.sqlite_only
def test_past_the_total_cap_a_connection_gets_421(listening: Start) -> None:
    _, listener = listening(max_sessions=3)
    held = hostile(listener.port, 3, addresses=3)
    try:
        assert all(client.reply().startswith(b"220") for client in held)
        extra = RawClient(listener.port, source="127.0.0.9")
        assert extra.reply().startswith(b"421 4.3.2")
        assert extra.closed_by_server()
        extra.close()
    finally:
        for client in held:
            client.close()
    assert wait_until(lambda: listener.gate.open_sessions == 0, 5)


# -- budgets within one session ---------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_noop_budget_ends_a_session_kept_alive_by_noops(listening: Start) -> None:
    _, listener = listening(max_noops=5)
    client = RawClient(listener.port)
    try:
        client.reply()
        assert client.command(b"EHLO attacker.example").startswith(b"250")
        for _ in range(5):
            assert client.command(b"NOOP").startswith(b"250")
        assert client.command(b"NOOP").startswith(b"421 4.7.0")
        assert client.closed_by_server()
    finally:
        client.close()


@pytest.mark.sqlite_only
def test_command_budget_ends_a_session(listening: Start) -> None:
    _, listener = listening(max_commands=10)
    client = RawClient(listener.port)
    try:
        client.reply()
        assert client.command(b"EHLO attacker.example").startswith(b"250")
        for _ in range(9):
            assert client.command(b"RSET").startswith(b"250")
        assert client.command(b"RSET").startswith(b"421 4.7.0")
        assert client.closed_by_server()
    finally:
        client.close()


@pytest.mark.sqlite_only
def test_each_mail_accepted_renews_the_budgets_so_an_mta_may_send_many_over_one_connection(
    listening: Start,
) -> None:
    app, listener = listening(max_commands=5, max_errors=1)
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        for i in range(8):  # 3 commands and 1 refused recipient each: 24 commands, 8 errors
            refused = client.sendmail(
                "mta@example.com",
                [SUPPORT, "nobody@example.org"],
                make_mail(message_id=f"<relay-{i}@example.com>"),
            )
            assert list(refused) == ["nobody@example.org"]
    assert raw_count(app) == 8


@pytest.mark.sqlite_only
def test_error_budget_ends_a_session_that_only_makes_errors(listening: Start) -> None:
    _, listener = listening(max_errors=3)
    client = RawClient(listener.port)
    try:
        client.reply()
        # Errors of every kind count: empty lines, commands out of order, refused recipients.
        assert client.command(b"").startswith(b"500")
        assert client.command(b"MAIL FROM:<a@example.com>").startswith(b"503")  # no EHLO yet
        assert client.command(b"EHLO attacker.example").startswith(b"250")
        assert client.command(b"MAIL FROM:<a@example.com>").startswith(b"250")
        assert client.command(b"RCPT TO:<victim@example.org>").startswith(b"550")
        client.sock.sendall(b"RCPT TO:<victim2@example.org>\r\n")
        assert client.reply().startswith(b"550")  # the fourth error is answered, then the session ends
        assert client.reply().startswith(b"421 4.7.0")
        assert client.closed_by_server()
    finally:
        client.close()


@pytest.mark.sqlite_only
def test_idle_timeout_closes_a_silent_session_with_421(listening: Start) -> None:
    _, listener = listening(idle_timeout=1)
    client = RawClient(listener.port)
    try:
        client.reply()
        started = time.monotonic()
        assert client.reply().startswith(b"421 4.4.2")
        assert client.closed_by_server()
        assert time.monotonic() - started < 5
    finally:
        client.close()


@pytest.mark.sqlite_only
def test_total_session_time_ends_a_session_that_keeps_itself_busy(listening: Start) -> None:
    # A NOOP every 20 s kept a session open forever; here a command every 0.3 s, well inside the
    # idle timeout, and the session still ends when its time is up.
    _, listener = listening(max_session_time=2, idle_timeout=60)
    client = RawClient(listener.port)
    try:
        client.reply()
        started = time.monotonic()
        ended = b""
        while time.monotonic() - started < 10:
            ended = client.command(b"RSET")
            if not ended.startswith(b"250"):
                break
            time.sleep(0.3)
        assert ended.startswith(b"421 4.4.2"), ended
        assert 1.5 < time.monotonic() - started < 5
        assert client.closed_by_server()
    finally:
        client.close()


# -- the envelope ----------------------------------------------------------------------------------


def test_control_characters_in_the_envelope_get_501_and_nothing_is_stored(listening: Start) -> None:
    app, listener = listening()
    client = RawClient(listener.port)
    try:
        client.reply()
        assert client.command(b"EHLO sender.example").startswith(b"250")
        for bad in (b"<alice\x00@example.com>", b"<alice@exa\x01mple.com>", b"<alice\x7f@example.com>"):
            assert client.command(b"MAIL FROM:" + bad).startswith(b"501"), bad
        # Bytes that are not UTF-8 are no address either (RFC 6531), and C1 controls neither.
        assert client.command(b"MAIL FROM:<\xff\xfe@example.com>").startswith(b"501")
        assert client.command("MAIL FROM:<al\u0085ice@example.com>".encode()).startswith(b"501")
        assert client.command(b"MAIL FROM:<alice@example.com>").startswith(b"250")
        assert client.command(b"RCPT TO:<support\x00@example.test>").startswith(b"501")
        assert client.command(b"RCPT TO:<" + SUPPORT.encode() + b">").startswith(b"250")
        assert client.command(b"DATA").startswith(b"354")
        client.sock.sendall(make_mail(message_id="<clean-envelope@example.com>") + b"\r\n.\r\n")
        assert client.reply().startswith(b"250")
    finally:
        client.close()
    with app.sessions() as s:
        senders = list(s.scalars(select(RawMessage.envelope_from)))
    assert senders == ["alice@example.com"]


# -- DATA: bytes held, not lines -------------------------------------------------------------------


@pytest.mark.sqlite_only
def test_a_mail_over_the_limit_is_read_to_its_end_refused_552_and_the_session_goes_on(
    listening: Start,
) -> None:
    app, listener = listening(max_message_size=20_000)
    client = RawClient(listener.port)
    try:
        client.reply()
        client.command(b"EHLO sender.example")
        client.command(b"MAIL FROM:<alice@example.com>")
        client.command(b"RCPT TO:<" + SUPPORT.encode() + b">")
        assert client.command(b"DATA").startswith(b"354")
        client.sock.sendall(b"\r\n" * 200_000 + b".\r\n")
        assert client.reply().startswith(b"552 5.3.4")
        assert listener.gate.data_held == 0
        # The same session can still deliver a mail that fits.
        client.command(b"MAIL FROM:<alice@example.com>")
        client.command(b"RCPT TO:<" + SUPPORT.encode() + b">")
        assert client.command(b"DATA").startswith(b"354")
        client.sock.sendall(make_mail() + b"\r\n.\r\n")
        assert client.reply().startswith(b"250")
    finally:
        client.close()
    assert raw_count(app) == 1


@pytest.mark.sqlite_only
def test_message_data_of_all_sessions_together_is_capped_452(listening: Start) -> None:
    app, listener = listening(max_message_size=100_000, max_data_in_memory=150_000)
    first, second = RawClient(listener.port), RawClient(listener.port)
    try:
        for client in (first, second):
            client.reply()
            client.command(b"EHLO sender.example")
            client.command(b"MAIL FROM:<alice@example.com>")
            client.command(b"RCPT TO:<" + SUPPORT.encode() + b">")
            assert client.command(b"DATA").startswith(b"354")
        body = b"x" * 70 + b"\r\n"
        first.sock.sendall(make_mail(message_id="<first@example.com>") + body * 1000)
        assert wait_until(lambda: listener.gate.data_held >= 70_000, 5)
        second.sock.sendall(make_mail(message_id="<second@example.com>") + body * 1000 + b".\r\n")
        assert second.reply().startswith(b"452 4.3.1")  # try again later: memory, not the mail, ran out
        first.sock.sendall(b".\r\n")
        assert first.reply().startswith(b"250")
    finally:
        first.close()
        second.close()
    assert raw_count(app) == 1
    assert listener.gate.data_held == 0


def _tcp_queue_empty(server_port: int, client: socket.socket) -> bool:
    """True when the server side of this loopback connection has read everything (Linux)."""
    client_port = client.getsockname()[1]
    local, remote = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == remote:
            rx_queue = fields[4].split(":")[1]
            return int(rx_queue, 16) == 0
    return False


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def _serve(desk: DaemonDesk, log: Path, nofile: int | None = None, **smtp: object) -> subprocess.Popen[bytes]:
    """`helpdesk serve` on the desk, under a file-descriptor limit when `nofile` is given."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.update({f"HELPDESK_SMTP_{key.upper()}": str(value) for key, value in smtp.items()})
    command = [sys.executable, "-m", "helpdesk.cli", "--config", str(desk.config), "serve"]
    if nofile is not None:  # what `prlimit --nofile=N` does, without needing util-linux
        limit = f"import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, ({nofile}, {nofile}))"
        command = [sys.executable, "-c", f"{limit}; os.execv(sys.executable, {command!r})"]
    return subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=desk.root,
    )


def _wait_ready(desk: DaemonDesk, proc: subprocess.Popen[bytes], log: Path) -> None:
    wait_for_listener(desk.smtp_port, proc, log, START_TIMEOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


@pytest.mark.slow
def test_an_open_data_of_12mb_of_empty_lines_grows_the_daemon_by_less_than_100mb(
    make_desk: Callable[..., DaemonDesk], sqlite_url: str
) -> None:
    # aiosmtpd kept one object per line until the final dot: 12 MB of empty lines cost 500 MB.
    desk = make_desk(sqlite_url)
    log = desk.root / "serve.log"
    proc = _serve(desk, log)
    client: RawClient | None = None
    try:
        _wait_ready(desk, proc, log)
        time.sleep(1)
        before = _rss_mb(proc.pid)
        client = RawClient(desk.smtp_port, timeout=120)
        client.reply()
        client.command(b"EHLO sender.example")
        client.command(b"MAIL FROM:<alice@example.com>")
        client.command(b"RCPT TO:<" + SUPPORT.encode() + b">")
        assert client.command(b"DATA").startswith(b"354")
        chunk = b"\r\n" * (512 * 1024)
        for _ in range(12):
            client.sock.sendall(chunk)
        sock = client.sock
        assert wait_until(lambda: _tcp_queue_empty(desk.smtp_port, sock), 120, 0.2), (
            "the server stopped reading"
        )
        grown = _rss_mb(proc.pid) - before
        assert grown < 100, f"the daemon grew by {grown:.0f} MB for 12 MB of DATA"
    finally:
        if client is not None:
            client.close()
        _stop(proc)


@pytest.mark.slow
def test_300_hostile_sessions_under_256_descriptors_leave_room_for_a_normal_client(
    make_desk: Callable[..., DaemonDesk], sqlite_url: str
) -> None:
    # 249 idle sessions used to take every descriptor: no banner for anyone, 2 MB/s of log.
    desk = make_desk(sqlite_url)
    log = desk.root / "serve.log"
    proc = _serve(desk, log, nofile=256)
    attackers: list[RawClient] = []
    try:
        _wait_ready(desk, proc, log)
        log_before = log.stat().st_size
        for i in range(300):
            try:
                attackers.append(RawClient(desk.smtp_port, source=f"127.0.0.{2 + i % 3}", timeout=5))
            except OSError:
                pass  # a connection the server could not take is still an attack that ran
        time.sleep(1)
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=2) as client:
            greeted = time.monotonic() - started
            refused = client.sendmail(
                "alice@example.com", [SUPPORT], make_mail(message_id="<under-siege@example.com>")
            )
        assert greeted < 2, f"banner after {greeted:.1f} s"
        assert refused == {}
        desk.wait_ticket("under-siege@example.com", timeout=60)
        time.sleep(2)  # the attack goes on: the log must not
        grown = log.stat().st_size - log_before
        assert grown < 16_000, f"the log grew by {grown} bytes:\n{log.read_text()[-3000:]}"
    finally:
        for attacker in attackers:
            attacker.close()
        _stop(proc)


# -- TLS ---------------------------------------------------------------------------------------------


def _certificate(tmp_path: Path) -> tuple[Path, Path]:
    from tests.servers.common import ServerUnavailable
    from tests.servers.dovecot import make_certificate
    from tests.servers.fixtures import server_unavailable

    try:
        return make_certificate(tmp_path)
    except ServerUnavailable as exc:
        server_unavailable(str(exc))


def _stall_in_starttls(port: int, source: str) -> RawClient:
    client = RawClient(port, source=source, timeout=20)
    assert client.reply().startswith(b"220")
    client.command(b"EHLO staller.example")
    assert client.command(b"STARTTLS").startswith(b"220")
    return client  # and never sends a ClientHello


@pytest.mark.sqlite_only
def test_stalled_tls_handshakes_are_cut_at_the_deadline_count_against_the_caps_and_log_one_line(
    listening: Start, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = _certificate(tmp_path)
    caplog.set_level(logging.INFO)
    app, listener = listening(
        tls_cert=str(cert), tls_key=str(key), tls_handshake_timeout=3, max_sessions_per_client=10
    )
    started = time.monotonic()
    stalled = [_stall_in_starttls(listener.port, f"127.0.0.{2 + i % 3}") for i in range(30)]
    try:
        # Stalled handshakes are sessions: past 10 from one address the next one is turned away.
        extra = RawClient(listener.port, source="127.0.0.2")
        assert extra.reply().startswith(b"421")
        extra.close()
        # A normal client gets through TLS all the same, and is offered no AUTH that could only fail.
        context = ssl.create_default_context(cafile=str(cert))
        context.check_hostname = False
        with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as normal:
            normal.starttls(context=context)
            normal.ehlo()
            assert not normal.has_extn("auth")
            assert normal.sendmail("alice@example.com", [SUPPORT], make_mail()) == {}
        # Each stalled one is dropped at the deadline, not after the 60 s asyncio allows.
        for client in stalled:
            assert client.closed_by_server()
        assert time.monotonic() - started < 3 + 4
        assert wait_until(lambda: listener.gate.open_sessions == 0, 5)
    finally:
        for client in stalled:
            client.close()
    assert raw_count(app) == 1
    tls_lines = [
        r for r in caplog.records if "TLS" in r.getMessage() or "session exception" in r.getMessage()
    ]
    assert len(tls_lines) <= 1, [r.getMessage() for r in tls_lines]
    assert not any(r.exc_info for r in caplog.records), "a traceback was logged"


@pytest.mark.sqlite_only
def test_no_auth_is_advertised_after_starttls(listening: Start, tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    _, listener = listening(tls_cert=str(cert), tls_key=str(key))
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=5) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        client.starttls(context=context)
        client.ehlo()
        assert client.has_extn("size")
        assert not client.has_extn("auth")  # RFC 4954: only mechanisms that can succeed
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAHNlY3JldA==")
        assert code >= 500
