"""The technicians file: parsing, every validation problem at once, and `key=value` settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from routing.people import PeopleError, Technician, parse_people, parse_people_toml
from routing.technician_settings import apply_setting, apply_settings

GOOD = """
[[technician]]
name = "Alicja Nowak"
email = "Alicja@Example.test"
tier = 1
languages = ["pl", "en"]
timezone = "Europe/Warsaw"
max_open = 12
shifts = ["mon-fri 08:00-16:00"]
skills = { network = 5, accounts = 3, printing = 2 }

[[technician]]
name = "Bob Smith"
email = "bob@example.test"
shifts = ["24/7"]

[[coordinator]]
name = "Carol Jones"
email = "CAROL@example.test"
"""

CATEGORIES = {"network", "accounts", "printing"}


def alicja() -> Technician:
    people = parse_people_toml(GOOD, categories=CATEGORIES)
    tech = people.technician("alicja@example.test")
    assert tech is not None
    return tech


def problems_of(text: str, categories: set[str] | None = None) -> tuple[str, ...]:
    with pytest.raises(PeopleError) as info:
        parse_people_toml(text, categories=categories)
    return info.value.problems


def test_parses_technicians_and_coordinators() -> None:
    people = parse_people_toml(GOOD, categories=CATEGORIES)
    tech = alicja()
    assert tech.email == "alicja@example.test"
    assert tech.name == "Alicja Nowak"
    assert tech.languages == ("pl", "en")
    assert tech.zone.key == "Europe/Warsaw"
    assert tech.max_open == 12
    assert tech.schedule.specs == ("mon-fri 08:00-16:00",)
    assert dict(tech.skills) == {"network": 5, "accounts": 3, "printing": 2}
    assert tech.skill("printing") == 2
    assert tech.skill("hardware") == 0
    assert tech.active
    assert tech.handle == "alicja"
    bob = people.technician("BOB@example.test")
    assert bob is not None
    assert (bob.tier, bob.languages, bob.timezone, bob.max_open, bob.active) == (1, ("en",), "UTC", 10, True)
    assert [c.email for c in people.coordinators] == ["carol@example.test"]
    assert people.coordinators[0].language == "en"


def test_technician_round_trips_through_as_dict() -> None:
    tech = alicja()
    assert parse_people({"technician": [tech.as_dict()]}).technicians == (tech,)


def test_the_example_file_is_valid() -> None:
    text = (Path(__file__).parents[2] / "deploy" / "technicians.example.toml").read_text()
    people = parse_people_toml(text)
    assert people.technicians
    assert people.coordinators


def test_all_problems_are_reported_naming_entry_and_field() -> None:
    text = """
[[technician]]
name = "A"
email = "a@example.test"
tier = 4
timezone = "Europe/Warsw"
shifts = ["mon-fri 8:00-25:00"]
skills = { network = 6, printng = 2 }
languages = ["polish"]

[[technician]]
name = "B"
email = "a@example.test"
shifts = ["24/7"]
max_open = 0
active = "maybe"
skils = {}

[[technician]]
email = "not-an-address"
"""
    problems = problems_of(text, CATEGORIES)
    joined = "\n".join(problems)
    assert "technician 1 (a@example.test): tier: must be 1 (first line) to 3 (specialist), got 4" in joined
    assert 'technician 1 (a@example.test): timezone: unknown time zone "Europe/Warsw"' in joined
    assert 'technician 1 (a@example.test): shifts: bad shift spec "mon-fri 8:00-25:00"' in joined
    assert "network: level must be 1 to 5, got 6" in joined
    assert "unknown category 'printng' (did you mean \"printing\"?)" in joined
    assert "languages: 'polish' is not a language code" in joined
    assert "technician 2 (a@example.test): max_open: must be at least 1" in joined
    assert "technician 2 (a@example.test): active: must be true or false" in joined
    assert "technician 2 (a@example.test): unknown key 'skils' (did you mean \"skills\"?)" in joined
    assert "technician 3 (not-an-address): name is missing" in joined
    assert "technician 3 (not-an-address): shifts is missing" in joined
    assert "email: 'not-an-address' is not an email address" in joined


def test_duplicate_emails_are_reported() -> None:
    text = """
