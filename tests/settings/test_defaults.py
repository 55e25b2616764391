"""Each default is written once: deploy/helpdesk.example.toml and the helpdesk.toml that
`helpdesk init` writes show the defaults the code uses, and every key the settings read.

A value of the example that is not the default says so on its line, "(example"; every other
value must be what the settings would be without it. Commented-out keys must be keys the
settings read, and every key they read is shown, set or commented out.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from helpdesk.initialise import write_default_config
from helpdesk.settings import Settings, build_settings, read_mailbox, read_settings, unread_keys
from helpdesk.settings.reader import Reader
from intake.imap_config import ImapMailboxConfig
from tests.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "deploy" / "helpdesk.example.toml"
MARK = "(example"
_HEADER = re.compile(r"^\[+(?P<name>[a-z._]+)\]+")
_KEY = re.compile(r"^(?P<commented># )?(?P<key>[a-z_]+) = ")
# Keys of a mailbox that have no default: which server, which account, which credential.
MAILBOX_IDENTITY = ("name", "host", "user", "password", "password_file", "oauth2_token_command")


def settings_of(table: Mapping[str, Any], base: Path) -> Settings:
    return dataclasses.replace(build_settings(table, base, None), raw={})


def nested(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """{"a": {"b": value}} for ("a", "b")."""
    table: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        table = {part: table}
    return table


def leaves(table: Mapping[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in table.items():
        if isinstance(value, dict):
            yield from leaves(value, (*path, key))
        else:
            yield (*path, key), value


def lines_by_key(text: str) -> dict[str, list[tuple[str, bool]]]:
    """Each `key = value` line, set or commented out, by `section.key`: (line, commented)."""
    found: dict[str, list[tuple[str, bool]]] = {}
    section = ""
    for line in text.splitlines():
        if header := _HEADER.match(line.removeprefix("# ")):
            section = header["name"]
        elif key := _KEY.match(line):
            found.setdefault(f"{section}.{key['key']}", []).append((line, bool(key["commented"])))
    return found


def defaults_shown(text: str, base: Path) -> tuple[list[str], list[str]]:
    """The set keys of a configuration whose value is not the default: (marked, unmarked)."""
    default = settings_of({}, base)
    lines = lines_by_key(text)
    marked: list[str] = []
    unmarked: list[str] = []
    for path, value in leaves(tomllib.loads(text)):
        place = ".".join(path)
        line = next(line for line, commented in lines[place] if not commented)
        if settings_of(nested(path, value), base) != default:
            (marked if MARK in line else unmarked).append(place)
        else:
            assert MARK not in line, f"{place} is marked as an example but shows the default"
    return marked, unmarked


def test_the_example_shows_each_default_unless_it_says_otherwise(tmp_path: Path) -> None:
    marked, unmarked = defaults_shown(EXAMPLE.read_text(), tmp_path)
    assert unmarked == []
    assert sorted(marked) == ["mail.secret", "sla.holidays", "sla.timezone"]


def test_every_key_of_the_example_is_read_and_every_key_read_is_shown(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    lines = lines_by_key(text)
    commented = [place for place, found in lines.items() if all(c for _, c in found)]
    table = tomllib.loads(text)
    for place in commented:
        section, _, key = place.rpartition(".")
        if section != "imap":
            table.setdefault(section, {})[key] = "x"  # the value does not matter, only the key
    assert unread_keys(table, tmp_path) == []
    reader = Reader(tmp_path)
    read_settings(reader, tomllib.loads(text), None)
    subtables = {table.label for table in reader.tables}
    read = {re.sub(r"^sla\.(urgent|high|normal|low)\.", "sla.<priority>.", place) for place in reader.known()}
    shown = {re.sub(r"^sla\.(urgent|high|normal|low)\.", "sla.<priority>.", place) for place in lines}
    assert sorted(read - subtables - shown) == []


def test_the_example_mailbox_shows_each_default_unless_it_says_otherwise(tmp_path: Path) -> None:
    text = EXAMPLE.read_text()
    lines = text[text.index("# [[imap]]") :].split("\n\n", 1)[0].splitlines()
    block = [line[2:] for line in lines if _KEY.match(line) or line == "# [[imap]]"]
    (section,) = tomllib.loads("\n".join(block))["imap"]
    keys = {f.name for f in dataclasses.fields(ImapMailboxConfig)} - {"max_message_size"}
    # The other two credentials are named beside password_file, one credential being allowed.
    alternatives = {"password", "oauth2_token_command"}
    assert set(section) == keys - alternatives
    assert all(f"{key} = " in text for key in alternatives)
    identity = {key: value for key, value in section.items() if key in MAILBOX_IDENTITY}
    plain = read_mailbox(identity, base_dir=tmp_path)
    for key, value in section.items():
        if key in MAILBOX_IDENTITY:
            continue
        line = next(line for line in block if line.startswith(f"{key} = "))
        shows_default = read_mailbox({**identity, key: value}, base_dir=tmp_path) == plain
        assert shows_default != (MARK in line), f"[[imap]] {key}: {line}"


@pytest.mark.parametrize(
    "given",
    [
        {},
        {
            "address": "help@corp.example",
            "database_url": "postgresql+psycopg://helpdesk@db.example/helpdesk",
            "listen": "0.0.0.0:25",
            "outgoing_url": "smtp://relay.example:587",
        },
    ],
)
def test_init_writes_the_defaults_and_what_it_is_given(tmp_path: Path, given: dict[str, str]) -> None:
    path = tmp_path / "helpdesk.toml"
    write_default_config(path, **given)
    text = path.read_text()
    marked, unmarked = defaults_shown(text, tmp_path)
    assert marked == []
    keys = {
        "address": "mail.address",
        "database_url": "database.url",
        "listen": "smtp.listen",
        "outgoing_url": "outgoing.url",
    }
    assert sorted(unmarked) == sorted(["mail.secret", "mail.instance", *(keys[k] for k in given)])
    written = tomllib.loads(text)
    for name, value in given.items():
        section, key = keys[name].split(".")
        assert written[section][key] == value
