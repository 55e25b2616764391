"""What tests do on loopback, written once: a free port, a port that answers, waiting for a condition."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

LOOPBACK = "127.0.0.1"
# How often a condition is looked at while waiting: soon enough for timings measured in tenths of
# a second, seldom enough not to load a busy machine (the condition may query a database).
POLL_INTERVAL = 0.02


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now.

    There is a window between closing this probe and the server binding the port; the harnesses
    retry a start that failed because someone else took it.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], timeout: float = 10.0, interval: float = POLL_INTERVAL) -> bool:
    """True as soon as `condition()` is; False when it is still not at `timeout` seconds (it is
    looked at once more then)."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
