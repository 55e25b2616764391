"""Technicians and coordinators: the typed roster read from a TOML file, validated, and edited.

The file holds `[[technician]]` and `[[coordinator]]` tables (see deploy/technicians.example.toml).
`parse_people` checks every entry and reports all problems at once, each naming the entry and the
field, so an admin fixes the file in one pass. `routing.technician_settings` reads the `key=value` words of
`helpdesk technicians set EMAIL ...` and returns an updated `Technician`.

Nothing here touches the database: the caller stores what these functions return.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from routing.errors import RoutingError
from routing.facts import DEFAULT_CATEGORY
from routing.shifts import Schedule, ShiftSpecError, check_timezone, parse_schedule

T = TypeVar("T")

MIN_TIER = 1  # first line
MAX_TIER = 3  # specialists
MIN_SKILL = 1
MAX_SKILL = 5
DEFAULT_LANGUAGES: tuple[str, ...] = ("en",)
DEFAULT_TIMEZONE = "UTC"
DEFAULT_MAX_OPEN = 10
# The separator of several shifts in one CLI value: a shift spec may itself hold commas.
SHIFT_SEPARATOR = ";"

_LANGUAGE_RE = re.compile(r"^[a-z]{2,3}$")  # ISO 639-1 or 639-2/3, as the language detector reports
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

TECHNICIAN_KEYS = ("name", "email", "tier", "languages", "timezone", "max_open", "shifts", "skills", "active")
COORDINATOR_KEYS = ("name", "email", "language")
TOP_LEVEL_KEYS = ("technician", "coordinator")
SETTING_KEYS = (
    "active",
    "tier",
    "max_open",
    "languages",
    "timezone",
    "shifts",
    "skills",
    "skills.CATEGORY",
    "name",
)


class PeopleError(RoutingError, ValueError):
    """The roster or a setting is invalid; `problems` lists every problem, one line each."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Technician:
    name: str
    email: str  # lower-cased; the technician's identity
    schedule: Schedule  # the `shifts` key, read in `timezone`
    tier: int = MIN_TIER  # 1 first line, 2, 3 specialist
    languages: tuple[str, ...] = DEFAULT_LANGUAGES
    timezone: str = DEFAULT_TIMEZONE  # an IANA zone name
    max_open: int = DEFAULT_MAX_OPEN  # the most open load (weighted by priority) before they are full
    # Category -> level 1..5. Kept out of the hash: a mapping is not hashable.
    skills: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    active: bool = True

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def handle(self) -> str:
        """The short name used in explanations ("alicja" for alicja@example.test)."""
        return self.email.partition("@")[0]

    def skill(self, category: str) -> int:
        """Their level in `category`, 0 when they have none."""
        return self.skills.get(category, 0)

    def speaks(self, language: str) -> bool:
        return language in self.languages

    def as_dict(self) -> dict[str, Any]:
        """A JSON- and TOML-able form, with the same keys as the file."""
        return {
            "name": self.name,
            "email": self.email,
            "tier": self.tier,
            "languages": list(self.languages),
            "timezone": self.timezone,
            "max_open": self.max_open,
            "shifts": list(self.schedule.specs),
            "skills": dict(sorted(self.skills.items())),
            "active": self.active,
        }


@dataclass(frozen=True)
class Coordinator:
    name: str
    email: str  # lower-cased
    language: str = "en"  # the language of the mail they are sent

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "email": self.email, "language": self.language}


@dataclass(frozen=True)
class People:
    technicians: tuple[Technician, ...] = ()
    coordinators: tuple[Coordinator, ...] = ()

    def technician(self, email: str) -> Technician | None:
        wanted = email.strip().lower()
        return next((tech for tech in self.technicians if tech.email == wanted), None)


