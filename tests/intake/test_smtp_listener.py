"""The real SMTP listener over loopback, with a real client (smtplib)."""

from __future__ import annotations

import os
import signal
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from helpdesk.app import App, build_app
from intake.smtp_listener import SmtpListener
from models.db import create_db_engine, migrate
from models.raw_message import RawMessage
from tests.conftest import Clock, desk_settings
from tests.loopback import free_port, wait_until
from tests.mail import SUPPORT, make_mail, send_mail, wait_for_listener
from tests.servers.postgres import PostgresCluster


@pytest.fixture
def listening(make_app: Callable[..., App]) -> Iterator[Callable[..., tuple[App, int]]]:
    listeners: list[SmtpListener] = []

    def start(**sections: dict[str, Any]) -> tuple[App, int]:
        port = free_port()
        smtp = {"listen": f"127.0.0.1:{port}", **sections.pop("smtp", {})}
        app = make_app(smtp=smtp, **sections)
        listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
        listener.start()
        listeners.append(listener)
        return app, port

    yield start
    for listener in listeners:
        listener.stop()


def raw_count(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(RawMessage)) or 0


def test_accepts_mail_for_the_helpdesk_and_its_plus_addresses(
    listening: Callable[..., tuple[App, int]],
) -> None:
    app, port = listening()
    with smtplib.SMTP("127.0.0.1", port) as client:
        refused = client.sendmail("alice@example.com", [SUPPORT, "support+billing@example.test"], make_mail())
    assert refused == {}
    assert raw_count(app) == 1


def test_refuses_other_recipients_550_never_relays(listening: Callable[..., tuple[App, int]]) -> None:
    app, port = listening()
    with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPRecipientsRefused) as err:
        client.sendmail("spammer@example.com", ["victim@example.org"], make_mail(to="victim@example.org"))
    code, text = err.value.recipients["victim@example.org"]
    assert code == 550
    assert b"does not relay" in text
    assert raw_count(app) == 0


def test_refuses_mail_over_the_size_limit_552(listening: Callable[..., tuple[App, int]]) -> None:
    app, port = listening(smtp={"max_message_size": 20_000})
    big = make_mail(body="x" * 30_000)
    with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPResponseException) as err:
        client.sendmail("alice@example.com", [SUPPORT], big)
    assert err.value.smtp_code == 552
    assert raw_count(app) == 0
    # The SIZE extension (RFC 1870) tells clients the limit up front.
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        assert client.has_extn("size")
        assert client.esmtp_features["size"] == "20000"


