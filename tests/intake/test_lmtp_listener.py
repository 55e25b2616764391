"""The real LMTP listener over loopback and a Unix socket, with a real client (smtplib.LMTP).

RFC 2033 section 4.2: after the final dot the server answers once per accepted recipient, in
order. Each answer here comes only after the commit, so every one of them is the same: 250 when
the mail is stored, 451 when it could not be, 552 when it is too big.
"""

from __future__ import annotations

import smtplib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from helpdesk.app import App
from helpdesk.settings import SettingsError, build_settings
from intake.lmtp_listener import LmtpListener
from intake.smtp_listener import SmtpListener
from models.raw_message import RawMessage
from tests.loopback import free_port, port_open, wait_until
from tests.mail import SUPPORT, make_mail

LMTP_PORT_DEFAULT = 2424


@pytest.fixture
def lmtp(make_app: Callable[..., App]) -> Iterator[Callable[..., tuple[App, str | int]]]:
    """Starts an LMTP listener on a loopback port (or on `listen`); returns the app and where."""
    listeners: list[LmtpListener] = []

    def start(listen: str | None = None, **sections: dict[str, Any]) -> tuple[App, str | int]:
        port = free_port()
        app = make_app(lmtp={"listen": listen or f"127.0.0.1:{port}"}, **sections)
        assert app.settings.lmtp is not None
        listener = LmtpListener(app.settings.lmtp, app.store, app.settings.identity)
        listener.start()
        listeners.append(listener)
        socket = app.settings.lmtp.socket
        return app, str(socket) if socket is not None else port

    yield start
    for listener in listeners:
        listener.stop()


def connect(where: str | int) -> smtplib.LMTP:
    client = (
        smtplib.LMTP(where, timeout=30)
        if isinstance(where, str)
        else smtplib.LMTP("127.0.0.1", where, timeout=30)
    )
    client.ehlo_or_helo_if_needed()  # smtplib's LMTP says LHLO
    return client


def transaction(
    client: smtplib.LMTP, sender: str, recipients: list[str], data: bytes
) -> list[tuple[int, bytes]]:
    """One LMTP transaction: the RCPT replies refused, then every reply after the final dot."""
    code, _ = client.mail(sender)
    assert code == 250
    accepted = 0
    for rcpt in recipients:
        code, _ = client.rcpt(rcpt)
        accepted += code == 250
    replies = [client.data(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))]  # on the wire: CRLF
    replies += [client.getreply() for _ in range(accepted - 1)]
    return replies


def transaction_data(client: smtplib.LMTP, data: bytes) -> int:
    return client.data(data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))[0]


def raw_rows(app: App) -> list[RawMessage]:
    with app.sessions() as s:
        return list(s.scalars(select(RawMessage).order_by(RawMessage.id)))


def raw_count(app: App) -> int:
    with app.sessions() as s:
        return s.scalar(select(func.count()).select_from(RawMessage)) or 0


def test_one_reply_per_recipient_after_the_mail_is_stored_once(
    lmtp: Callable[..., tuple[App, str | int]],
) -> None:
    app, port = lmtp()
    with connect(port) as client:
        replies = transaction(
            client,
            "alice@example.com",
            [SUPPORT, "support+billing@example.test", "support+x@example.test"],
            make_mail(),
        )
    assert [code for code, _ in replies] == [250, 250, 250]
    (row,) = raw_rows(app)  # one mail, with its whole envelope
    assert row.source == "lmtp"
    assert row.envelope_from == "alice@example.com"
    assert row.envelope_to == [SUPPORT, "support+billing@example.test", "support+x@example.test"]


def test_other_recipients_are_refused_550_and_get_no_reply_after_data(
    lmtp: Callable[..., tuple[App, str | int]],
) -> None:
    app, port = lmtp()
    with connect(port) as client:
        client.mail("alice@example.com")
        code, text = client.rcpt("sales@example.test")
        assert code == 550 and b"does not relay" in text
        assert client.rcpt(SUPPORT)[0] == 250
        assert transaction_data(client, make_mail()) == 250
        client.noop()  # the next reply is NOOP's: there was one reply for one recipient
    assert raw_rows(app)[0].envelope_to == [SUPPORT]


def test_mail_over_the_limit_is_refused_552_for_each_recipient(
    lmtp: Callable[..., tuple[App, str | int]],
) -> None:
    app, port = lmtp(smtp={"max_message_size": 20_000})
    with connect(port) as client:
        replies = transaction(
            client,
            "alice@example.com",
            [SUPPORT, "support+a@example.test"],
            make_mail(body=("x" * 70 + "\n") * 500),
        )
        assert [code for code, _ in replies] == [552, 552]
        assert client.noop()[0] == 250  # the session goes on
    assert raw_count(app) == 0


def test_a_refusal_for_many_recipients_costs_one_error_not_one_per_recipient(
    lmtp: Callable[..., tuple[App, str | int]],
) -> None:
    app, port = lmtp(smtp={"max_message_size": 20_000, "max_errors": 5})
    recipients = [f"support+r{n}@example.test" for n in range(25)]
    with connect(port) as client:
        replies = transaction(
            client, "alice@example.com", recipients, make_mail(body=("x" * 70 + "\n") * 500)
        )
        assert [code for code, _ in replies] == [552] * 25  # no 421 after the fifth
        assert client.noop()[0] == 250
    assert raw_count(app) == 0