[[technician]]
name = "A"
email = "a@example.test"
shifts = ["24/7"]
[[technician]]
name = "A again"
email = "A@example.test"
shifts = ["24/7"]
[[coordinator]]
name = "A"
email = "a@example.test"
"""
    assert problems_of(text) == ("technician a@example.test: duplicate email, listed more than once",)


def test_skill_categories_are_free_without_a_category_set() -> None:
    text = '[[technician]]\nname = "A"\nemail = "a@example.test"\nshifts = "24/7"\nskills = { any = 1 }\n'
    assert parse_people_toml(text).technicians[0].skill("any") == 1


def test_triage_is_always_a_known_category() -> None:
    text = '[[technician]]\nname = "A"\nemail = "a@example.test"\nshifts = "24/7"\nskills = { triage = 4 }\n'
    assert parse_people_toml(text, categories=CATEGORIES).technicians[0].skill("triage") == 4


def test_booleans_are_not_numbers() -> None:
    text = '[[technician]]\nname = "A"\nemail = "a@example.test"\nshifts = "24/7"\ntier = true\n'
    assert problems_of(text) == ("technician 1 (a@example.test): tier: must be a whole number, got True",)


def test_unknown_tables_and_bad_toml() -> None:
    assert problems_of('[[technicians]]\nname = "A"\n') == (
        "unknown table [[technicians]] (did you mean [[technician]]?)",
    )
    assert problems_of("[[technician]\n")[0].startswith("not valid TOML")
    assert problems_of('[technician]\nname = "A"\n')[0].startswith("[[technician]] must be an array")


def test_coordinator_problems() -> None:
    text = '[[coordinator]]\nname = ""\nemail = "c@example.test"\nlanguage = "english"\nphone = 1\n'
    problems = problems_of(text)
    assert "coordinator 1 (c@example.test): unknown key 'phone'" in problems
    assert "coordinator 1 (c@example.test): name: must be a non-empty string" in problems
    assert any("language: 'english' is not a language code" in p for p in problems)


def test_apply_settings() -> None:
    tech = apply_settings(
        alicja(),
        [
            "active=false",
            "tier=2",
            "max_open=8",
            "languages=de, en",
            "timezone=Europe/Berlin",
            "shifts=mon,wed 09:00-17:00; sat 10:00-14:00",
            "skills.network=4",
            "skills.printing=0",
            "name=  Alicja  Kowalska ",
        ],
        categories=CATEGORIES,
    )
    assert not tech.active
    assert tech.tier == 2
    assert tech.max_open == 8
    assert tech.languages == ("de", "en")
    assert tech.timezone == "Europe/Berlin"
    assert tech.schedule.specs == ("mon,wed 09:00-17:00", "sat 10:00-14:00")
    assert dict(tech.skills) == {"network": 4, "accounts": 3}
    assert tech.name == "Alicja Kowalska"
    assert tech.email == "alicja@example.test"


def test_apply_setting_replaces_all_skills() -> None:
    tech = apply_setting(alicja(), "skills=printing:5,accounts:1")
    assert dict(tech.skills) == {"printing": 5, "accounts": 1}
    assert dict(apply_setting(alicja(), "skills=").skills) == {}


def test_apply_setting_leaves_the_original_alone() -> None:
    tech = alicja()
    apply_setting(tech, "active=no")
    assert tech.active


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("active", "expected key=value"),
        ("tier=4", "alicja@example.test: tier: must be 1 (first line) to 3 (specialist), got 4"),
        ("tier=two", "tier: must be a whole number, got 'two'"),
        ("max_open=0", "max_open: must be at least 1"),
        ("timezone=Mars/Olympus", 'unknown time zone "Mars/Olympus"'),
        ("shifts=mon-fri 8-16", 'bad shift spec "mon-fri 8-16"'),
        ("shifts=", "no shifts given"),
        ("skills.network=9", "network: level must be 1 to 5, got 9"),
        ("skills.printng=3", "unknown category 'printng' (did you mean \"printing\"?)"),
        ("skills=network", "write CATEGORY:LEVEL"),
        ("languages=", "must be a non-empty list"),
        ("email=x@example.test", "cannot be changed"),
        ("actve=true", "unknown setting (one of: active, tier, max_open, languages, timezone"),
        ("actve=true", 'did you mean "active"?'),
    ],
)
def test_apply_setting_errors(setting: str, message: str) -> None:
    with pytest.raises(PeopleError) as info:
        apply_setting(alicja(), setting, categories=CATEGORIES)
    assert message in str(info.value)


def test_apply_settings_reports_every_bad_word() -> None:
    with pytest.raises(PeopleError) as info:
        apply_settings(alicja(), ["tier=9", "active=true", "max_open=-1"])
    assert len(info.value.problems) == 2