@pytest.mark.sqlite_only
def test_temporary_failure_451_when_the_database_cannot_store(
    listening: Callable[..., tuple[App, int]], tmp_path: Path
) -> None:
    app, port = listening(database={"sqlite_busy_timeout": "0.3"})
    # Another process holds the database's write lock: our commit cannot happen, so no 250.
    blocker = sqlite3.connect(tmp_path / "helpdesk.db", timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with smtplib.SMTP("127.0.0.1", port) as client, pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("alice@example.com", [SUPPORT], make_mail())
        assert err.value.smtp_code == 451
    finally:
        blocker.rollback()
        blocker.close()
    # The client retries later, as MTAs do after a 4xx, and this time the mail is kept.
    send_mail(port, make_mail(), sender="alice@example.com")
    assert raw_count(app) == 1


def test_temporary_failure_451_when_postgresql_goes_away(
    postgres_cluster: PostgresCluster, tmp_path: Path, clock: Clock
) -> None:
    url = postgres_cluster.create_database()
    settings = desk_settings(tmp_path, url, smtp={"listen": f"127.0.0.1:{free_port()}"})
    engine = create_db_engine(settings.database)
    migrate(engine)
    engine.dispose()
    app = build_app(settings, clock=clock)
    listener = SmtpListener(app.settings.smtp, app.store, app.settings.identity)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", listener.port) as client:
            assert client.sendmail("alice@example.com", [SUPPORT], make_mail()) == {}
        postgres_cluster.drop_database(url.rsplit("/", 1)[1])  # the database is gone, connections cut
        with smtplib.SMTP("127.0.0.1", listener.port) as client, pytest.raises(smtplib.SMTPDataError) as err:
            client.sendmail("alice@example.com", [SUPPORT], make_mail())
        assert err.value.smtp_code == 451
    finally:
        listener.stop()
        app.close()


def test_lf_only_file_sent_as_crlf(listening: Callable[..., tuple[App, int]]) -> None:
    app, port = listening()
    data = (Path(__file__).resolve().parent.parent / "data" / "lf-only-line-endings.eml").read_bytes()
    with smtplib.SMTP("127.0.0.1", port) as client:
        # aiosmtpd answers "500 Line too long" to bare LF; clients must send CRLF (RFC 5321 2.3.8).
        client.sendmail("bob@example.com", [SUPPORT], data.replace(b"\n", b"\r\n"))
    assert raw_count(app) == 1


def _write_config(directory: Path, port: int) -> Path:
    config = directory / "helpdesk.toml"
    config.write_text(
        "[mail]\n"
        'address = "support@example.test"\nsecret = "kill-test"\n'
        "[database]\n"
        'url = "sqlite:///var/helpdesk.db"\n'
        "[smtp]\n"
        f'listen = "127.0.0.1:{port}"\n'
        "[outgoing]\n"
        'url = "maildir:var/sent"\n'
        '[web]\nlisten = ""\n'
    )
    return config


def _serve(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "HELPDESK_CONFIG": str(config)}
    return subprocess.Popen(
        [sys.executable, "-m", "helpdesk.cli", "serve"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        cwd=config.parent,
    )


def test_250_means_committed_even_if_the_daemon_is_killed_right_after(tmp_path: Path) -> None:
    port = free_port()
    config = _write_config(tmp_path, port)
    log = tmp_path / "serve.log"
    init = subprocess.run(
        [sys.executable, "-m", "helpdesk.cli", "--config", str(config), "init"],
        capture_output=True,
        check=False,
    )
    assert init.returncode == 0, init.stderr
    proc = _serve(config, log)
    try:
        wait_for_listener(port, proc)
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("alice@example.com", [SUPPORT], make_mail(message_id="<kill-test@example.com>"))
            proc.send_signal(signal.SIGKILL)  # the instant the 250 is in: no graceful anything
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    db = sqlite3.connect(tmp_path / "var" / "helpdesk.db")
    try:
        rows = db.execute("SELECT message_id FROM raw_messages").fetchall()
    finally:
        db.close()
    assert rows == [("kill-test@example.com",)]
    # Started again, the daemon finishes the job: a ticket and an acknowledgment.
    proc = _serve(config, log)
    try:
        wait_for_listener(port, proc)
        sent = tmp_path / "var" / "sent" / "new"
        assert wait_until(lambda: sent.is_dir() and len(list(sent.iterdir())) == 1, 60), log.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert proc.returncode == 0
    listing = subprocess.run(
        [sys.executable, "-m", "helpdesk.cli", "--config", str(config), "tickets", "list", "--json"],
        capture_output=True,
        check=True,
    )
    assert b'"kill-test@example.com"' in listing.stdout


def test_starttls_is_offered_and_can_be_required(
    listening: Callable[..., tuple[App, int]], tmp_path: Path
) -> None:
    import ssl

    from tests.servers.common import ServerUnavailable
    from tests.servers.dovecot import make_certificate
    from tests.servers.fixtures import server_unavailable

    try:
        cert, key = make_certificate(tmp_path)
    except ServerUnavailable as exc:
        server_unavailable(str(exc))
    app, port = listening(smtp={"tls_cert": str(cert), "tls_key": str(key), "require_tls": True})
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        # Before STARTTLS the listener refuses the transaction (require_tls).
        code, _ = client.mail("alice@example.com")
        assert code == 530
        client.rset()
        client.starttls(context=context)
        client.ehlo()
        assert client.sendmail("alice@example.com", [SUPPORT], make_mail()) == {}
    assert raw_count(app) == 1