def parse_people_toml(text: str, *, categories: Collection[str] | None = None) -> People:
    """Read the technicians file's text. `categories`, when given, is the set a skill must name."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PeopleError([f"not valid TOML: {exc}"]) from exc
    return parse_people(data, categories=categories)


def parse_people(data: Mapping[str, Any], *, categories: Collection[str] | None = None) -> People:
    """Build the roster from parsed TOML; raise `PeopleError` listing every problem found."""
    problems: list[str] = []
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            problems.append(f"unknown table [[{key}]]{suggest(key, TOP_LEVEL_KEYS, '[[{}]]')}")
    technicians: list[Technician] = []
    for index, entry in enumerate(_entries(data, "technician", problems), start=1):
        tech = _technician_from_entry(entry, _label("technician", index, entry), categories, problems)
        if tech is not None:
            technicians.append(tech)
    coordinators: list[Coordinator] = []
    for index, entry in enumerate(_entries(data, "coordinator", problems), start=1):
        coordinator = _coordinator_from_entry(entry, _label("coordinator", index, entry), problems)
        if coordinator is not None:
            coordinators.append(coordinator)
    # A person may be both a technician and a coordinator, but not listed twice as either.
    _check_unique("technician", [t.email for t in technicians], problems)
    _check_unique("coordinator", [c.email for c in coordinators], problems)
    if problems:
        raise PeopleError(problems)
    return People(technicians=tuple(technicians), coordinators=tuple(coordinators))


def _entries(data: Mapping[str, Any], kind: str, problems: list[str]) -> list[Mapping[str, Any]]:
    value = data.get(kind, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.append(f"[[{kind}]] must be an array of tables (write each entry under its own [[{kind}]])")
        return []
    return value


def _label(kind: str, index: int, entry: Mapping[str, Any]) -> str:
    email = entry.get("email")
    who = f" ({email.strip().lower()})" if isinstance(email, str) and email.strip() else ""
    return f"{kind} {index}{who}"


def _check_unique(kind: str, emails: list[str], problems: list[str]) -> None:
    seen: set[str] = set()
    for email in emails:
        if email in seen:
            problems.append(f"{kind} {email}: duplicate email, listed more than once")
        seen.add(email)


def suggest(word: str, choices: Iterable[str], template: str = '"{}"') -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {template.format(close[0])}?)" if close else ""


def _technician_from_entry(
    entry: Mapping[str, Any], label: str, categories: Collection[str] | None, problems: list[str]
) -> Technician | None:
    before = len(problems)
    for key in entry:
        if key not in TECHNICIAN_KEYS:
            problems.append(f"{label}: unknown key {key!r}{suggest(key, TECHNICIAN_KEYS)}")
    for key in ("name", "email", "shifts"):
        if key not in entry:
            problems.append(f"{label}: {key} is missing")

    def check(key: str, default: T, checker: Callable[[Any], T]) -> T:
        if key not in entry:
            return default
        try:
            return checker(entry[key])
        except ValueError as exc:
            problems.append(f"{label}: {key}: {exc}")
            return default

    name = check("name", "", check_name)
    email = check("email", "", _check_email)
    tier = check("tier", MIN_TIER, check_tier)
    languages = check("languages", DEFAULT_LANGUAGES, check_languages)
    timezone = check("timezone", DEFAULT_TIMEZONE, check_timezone)
    max_open = check("max_open", DEFAULT_MAX_OPEN, check_max_open)
    schedule = check("shifts", None, check_shifts)
    skills: dict[str, int] = check("skills", {}, lambda value: _check_skills(value, categories))
    active = check("active", True, check_bool)
    if len(problems) > before or schedule is None:
        return None
    return Technician(
        name=name,
        email=email,
        schedule=schedule,
        tier=tier,
        languages=languages,
        timezone=timezone,
        max_open=max_open,
        skills=MappingProxyType(skills),
        active=active,
    )


def _coordinator_from_entry(entry: Mapping[str, Any], label: str, problems: list[str]) -> Coordinator | None:
    before = len(problems)
    for key in entry:
        if key not in COORDINATOR_KEYS:
            problems.append(f"{label}: unknown key {key!r}{suggest(key, COORDINATOR_KEYS)}")
    values: dict[str, Any] = {}
    for key, checker in (("name", check_name), ("email", _check_email), ("language", _check_language)):
        if key not in entry:
            if key != "language":
                problems.append(f"{label}: {key} is missing")
            continue
        try:
            values[key] = checker(entry[key])
        except ValueError as exc:
            problems.append(f"{label}: {key}: {exc}")
    if len(problems) > before:
        return None
    return Coordinator(**values)


# Field checks: each returns the clean value or raises ValueError with a message naming no entry
# (the caller says which entry and field it was).


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return " ".join(value.split())


def _check_email(value: Any) -> str:
    if not isinstance(value, str) or not _EMAIL_RE.match(value.strip()):
        raise ValueError(f"{value!r} is not an email address")
    return value.strip().lower()


def _check_int(value: Any) -> int:
    # TOML booleans are Python bools, which are ints: `tier = true` must not read as tier 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"must be a whole number, got {value!r}")
    return value


def check_tier(value: Any) -> int:
    tier = _check_int(value)
    if not MIN_TIER <= tier <= MAX_TIER:
        raise ValueError(f"must be {MIN_TIER} (first line) to {MAX_TIER} (specialist), got {tier}")
    return tier


def check_max_open(value: Any) -> int:
    max_open = _check_int(value)
    if max_open < 1:
        raise ValueError(f"must be at least 1, got {max_open} (set active = false to stop assignments)")
    return max_open


def _check_language(value: Any) -> str:
    if not isinstance(value, str) or not _LANGUAGE_RE.match(value.strip().lower()):
        raise ValueError(f'{value!r} is not a language code (ISO 639-1, e.g. "pl")')
    return value.strip().lower()


def check_languages(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list) or not value:
        raise ValueError('must be a non-empty list of language codes, e.g. ["pl", "en"]')
    return tuple(dict.fromkeys(_check_language(item) for item in value))


def check_shifts(value: Any) -> Schedule:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise ValueError('must be a list of shift specs, e.g. ["mon-fri 08:00-16:00"]')
    try:
        return parse_schedule(value)
    except ShiftSpecError as exc:
        raise ValueError(str(exc)) from None


def check_skill_level(category: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_SKILL <= value <= MAX_SKILL:
        raise ValueError(f"{category}: level must be {MIN_SKILL} to {MAX_SKILL}, got {value!r}")
    return value


def check_category(category: str, categories: Collection[str] | None) -> str:
    if not category.strip():
        raise ValueError("a skill needs a category name")
    category = category.strip()
    if categories is not None and category not in categories and category != DEFAULT_CATEGORY:
        raise ValueError(f"unknown category {category!r}{suggest(category, categories)}")
    return category


def _check_skills(value: Any, categories: Collection[str] | None) -> dict[str, int]:
    if not isinstance(value, dict):
        raise ValueError("must be a table of category = level, e.g. { network = 5, printing = 2 }")
    problems: list[str] = []
    skills: dict[str, int] = {}
    for raw_category, level in value.items():
        try:
            category = check_category(str(raw_category), categories)
            skills[category] = check_skill_level(category, level)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise ValueError("; ".join(problems))
    return skills


_TRUE_WORDS = ("true", "yes", "on", "1")
_FALSE_WORDS = ("false", "no", "off", "0")


def check_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS + _FALSE_WORDS:
        return value.strip().lower() in _TRUE_WORDS
    raise ValueError(f"must be true or false, got {value!r}")
