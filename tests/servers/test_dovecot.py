"""The private Dovecot harness: plain and TLS logins, APPEND, IDLE, restart, new UIDVALIDITY, passwords."""

from __future__ import annotations

import time

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.servers.dovecot import DovecotServer
from tests.servers.fixtures import DovecotFactory, server_unavailable


def mail(n: int) -> bytes:
    headers = f"From: a@example.com\r\nMessage-ID: <smoke-{n}@example.com>\r\nSubject: {n}\r\n"
    return f"{headers}\r\nbody {n}\r\n".encode()


def test_plain_and_tls_logins(dovecot: DovecotServer) -> None:
    with dovecot.connect("alice") as plain:
        assert plain.has_capability("IDLE")
        assert plain.has_capability("MOVE")
    with dovecot.connect("bob", tls=True) as secure:
        assert secure.select_folder("INBOX")[b"EXISTS"] == 0
    with pytest.raises(LoginError):
        IMAPClient(dovecot.host, dovecot.imap_port, ssl=False, timeout=10).login("alice", "wrong")


def test_append_and_fetch(dovecot: DovecotServer) -> None:
    uid = dovecot.append("alice", "INBOX", mail(1))
    assert uid == 1
    assert dovecot.append_many("alice", "Archive", (mail(n) for n in range(2, 252))) == 250
    assert list(dovecot.flags("alice")) == [1]
    assert len(dovecot.flags("alice", "Archive")) == 250
    assert dovecot.flags("bob") == {}
    with dovecot.connect("alice") as client:
        client.select_folder("INBOX")
        assert client.fetch([1], ["BODY.PEEK[]"])[1][b"BODY[]"] == mail(1)


def test_idle_is_told_about_an_append(dovecot: DovecotServer) -> None:
    with dovecot.connect("alice") as watcher:
        watcher.select_folder("INBOX")
        watcher.idle()
        started = time.monotonic()
        dovecot.append("alice", "INBOX", mail(1))
        responses: list[tuple[object, ...]] = []
        while not responses and time.monotonic() - started < 5:
            responses = watcher.idle_check(timeout=1)
        watcher.idle_done()
    assert (1, b"EXISTS") in responses


def test_restart_keeps_ports_and_mail(dovecot: DovecotServer) -> None:
    dovecot.append("alice", "INBOX", mail(1))
    port = dovecot.imap_port
    dovecot.restart(graceful=False)
    assert dovecot.imap_port == port
    assert list(dovecot.flags("alice")) == [1]


def test_recreate_mailbox_gives_a_new_uidvalidity(dovecot: DovecotServer) -> None:
    for folder in ("INBOX", "Support"):
        dovecot.append("alice", folder, mail(1), flags=[b"\\Seen"])
        dovecot.append("alice", folder, mail(2))
        before = dovecot.uidvalidity("alice", folder)
        after = dovecot.recreate_mailbox("alice", folder)
        assert after != before
        flags = dovecot.flags("alice", folder)
        assert len(flags) == 2
        assert sorted(b"\\Seen" in f for f in flags.values()) == [False, True]


def test_set_password(dovecot: DovecotServer) -> None:
    dovecot.connect("alice").logout()
    dovecot.set_password("alice", "changed")
    with dovecot.connect("alice"):
        pass
    with pytest.raises(LoginError):
        IMAPClient(dovecot.host, dovecot.imap_port, ssl=False, timeout=10).login("alice", "alice-secret")


def test_announced_capabilities_can_be_narrowed(dovecot_factory: DovecotFactory) -> None:
    server = dovecot_factory(capabilities=["IMAP4rev1", "LITERAL+"])
    with server.connect("alice") as client:
        assert not client.has_capability("IDLE")
        assert not client.has_capability("MOVE")


def test_missing_server_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        server_unavailable("no dovecot here")
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="REAL SERVER MISSING"):
        server_unavailable("no dovecot here")