@pytest.mark.sqlite_only
def test_451_for_each_recipient_when_the_database_cannot_store(
    lmtp: Callable[..., tuple[App, str | int]], tmp_path: Path
) -> None:
    app, port = lmtp(database={"sqlite_busy_timeout": "0.3"})
    blocker = sqlite3.connect(tmp_path / "helpdesk.db", timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        with connect(port) as client:
            replies = transaction(
                client, "alice@example.com", [SUPPORT, "support+a@example.test"], make_mail()
            )
        assert [code for code, _ in replies] == [451, 451]
    finally:
        blocker.rollback()
        blocker.close()
    assert raw_count(app) == 0
    with connect(port) as client:  # the MTA retries, and this time the mail is kept
        assert [code for code, _ in transaction(client, "alice@example.com", [SUPPORT], make_mail())] == [250]
    assert raw_count(app) == 1


def test_helo_and_ehlo_are_not_lmtp(lmtp: Callable[..., tuple[App, str | int]]) -> None:
    _, port = lmtp()
    assert isinstance(port, int)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        assert client.ehlo()[0] == 500
        assert client.helo()[0] == 500
        assert client.docmd("LHLO", "mta.example.test")[0] == 250


def test_the_session_limits_of_smtp_hold(lmtp: Callable[..., tuple[App, str | int]]) -> None:
    _, port = lmtp(smtp={"max_noops": 2})
    with connect(port) as client:
        assert client.noop()[0] == 250
        assert client.noop()[0] == 250
        assert client.noop()[0] == 421


def test_a_unix_socket(lmtp: Callable[..., tuple[App, str | int]], tmp_path: Path) -> None:
    app, where = lmtp(listen="unix:run/lmtp.sock")
    assert where == str(tmp_path / "run" / "lmtp.sock")  # relative to the configuration's directory
    with connect(where) as client:
        assert [code for code, _ in transaction(client, "alice@example.com", [SUPPORT], make_mail())] == [250]
    assert raw_rows(app)[0].source == "lmtp"


def test_a_null_sender_is_stored_empty_by_both_listeners(
    lmtp: Callable[..., tuple[App, str | int]], make_app: Callable[..., App]
) -> None:
    """`MAIL FROM:<>` (a bounce, RFC 5321 section 4.5.5) is stored as "", as `helpdesk ingest
    --sender=` stores it and as the bounce checks expect; aiosmtpd hands it over as "<>"."""
    app, port = lmtp()
    with connect(port) as client:
        assert [code for code, _ in transaction(client, "", [SUPPORT], make_mail())] == [250]
    assert raw_rows(app)[0].envelope_from == ""
    smtp_port = free_port()
    smtp_app = make_app(smtp={"listen": f"127.0.0.1:{smtp_port}"})
    listener = SmtpListener(smtp_app.settings.smtp, smtp_app.store, smtp_app.settings.identity)
    listener.start()
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as client:
            client.sendmail("", [SUPPORT], make_mail(subject="bounce"))
    finally:
        listener.stop()
    # Both listeners store into the one test database: the LMTP mail, then the SMTP one.
    assert [(row.source, row.envelope_from) for row in raw_rows(smtp_app)] == [("lmtp", ""), ("smtp", "")]


def test_helpdesk_serve_starts_and_stops_the_lmtp_listener_beside_the_smtp_one(
    make_app: Callable[..., App],
) -> None:
    from helpdesk.daemon import Daemon

    smtp_port, lmtp_port = free_port(), free_port()
    app = make_app(smtp={"listen": f"127.0.0.1:{smtp_port}"}, lmtp={"listen": f"127.0.0.1:{lmtp_port}"})
    daemon = Daemon(app)
    daemon.start()
    try:
        with connect(lmtp_port) as client:
            assert [code for code, _ in transaction(client, "alice@example.com", [SUPPORT], make_mail())] == [
                250
            ]
        assert wait_until(lambda: raw_rows(app)[0].ticket_id is not None, timeout=30)  # the worker took it
    finally:
        daemon.stop_event.set()
        daemon.shutdown()
    assert not port_open(lmtp_port) and not port_open(smtp_port)


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:2424", ("127.0.0.1", 2424, None)),
        ("[::1]:24", ("::1", 24, None)),
        ("unix:/run/helpdesk/lmtp.sock", ("127.0.0.1", LMTP_PORT_DEFAULT, Path("/run/helpdesk/lmtp.sock"))),
    ],
)
def test_lmtp_listen(tmp_path: Path, listen: str, expected: tuple[str, int, Path | None]) -> None:
    settings = build_settings(
        {"lmtp": {"listen": listen}, "smtp": {"max_message_size": "10MB"}}, tmp_path, None
    )
    assert settings.lmtp is not None
    assert (settings.lmtp.host, settings.lmtp.port, settings.lmtp.socket) == expected
    assert settings.lmtp.max_message_size == 10 * 1024 * 1024  # one limit for every way in


def test_lmtp_is_off_by_default_and_a_bad_listen_is_named(tmp_path: Path) -> None:
    assert build_settings({}, tmp_path, None).lmtp is None
    with pytest.raises(SettingsError, match=r"lmtp\.listen"):
        build_settings({"lmtp": {"listen": "unix:"}}, tmp_path, None)
    with pytest.raises(SettingsError, match=r"lmtp\.listen"):
        build_settings({"lmtp": {"listen": "localhost"}}, tmp_path, None)
