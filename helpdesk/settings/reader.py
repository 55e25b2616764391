"""The grammar of helpdesk.toml's values, and typed reads that name the key of each problem.

One grammar for every section, `[sla]` and `[[imap]]` included:

- a duration is a number of seconds (`30`, `0.5`) or a text of numbers with units, largest first:
  `"30s"`, `"5m"`, `"2h"`, `"1d"`, `"1w"`, `"1h30m"`, `"1d 4h"`; where a clock counts business
  time, a day is a business day and weeks are not counted (`parse_duration`);
- a size is a number of bytes or a text with a binary unit: `"512KB"`, `"25MB"`, `"1GiB"`;
- a boolean is `true` or `false`. The environment can carry only text, so there (`EnvText`) the
  words true/yes/on and false/no/off count too;
- a date is a TOML date or its text, `2026-12-24`;
- a path is text, relative to the directory of the configuration file.

`Table` reads one table's keys with these rules; a value it cannot read is a problem named
after its key (`smtp.idle_timeout: ...`, `[[imap]] support: port: ...`), collected by the
`Reader`, so that one run names every problem of a configuration (`SettingsError.problems`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

SECOND, MINUTE, HOUR, DAY, WEEK = 1.0, 60.0, 3600.0, 86400.0, 604800.0
KIB = 1024
SIZE_UNITS = {"": 1, "b": 1, "k": KIB, "kb": KIB, "kib": KIB, "m": KIB**2, "mb": KIB**2, "mib": KIB**2}
SIZE_UNITS |= {"g": KIB**3, "gb": KIB**3, "gib": KIB**3}
TRUE_WORDS = ("true", "yes", "on")
FALSE_WORDS = ("false", "no", "off")

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile("".join(f"(?:(?P<{unit}>{_NUMBER}){unit})?" for unit in "wdhms"))
_BARE_NUMBER = re.compile(_NUMBER)
_SIZE = re.compile(rf"({_NUMBER})([kmg]?i?b?)")
DURATION_EXAMPLES = 'seconds, or e.g. "30s", "5m", "2h", "1d", "1w", "1h30m"'


class SettingsError(ValueError):
    """The configuration is missing or wrong; each problem names its key."""

    def __init__(self, problems: str | Iterable[str]) -> None:
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        super().__init__("\n".join(self.problems))


class EnvText(str):
    """Text from an environment variable that did not read as TOML (`HELPDESK_SMTP_REQUIRE_TLS=yes`)."""

    __slots__ = ()


# -- the grammar: each function returns the value or raises ValueError saying what is wrong ---------


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, EnvText) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise ValueError(f"must be true or false, got {value!r}")


def parse_whole(value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
        least = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"must be a whole number{least}, got {value!r}")
    return value


def parse_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"must be a number, got {value!r}")
    return float(value)


def parse_text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a string, got {value!r}")
    return value


def parse_texts(value: Any) -> tuple[str, ...]:
    """A list of strings; a text is split at commas (the environment's way of writing a list)."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"must be a list of strings, got {value!r}")
    return tuple(value)


def parse_size(value: Any) -> int:
    """Bytes: a number, or a text with a binary unit ("512KB", "25MB", "1 GiB")."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return int(value)
    match = _SIZE.fullmatch("".join(str(value).split()).lower()) if isinstance(value, str) else None
    if match is None or match.group(2) not in SIZE_UNITS:
        raise ValueError(f'must be a size like 26214400, "25MB" or "512KB", got {value!r}')
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def parse_duration(
    value: Any, *, day: float = DAY, week: float | None = WEEK, bare: bool = True, positive: bool = False
) -> float:
    """Seconds. `day` is how long "1d" is (a business day on a business clock, where `week` is
    None: a business week is not a number of days); without `bare`, a number needs its unit."""
    seconds: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value) if bare else None
    elif isinstance(value, str):
        text = "".join(value.split()).lower()
        match = _DURATION.fullmatch(text)
        if match is not None and any(match.groupdict().values()) and (week is not None or not match["w"]):
            sizes = {"w": week or 0.0, "d": day, "h": HOUR, "m": MINUTE, "s": SECOND}
            seconds = sum(float(n) * sizes[unit] for unit, n in match.groupdict().items() if n)
        elif bare and _BARE_NUMBER.fullmatch(text):
            seconds = float(text)
    if seconds is None:
        if bare:
            raise ValueError(f'"{value}" is not a duration (write {DURATION_EXAMPLES})')
        weeks = "; weeks do not count business time" if week is None and "w" in str(value).lower() else ""
        raise ValueError(
            f'"{value}" is not a duration (write it with its unit, e.g. "30m", "4h" or "2d"{weeks})'
        )
    if positive and seconds <= 0:
        if isinstance(value, str):
            raise ValueError(f'"{value}" must be longer than zero')
        raise ValueError(f"must be more than 0 seconds, got {value!r}")
    if seconds < 0:
        raise ValueError(f"must be 0 seconds or more, got {value!r}")
    return seconds


def parse_date(value: Any) -> date:
    """A day: a TOML date or its text; of a date and time, its day (in UTC when it has a zone)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    if isinstance(value, date):
        return value
    try:
        if not isinstance(value, str):
            raise ValueError
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not a date (write YYYY-MM-DD)") from None


def resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path)


