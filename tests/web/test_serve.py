"""`helpdesk serve` serves the dashboard in a thread of its own, and stops it with the rest; a
dashboard that cannot listen leaves the desk taking mail, said in the log."""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Callable

import pytest

from helpdesk.app import App
from helpdesk.daemon import Daemon
from tests.loopback import free_port


def healthz(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/healthz")
    status = conn.getresponse().status
    conn.close()
    return status


def test_the_daemon_serves_the_dashboard_and_stops_it(make_app: Callable[..., App]) -> None:
    port = free_port()
    app = make_app(smtp={"listen": f"127.0.0.1:{free_port()}"}, web={"listen": f"127.0.0.1:{port}"})
    daemon = Daemon(app)
    daemon.parts = []
    daemon.start()
    try:
        assert daemon.web is not None
        assert healthz(port) == 200
    finally:
        daemon.shutdown()
    with pytest.raises(ConnectionRefusedError):
        healthz(port)


def test_no_dashboard_when_listen_is_empty(make_app: Callable[..., App]) -> None:
    daemon = Daemon(make_app(smtp={"listen": f"127.0.0.1:{free_port()}"}, web={"listen": ""}))
    assert daemon.web is None


def test_a_dashboard_that_cannot_listen_leaves_the_desk_running(
    make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        app = make_app(smtp={"listen": f"127.0.0.1:{free_port()}"}, web={"listen": f"127.0.0.1:{port}"})
        daemon = Daemon(app)
        daemon.parts = []
        with caplog.at_level(logging.ERROR, logger="helpdesk.daemon"):
            daemon.start()
        try:
            assert daemon.web is None
            assert "DASHBOARD cannot serve" in caplog.text
            assert daemon.listener.port
        finally:
            daemon.shutdown()


@pytest.mark.parametrize("listen", ["8025", "localhost:", "127.0.0.1:99999", 8025])
def test_a_listen_address_is_host_and_port(make_app: Callable[..., App], listen: object) -> None:
    from helpdesk.settings import SettingsError

    with pytest.raises(SettingsError, match=r"web\.listen"):
        make_app(web={"listen": listen})
