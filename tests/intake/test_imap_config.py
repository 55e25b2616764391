"""The [[imap]] settings: defaults, TOML values, clear errors, credentials, and the backoff schedule."""

from __future__ import annotations

import random
import sys
import tomllib
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from helpdesk.settings import build_settings
from intake.errors import ImapConfigError, MailboxAuthError
from intake.imap_config import ImapMailboxConfig, load_mailboxes, resolve_credential
from intake.imap_poller import backoff_delay

EXAMPLE = """
[[imap]]
host = "imap.example.test"
user = "support@example.test"
password = "s3cret"
since = 2026-01-01

[[imap]]
name = "sales"
host = "imap.example.test"
port = 1143
tls = "STARTTLS"
user = "sales@example.test"
password_file = "secrets/sales"
folder = "Helpdesk"
processed = 'move:Helpdesk/Done'
use_idle = false
poll_interval = 30
batch_size = 50

[[imap]]
name = "gmail"
host = "imap.gmail.com"
user = "helpdesk@example.com"
oauth2_token_command = "get-token --account 'helpdesk mail'"
processed = "seen"
"""


def test_sections_from_toml(tmp_path: Path) -> None:
    support, sales, gmail = load_mailboxes(tomllib.loads(EXAMPLE)["imap"], base_dir=tmp_path)
    assert (support.name, support.port, support.tls, support.folder) == ("support", 993, "ssl", "INBOX")
    assert support.processed == "\\Seen" and support.move_to is None
    assert support.since == date(2026, 1, 1)
    assert support.since_datetime == datetime(2026, 1, 1, tzinfo=UTC)
    assert support.source == "imap:support"
    assert support.source_key(7, 42) == "imap:support:7:42"
    assert "s3cret" not in repr(support)
    assert (sales.port, sales.tls, sales.use_idle, sales.poll_interval) == (1143, "starttls", False, 30)
    assert sales.password_file == tmp_path / "secrets/sales"
    assert sales.move_to == "Helpdesk/Done"
    assert gmail.oauth2_token_command == ("get-token", "--account", "helpdesk mail")
    assert gmail.processed == "\\Seen"
    assert gmail.since is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"pasword": "x"}, "unknown key"),
        ({"tls": "tls"}, "tls: 'tls': use one of ssl, starttls, none"),
        ({"port": 70000}, "port: 70000 is not a TCP port"),
        ({"port": "993"}, "port: expected int"),
        ({"password": None}, "set exactly one of"),
        ({"password_file": "/x"}, "not password and password_file"),
        ({"processed": "\\Flagged"}, "processed"),
        ({"processed": "move:INBOX"}, "move needs another folder"),
        ({"idle_timeout": 29 * 60}, "idle_timeout: must be between 0 and 1740"),
        ({"poll_interval": 0}, "poll_interval: must be more than 0"),
        ({"batch_size": 0}, "batch_size"),
        ({"since": "last year"}, "since: 'last year' is not a date"),
        ({"name": "a:b"}, "name: 1-60 letters"),
        ({"use_idle": "yes"}, "use_idle: expected bool"),
        ({"backoff_max": 0.5}, "backoff_max: must be at least backoff_initial"),
        ({"host": ""}, "host: missing"),
        ({"noop_interval": 0}, "noop_interval: must be more than 0"),
        ({"command_timeout": -1}, "command_timeout: must be more than 0"),
        ({"max_response_bytes": 1000}, "max_response_bytes: must be at least 65536"),
        ({"max_response_lines": 399}, "max_response_lines: must be at least 4 times batch_size"),
        ({"max_response_lines": "many"}, "max_response_lines: expected int"),
        # One size cap for every intake path: [smtp] max_message_size, not a key of a mailbox.
        ({"max_message_size": 1}, "unknown key(s) max_message_size"),
    ],
)
def test_mistakes_are_named(change: dict[str, object], message: str) -> None:
    section: dict[str, object] = {"name": "support", "host": "imap.test", "user": "s", "password": "p"}
    section.update(change)
    section = {key: value for key, value in section.items() if value is not None}
    with pytest.raises(ImapConfigError, match=r"^\[\[imap\]\] ") as caught:
        ImapMailboxConfig.from_mapping(section)
    assert message in str(caught.value)


def test_the_smtp_size_cap_is_the_mailboxes_cap(tmp_path: Path) -> None:
    table = tomllib.loads(EXAMPLE)
    table["smtp"] = {"max_message_size": "10MB"}
    settings = build_settings(table, tmp_path, None)
    assert {box.max_message_size for box in settings.mailboxes} == {10 * 1024 * 1024}
    support = settings.mailboxes[0]
    assert (support.noop_interval, support.command_timeout) == (300.0, 300.0)
    assert (support.max_response_bytes, support.max_response_lines) == (16 * 1024 * 1024, 100_000)


def test_the_commented_mailbox_of_the_example_configuration_is_valid(tmp_path: Path) -> None:
    text = (Path(__file__).resolve().parents[2] / "deploy" / "helpdesk.example.toml").read_text()
    lines = text[text.index("# [[imap]]") :].split("\n\n", 1)[0].splitlines()
    section = "\n".join(line[2:] for line in lines if line.startswith("# ") and not line.startswith("#  "))
    (mailbox,) = load_mailboxes(tomllib.loads(section)["imap"], base_dir=tmp_path)
    defaults = ImapMailboxConfig(name="d", host="h", user="u", password="p")
    # The example shows the defaults (only the address, the account and the files are examples).
    for key in (
        "noop_interval",
        "command_timeout",
        "max_response_bytes",
        "max_response_lines",
        "batch_bytes",
    ):
        assert getattr(mailbox, key) == getattr(defaults, key), key


def test_names_must_differ() -> None:
    section = {"host": "h", "user": "support@a.test", "password": "p"}
    with pytest.raises(ImapConfigError, match="used twice"):
        load_mailboxes([section, {**section, "user": "support@b.test"}])


def test_credentials(tmp_path: Path) -> None:
    base = {"name": "m", "host": "h", "user": "u"}
    assert resolve_credential(ImapMailboxConfig.from_mapping({**base, "password": "p"})).secret == "p"
    secret = tmp_path / "pw"
    secret.write_text("from-file\nsecond line ignored\n")
    by_file = ImapMailboxConfig.from_mapping({**base, "password_file": str(secret)})
    assert resolve_credential(by_file).secret == "from-file"
    secret.write_text("")
    with pytest.raises(MailboxAuthError, match="is empty"):
        resolve_credential(by_file)
    command = [sys.executable, "-c", "print(' token-123 ')"]
    token = resolve_credential(ImapMailboxConfig.from_mapping({**base, "oauth2_token_command": command}))
    assert (token.mechanism, token.secret) == ("xoauth2", "token-123")
    silent = ImapMailboxConfig.from_mapping({**base, "oauth2_token_command": [sys.executable, "-c", "pass"]})
    with pytest.raises(MailboxAuthError, match="no token"):
        resolve_credential(silent)
    missing = ImapMailboxConfig.from_mapping({**base, "oauth2_token_command": "/nonexistent/get-token"})
    with pytest.raises(MailboxAuthError, match="get-token"):
        resolve_credential(missing)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(n, 1.0, 300.0, rng) for n in range(1, 13)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(300.0, 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert max(delays) <= 300.0 and delays[-1] >= 150.0
    assert backoff_delay(10_000, 1.0, 300.0, rng) <= 300.0
