"""`helpdesk technicians set EMAIL key=value ...`: one technician's settings changed by words.

Each word is checked as the roster file's entries are (`routing.people`), and every bad word is
reported at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import replace
from types import MappingProxyType

from routing.people import (
    SETTING_KEYS,
    SHIFT_SEPARATOR,
    PeopleError,
    Technician,
    check_bool,
    check_category,
    check_languages,
    check_max_open,
    check_name,
    check_shifts,
    check_skill_level,
    check_tier,
    suggest,
)
from routing.shifts import check_timezone


def _int_word(value: str) -> int:
    try:
        return int(value.strip())
    except ValueError:
        raise ValueError(f"must be a whole number, got {value!r}") from None


def apply_setting(tech: Technician, setting: str, *, categories: Collection[str] | None = None) -> Technician:
    """Apply one `key=value` word and return the changed technician; raise `PeopleError` if invalid.

    Keys: active, tier, max_open, name, timezone, languages=pl,en, shifts=SPEC;SPEC (a semicolon
    between shifts, as a spec may hold commas), skills.CATEGORY=LEVEL (0 or "none" removes the skill),
    skills=network:5,printing:2 (replaces them all; empty clears them). The email cannot be set: it is
    the technician's identity.
    """
    key, sep, value = setting.partition("=")
    key = key.strip()
    if not sep or not key:
        raise PeopleError([f'setting "{setting}": expected key=value, e.g. active=false'])
    try:
        return _apply(tech, key, value.strip(), categories)
    except ValueError as exc:
        raise PeopleError([f"{tech.email}: {key}: {exc}"]) from None


def apply_settings(
    tech: Technician, settings: Iterable[str], *, categories: Collection[str] | None = None
) -> Technician:
    """Apply several `key=value` words in order; report every bad one at once."""
    problems: list[str] = []
    for setting in settings:
        try:
            tech = apply_setting(tech, setting, categories=categories)
        except PeopleError as exc:
            problems.extend(exc.problems)
    if problems:
        raise PeopleError(problems)
    return tech


def _apply(tech: Technician, key: str, value: str, categories: Collection[str] | None) -> Technician:
    if key.startswith("skills."):
        category = check_category(key.removeprefix("skills."), categories)
        skills = dict(tech.skills)
        if value.lower() in ("0", "none", ""):
            skills.pop(category, None)
        else:
            skills[category] = check_skill_level(category, _int_word(value))
        return replace(tech, skills=MappingProxyType(skills))
    match key:
        case "active":
            return replace(tech, active=check_bool(value))
        case "tier":
            return replace(tech, tier=check_tier(_int_word(value)))
        case "max_open":
            return replace(tech, max_open=check_max_open(_int_word(value)))
        case "name":
            return replace(tech, name=check_name(value))
        case "timezone":
            return replace(tech, timezone=check_timezone(value))
        case "languages":
            return replace(tech, languages=check_languages([v for v in value.split(",") if v.strip()]))
        case "shifts":
            specs = [spec for spec in value.split(SHIFT_SEPARATOR) if spec.strip()]
            return replace(tech, schedule=check_shifts(specs))
        case "skills":
            return replace(tech, skills=MappingProxyType(_parse_skill_list(value, categories)))
        case "email":
            raise ValueError("cannot be changed: the email is the technician's identity (add a new one)")
    raise ValueError(f"unknown setting (one of: {', '.join(SETTING_KEYS)}){suggest(key, SETTING_KEYS)}")


def _parse_skill_list(value: str, categories: Collection[str] | None) -> dict[str, int]:
    skills: dict[str, int] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        category, sep, level = item.partition(":")
        if not sep:
            raise ValueError(f'"{item}": write CATEGORY:LEVEL, e.g. network:5')
        category = check_category(category, categories)
        skills[category] = check_skill_level(category, _int_word(level))
    return skills
