"""The parts of the session limits on their own: the rate-limited log, the client key, the settings
that fill them, and how the example configuration and the systemd unit agree with the defaults."""

from __future__ import annotations

import dataclasses
import logging
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from helpdesk.settings import SettingsError, build_settings
from intake.config import SessionLimits
from intake.smtp_limits import FDS_BESIDES_SESSIONS, RateLimitedLog, Refusal, SessionGate, client_key
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_repeating_condition_is_logged_once_per_interval_with_the_count_held_back(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="test.limits")
    clock = FakeClock()
    events = RateLimitedLog(logging.getLogger("test.limits"), interval=60, clock=clock)
    for i in range(1000):
        events.log(
            logging.WARNING, "max_sessions", "SMTP REFUSED connection from %s", f"10.0.{i // 256}.{i % 256}"
        )
    events.log(logging.WARNING, "idle_timeout", "SMTP CLOSED idle")
    assert [r.getMessage() for r in caplog.records] == [
        "SMTP REFUSED connection from 10.0.0.0",
        "SMTP CLOSED idle",
    ]
    clock.now += 61
    events.log(logging.WARNING, "max_sessions", "SMTP REFUSED connection from %s", "10.9.9.9")
    assert caplog.records[-1].getMessage() == (
        "SMTP REFUSED connection from 10.9.9.9 (and 999 more like it in the last 61 s)"
    )
    clock.now += 1
    events.log(logging.WARNING, "max_sessions", "SMTP REFUSED connection from %s", "10.9.9.10")
    events.flush()
    assert caplog.records[-1].getMessage() == "SMTP 1 more lines of condition max_sessions were not logged"


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        (("192.0.2.7", 40000), "192.0.2.7"),
        (("2001:db8:1:2:aaaa::1", 40000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 40000, 0, 0), "2001:db8:1:2::/64"),  # the same /64: one client
        (("::ffff:192.0.2.7", 40000, 0, 0), "192.0.2.7"),
        ("", "local"),  # a Unix socket
        (None, "local"),
    ],
)
def test_clients_are_counted_by_ipv4_address_or_ipv6_64(peer: object, key: str) -> None:
    assert client_key(peer) == key


def test_the_gate_counts_sessions_and_memory_and_gives_them_back() -> None:
    gate = SessionGate(SessionLimits(max_sessions=3, max_sessions_per_client=2, max_data_in_memory=100))
    assert gate.admit("a") is None
    assert gate.admit("a") is None
    assert gate.admit("a") is Refusal.CLIENT_FULL
    assert gate.admit("b") is None
    assert gate.admit("c") is Refusal.FULL
    gate.leave("a")
    assert gate.admit("c") is None
    assert gate.open_sessions == 3
    assert gate.hold(60)
    assert not gate.hold(60)
    gate.release(60)
    assert gate.hold(100)
    assert gate.data_held == 100


def _smtp(tmp_path: Path, **smtp: object) -> SessionLimits:
    return build_settings({"smtp": smtp}, tmp_path, None).smtp.limits


def test_smtp_limits_are_read_from_the_smtp_section(tmp_path: Path) -> None:
    assert _smtp(tmp_path) == SessionLimits()
    limits = _smtp(
        tmp_path,
        max_sessions=50,
        max_sessions_per_client=5,
        max_commands=200,
        max_noops=3,
        max_errors=4,
        idle_timeout="2m",
        max_session_time="1h",
        tls_handshake_timeout=5,
        max_data_in_memory="1GB",
    )
    assert limits == SessionLimits(
        max_sessions=50,
        max_sessions_per_client=5,
        max_commands=200,
        max_noops=3,
        max_errors=4,
        idle_timeout=120,
        max_session_time=3600,
        tls_handshake_timeout=5,
        max_data_in_memory=1024**3,
    )


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("max_sessions", 0, "smtp.max_sessions"),
        ("max_sessions_per_client", -1, "smtp.max_sessions_per_client"),
        ("idle_timeout", 0, "smtp.idle_timeout"),
        ("tls_handshake_timeout", "soon", "smtp.tls_handshake_timeout"),
        ("max_data_in_memory", "1MB", "max_data_in_memory must be at least smtp.max_message_size"),
    ],
)
def test_wrong_smtp_limits_are_refused_with_the_key_named(
    tmp_path: Path, key: str, value: object, message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        _smtp(tmp_path, **{key: value})


def test_the_example_configuration_sets_each_limit_to_its_default_with_a_comment(tmp_path: Path) -> None:
    text = (DEPLOY / "helpdesk.example.toml").read_text()
    example = build_settings(tomllib.loads(text), tmp_path, None).smtp.limits
    assert example == SessionLimits()
    lines = text.splitlines()
    for field in dataclasses.fields(SessionLimits):
        where = next(i for i, line in enumerate(lines) if line.startswith(f"{field.name} = "))
        assert lines[where - 1].startswith("#"), f"{field.name} has no comment above it"


def _unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / "helpdesk.service").read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_the_systemd_unit_bounds_the_daemon_and_fits_the_default_sessions() -> None:
    unit = _unit()
    nofile = int(unit["LimitNOFILE"][0])
    assert SessionLimits().max_sessions + FDS_BESIDES_SESSIONS < nofile
    for key in ("MemoryMax", "TasksMax"):
        assert unit[key], key
    assert unit["UMask"] == ["0077"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ProtectSystem"] == ["strict"]
    assert "/var/lib/helpdesk" in unit["ReadWritePaths"]
    for flag in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"):
        assert unit[flag] == ["true"], flag
    assert "@system-service" in unit["SystemCallFilter"]


def test_the_systemd_unit_is_rated_ok_by_systemd_analyze() -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    done = subprocess.run(
        [analyze, "security", "--offline=true", "--no-pager", str(DEPLOY / "helpdesk.service")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0, done.stdout
