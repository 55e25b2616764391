"""`[[imap]]`: one table per mailbox, read into `intake.imap_config.ImapMailboxConfig`.

Each key is read with the one grammar of the configuration (durations, sizes, booleans, dates,
paths relative to the file); what a key may hold beyond its type (a TCP port, one credential,
IDLE under 29 minutes) the config checks itself. The defaults are the dataclass's own.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from helpdesk.settings.reader import Reader, Table
from intake.imap_config import NOT_KEYS, SEEN, ImapMailboxConfig

KEYS = tuple(f.name for f in dataclasses.fields(ImapMailboxConfig) if f.name not in NOT_KEYS)
REQUIRED = ("name", "host", "user")
TEXTS = ("name", "host", "user", "password", "folder")
WHOLE = ("port", "batch_size", "max_response_lines")
SIZES = ("batch_bytes", "max_response_bytes")
FLAGS = ("use_idle", "tls_verify")
PATHS = ("password_file", "tls_ca_file")
DURATIONS = (
    "poll_interval",
    "idle_timeout",
    "noop_interval",
    "connect_timeout",
    "read_timeout",
    "command_timeout",
    "backoff_initial",
    "backoff_max",
)


def _command(value: Any) -> tuple[str, ...]:
    """A command line as a list, or one string split as a shell would."""
    if isinstance(value, str):
        return tuple(shlex.split(value))
    if not isinstance(value, list):
        raise ValueError(f"must be a command as a list or a string, got {value!r}")
    return tuple(str(part) for part in value)


def _processed(value: Any) -> str:
    """ "\\Seen" (also written "seen" or "\\seen"), or "move:<folder>"."""
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return SEEN if value.strip().lstrip("\\").lower() == "seen" else value


def _tls(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value.lower()


def _reads(table: Table) -> dict[str, Callable[[str], Any]]:
    """How each key of a mailbox is read (absent keys keep the dataclass's default)."""
    reads: dict[str, Callable[[str], Any]] = {}
    reads |= {key: lambda k: table.text(k, "") for key in TEXTS}
    reads |= {key: lambda k: table.whole(k, 0, None) for key in WHOLE}
    reads |= {key: lambda k: table.size(k, 0) for key in SIZES}
    reads |= {key: lambda k: table.flag(k, True) for key in FLAGS}
    reads |= dict.fromkeys(PATHS, table.path)
    reads |= {key: lambda k: table.duration(k, 1.0, positive=True) for key in DURATIONS}
    reads["tls"] = lambda k: table.get(k, "", _tls)
    reads["processed"] = lambda k: table.get(k, SEEN, _processed)
    reads["oauth2_token_command"] = lambda k: table.get(k, tuple[str, ...](), _command)
    reads["since"] = table.day
    return reads


def mailbox(reader: Reader, section: Any, *, max_message_size: int | None = None) -> ImapMailboxConfig | None:
    """One mailbox, or None when its table has problems (they are recorded with the reader)."""
    values = section if isinstance(section, Mapping) else {}
    label = str(values.get("name") or values.get("user") or "?")
    table = reader.table(f"[[imap]] {label}", section)
    before = len(reader.problems)
    unknown = sorted(set(table.values) - set(KEYS))
    if unknown:
        reader.problem(f"[[imap]] {label}: unknown key(s) {', '.join(unknown)}")
    reads = _reads(table)
    found: dict[str, Any] = {key: reads[key](key) for key in KEYS if key in table}
    if "name" not in found and isinstance(found.get("user"), str):
        found["name"] = found["user"].split("@", 1)[0]
    for key in REQUIRED:
        if key not in found:
            table.problem(key, "missing")
    if max_message_size is not None:
        found["max_message_size"] = max_message_size
    if len(reader.problems) > before:
        return None
    try:
        return ImapMailboxConfig(**found)
    except ValueError as exc:  # what a key may hold: the config's own checks name the key
        reader.problem(str(exc))
        return None


def mailboxes(
    reader: Reader, sections: Any, *, max_message_size: int | None = None
) -> tuple[ImapMailboxConfig, ...]:
    """Every `[[imap]]` table; two mailboxes may not share a name."""
    if isinstance(sections, Mapping):
        sections = [sections]
    if not isinstance(sections, list):
        reader.problem("[[imap]] must be a list of tables, one per mailbox")
        return ()
    configs = [mailbox(reader, section, max_message_size=max_message_size) for section in sections]
    seen: set[str] = set()
    for config in configs:
        if config is not None and config.name in seen:
            reader.problem(f"[[imap]] {config.name}: name: used twice; give each mailbox its own name")
        elif config is not None:
            seen.add(config.name)
    return tuple(config for config in configs if config is not None)


def read_mailboxes(
    sections: Iterable[Mapping[str, Any]],
    *,
    base_dir: Path | None = None,
    max_message_size: int | None = None,
) -> tuple[ImapMailboxConfig, ...]:
    """The mailboxes of a list of `[[imap]]` tables alone; SettingsError names every bad key."""
    reader = Reader(base_dir or Path.cwd())
    configs = mailboxes(reader, list(sections), max_message_size=max_message_size)
    reader.check()
    return configs


def read_mailbox(
    section: Mapping[str, Any], *, base_dir: Path | None = None, max_message_size: int | None = None
) -> ImapMailboxConfig:
    """One `[[imap]]` table alone."""
    (config,) = read_mailboxes([section], base_dir=base_dir, max_message_size=max_message_size)
    return config