# -- writing values back, for files that show the defaults -------------------------------------


def format_duration(seconds: float) -> str:
    """The shortest text `parse_duration` reads back as `seconds` ("2d", "5m", "90s")."""
    for unit, size in (("w", WEEK), ("d", DAY), ("h", HOUR), ("m", MINUTE)):
        if seconds and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def format_size(size: int) -> str:
    """The shortest text `parse_size` reads back as `size` ("25MB", "512KB", "100")."""
    for unit, factor in (("GB", KIB**3), ("MB", KIB**2), ("KB", KIB)):
        if size and size % factor == 0:
            return f"{size // factor}{unit}"
    return str(size)


def toml_value(value: object) -> str:
    """A value as TOML: the few types the configuration uses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


# -- typed reads of one table --------------------------------------------------------------------


class Reader:
    """Collects the problems of one configuration and remembers which keys were read."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.problems: list[str] = []
        self.tables: list[Table] = []

    def table(self, label: str, value: Any) -> Table:
        table = Table(self, label, value)
        self.tables.append(table)
        return table

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def check(self) -> None:
        if self.problems:
            raise SettingsError(self.problems)

    def known(self) -> list[str]:
        """Every key the sections read (given or not), by its place."""
        return [table.place(key) for table in self.tables for key in sorted(table.read)]

    def unread(self) -> list[str]:
        """Keys that no section reads (misspelt, or of another version)."""
        return [table.place(key) for table in self.tables for key in table.values if key not in table.read]


class Table:
    """Typed reads from one table of the configuration; a value that does not read is a problem
    named after its key, and its default stands in for it."""

    def __init__(self, reader: Reader, label: str, value: Any) -> None:
        self.reader, self.label = reader, label
        self.read: set[str] = set()
        self.values: Mapping[str, Any] = {}
        if value is None:
            return
        if isinstance(value, Mapping):
            self.values = value
        else:
            reader.problem(f"{label}: must be a table, got {value!r}")

    def place(self, key: str) -> str:
        """`smtp.listen`; `[[imap]] support: port` for a table of a list."""
        return f"{self.label}: {key}" if self.label.startswith("[[") else f"{self.label}.{key}"

    def problem(self, key: str, text: str) -> None:
        self.reader.problem(f"{self.place(key)}: {text}")

    def __contains__(self, key: str) -> bool:
        return key in self.values

    def get(self, key: str, default: T, parse: Callable[[Any], T]) -> T:
        """The key's value read by `parse`; the default when it is absent or does not read."""
        self.read.add(key)
        if key not in self.values:
            return default
        try:
            return parse(self.values[key])
        except ValueError as exc:
            self.problem(key, str(exc))
            return default

    def text(self, key: str, default: str) -> str:
        return self.get(key, default, parse_text)

    def opt_text(self, key: str) -> str | None:
        return self.get(key, None, lambda v: parse_text(v) or None)

    def flag(self, key: str, default: bool) -> bool:
        return self.get(key, default, parse_bool)

    def whole(self, key: str, default: int, minimum: int | None = 0) -> int:
        return self.get(key, default, lambda v: parse_whole(v, minimum))

    def number(self, key: str, default: float) -> float:
        return self.get(key, default, parse_number)

    def size(self, key: str, default: int) -> int:
        return self.get(key, default, parse_size)

    def duration(self, key: str, default: float, *, positive: bool = False) -> float:
        return self.get(key, default, lambda v: parse_duration(v, positive=positive))

    def path(self, key: str, default: str | None = None) -> Path | None:
        def read(value: Any) -> Path | None:
            if value == "":
                return None
            if not isinstance(value, str):
                raise ValueError(f"must be a path string, got {value!r}")
            return resolve(self.reader.base, value)

        return self.get(key, None if default is None else resolve(self.reader.base, default), read)

    def texts(self, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
        return self.get(key, default, parse_texts)

    def day(self, key: str, default: date | None = None) -> date | None:
        return self.get(key, default, parse_date)

    def sub(self, key: str) -> Table:
        """A table inside this one (`[routing.thresholds]`, `[sla.high]`)."""
        self.read.add(key)
        return self.reader.table(self.place(key), self.values.get(key))
