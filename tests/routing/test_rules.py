"""The rules file: each condition, first match per field, stop, priority raises, built-in rules, broken
files reported whole, and reloading that keeps the last good rules."""

from __future__ import annotations

import os
import textwrap
import tomllib
import unicodedata
from pathlib import Path

import pytest

from models.ticket import Priority
from routing.builtin_rules import BUILTIN_NAMES, BUILTIN_OUTAGE, BUILTIN_URGENCY, BUILTIN_VIP
from routing.config import DEFAULT_CATEGORIES
from routing.facts import AttachmentFacts, MailFacts
from routing.rule_errors import RulesError
from routing.rules import PriorityRaise, RuleSet, apply_raises
from routing.rules_loader import RulesHolder, load_rules

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "rules.example.toml"
BUILTIN_TOML = Path(__file__).resolve().parents[2] / "routing" / "builtin_rules.toml"


def write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def rules(tmp_path: Path, text: str, *, builtin: bool = False, vip: tuple[str, ...] = ()) -> RuleSet:
    return load_rules(write(tmp_path, text), DEFAULT_CATEGORIES, builtin=builtin, vip_senders=vip)


def mail(
    subject: str = "",
    body: str = "",
    sender: str = "user@example.com",
    *,
    language: str = "en",
    recipients: tuple[str, ...] = ("support@example.test",),
    headers: dict[str, tuple[str, ...]] | None = None,
    attachments: tuple[AttachmentFacts, ...] = (),
) -> MailFacts:
    return MailFacts(
        sender=sender,
        subject=subject,
        body=body,
        language=language,
        recipients=recipients,
        headers=headers or {},
        attachments=attachments,
    )


def one_rule(when: str) -> str:
    return f'[[rule]]\nname = "r"\n[rule.when]\n{when}\n[rule.then]\ncategory = "network"\n'


LOG = AttachmentFacts("vpn-client.log", "text/plain", 1200)
PNG = AttachmentFacts("screen.png", "image/png", 50_000)

CONDITION_CASES = [
    # (condition, a mail it matches, a mail it does not)
    ('subject_contains = "vpn"', mail("VPN keeps dropping"), mail("printer", "vpn")),
    ('subject_contains = ["vpn", "anyconnect"]', mail("AnyConnect error"), mail("vpnclient crash")),
    ('subject_contains = "down"', mail("server down"), mail("download fails")),
    ('subject_contains = "c++"', mail("C++ compiler"), mail("c compiler")),
    ('body_contains = "tunnel"', mail("x", "the Tunnel drops"), mail("tunnel", "x")),
    ('subject_or_body_contains = "toner"', mail("x", "no toner"), mail("x", "tonerless")),
    ('subject_or_body_contains = "nie działa"', mail("Drukarka NIE DZIAŁA"), mail("nie działał")),
    ('subject_or_body_contains = "nie działa"', mail("x", "nie\n  działa"), mail("nie dziala")),
    (
        'body_contains = "funktioniert nicht"',
        mail("", "Drucker Funktioniert nicht"),
        mail("", "funktioniert"),
    ),
    ('subject_contains = "awari*"', mail("Zgłaszam awarię"), mail("awaryjny")),
    ('subject_contains = "*ausfall*"', mail("Stromausfall im Büro"), mail("Ausfahrt")),
    ('subject_matches = "tunnel\\\\s+(down|drops)"', mail("TUNNEL  drops"), mail("tunnel up")),
    ("subject_matches = '(?-i:VPN)'", mail("VPN"), mail("vpn")),
    ("body_matches = ['^error \\d+', 'fatal']", mail("", "Error 42 here"), mail("", "error x")),
    ("subject_or_body_matches = 'ticket-\\d+'", mail("", "see TICKET-7"), mail("ticket-x")),
    ('sender = "CEO@example.com"', mail(sender="ceo@example.com"), mail(sender="cto@example.com")),
    ('sender_domain = "example.com"', mail(sender="a@eu.example.com"), mail(sender="a@notexample.com")),
    ('sender_domain = ["@corp.test", "example.org"]', mail(sender="a@corp.test"), mail(sender="a@corp.tes")),
    (
        'recipient = "support+network@example.test"',
        mail(recipients=("x@example.test", "Support+Network@example.test")),
        mail(recipients=("support@example.test",)),
    ),
    ('language = ["pl", "de"]', mail(language="de"), mail(language="en")),
    (
        "header = { \"X-Priority\" = '^1\\b' }",
        mail(headers={"x-priority": ("1 (Highest)",)}),
        mail(headers={"x-priority": ("3",)}),
    ),
    ('header = { "X-Custom" = "" }', mail(headers={"x-custom": ("",)}), mail()),
    (
        'header = { "X-A" = ["one", "two"], "X-B" = "yes" }',
        mail(headers={"x-a": ("two",), "x-b": ("YES",)}),
        mail(headers={"x-a": ("two",)}),
    ),
    ("has_attachment = true", mail(attachments=(LOG,)), mail()),
    ("has_attachment = false", mail(), mail(attachments=(LOG,))),
    ("attachment_name_matches = '\\.log$'", mail(attachments=(PNG, LOG)), mail(attachments=(PNG,))),
    ('attachment_type = "image/*"', mail(attachments=(PNG,)), mail(attachments=(LOG,))),
]


@pytest.mark.parametrize(("condition", "matching", "other"), CONDITION_CASES)
def test_condition(tmp_path: Path, condition: str, matching: MailFacts, other: MailFacts) -> None:
    rule_set = rules(tmp_path, one_rule(condition))
    assert rule_set.evaluate(matching).matched == ("r",)
    assert rule_set.evaluate(other).matched == ()


def test_keywords_match_whichever_way_letters_are_composed(tmp_path: Path) -> None:
    rule_set = rules(tmp_path, one_rule('subject_contains = "zgłaszam awarię"'))
    decomposed = unicodedata.normalize("NFD", "ZGŁASZAM AWARIĘ serwera")
    assert decomposed != unicodedata.normalize("NFC", decomposed)
    assert rule_set.evaluate(mail(decomposed)).matched == ("r",)


def test_conditions_all_hold_and_unless_any_excludes(tmp_path: Path) -> None:
    rule_set = rules(
        tmp_path,
        """
        [[rule]]
        name = "vpn"
        [rule.when]
        subject_contains = "vpn"
        sender_domain = "example.com"
        [rule.unless]
        subject_contains = "licence"
        language = "de"
        [rule.then]
        category = "network"
        """,
    )
    assert rule_set.evaluate(mail("vpn down")).matched == ("vpn",)
    assert rule_set.evaluate(mail("vpn down", sender="a@other.test")).matched == ()
    assert rule_set.evaluate(mail("vpn licence")).matched == ()
    assert rule_set.evaluate(mail("vpn down", language="de")).matched == ()


FIELDS = """
[[rule]]
name = "first"
description = "the first word"
[rule.when]
subject_contains = "vpn"
[rule.then]
category = "network"
tags = ["vpn", "net"]

[[rule]]
name = "second"
[rule.when]
subject_contains = "vpn"
[rule.then]
category = "software"
priority = "high"
assignee = "Alice@Example.test"
tags = ["net", "second"]

[[rule]]
name = "third"
[rule.when]
subject_contains = "vpn"
[rule.then]
priority = "low"
assignee = "bob@example.test"
stop = true

[[rule]]
name = "after-stop"
[rule.when]
subject_contains = "vpn"
[rule.then]
tags = ["never"]
"""


def test_first_matching_rule_per_field_and_stop(tmp_path: Path) -> None:
    outcome = rules(tmp_path, FIELDS).evaluate(mail("VPN"))
    assert outcome.category is not None
    assert (outcome.category.value, outcome.category.rule) == ("network", "first")
    assert outcome.category.description == "the first word"
    # The first rule left priority and assignee unset, so the second one sets them.
    assert outcome.priority is not None
    assert (outcome.priority.value, outcome.priority.rule) == ("high", "second")
    assert outcome.assignee is not None
    assert (outcome.assignee.value, outcome.assignee.rule) == ("alice@example.test", "second")
    assert outcome.tags == ("vpn", "net", "second")
    assert outcome.matched == ("first", "second", "third")
    assert outcome.stopped_by == "third"


def test_stop_also_stops_builtin_rules(tmp_path: Path) -> None:
    text = one_rule('subject_contains = "nagios"').replace('category = "network"', "stop = true")
    outcome = rules(tmp_path, text, builtin=True).evaluate(mail("nagios: CRITICAL outage"))
    assert outcome.matched == ("r",)
    assert outcome.raises == ()


def test_raises_accumulate_and_explicit_priority_is_recorded(tmp_path: Path) -> None:
    text = """
    [[rule]]
    name = "floor"
    [rule.when]
    subject_contains = "vpn"
    [rule.then]
    raise_priority_to = "high"

    [[rule]]
    name = "step"
    [rule.when]
    subject_contains = "vpn"
    [rule.then]
    raise_priority = 1
    """
    outcome = rules(tmp_path, text).evaluate(mail("vpn"))
    assert outcome.priority is None
    assert outcome.raises == (PriorityRaise("floor", to=Priority.HIGH), PriorityRaise("step", steps=1))


@pytest.mark.parametrize(
    ("base", "raises", "expected", "rule"),
    [
        (Priority.NORMAL, [], Priority.NORMAL, None),
        (Priority.NORMAL, [PriorityRaise("a", to=Priority.HIGH)], Priority.HIGH, "a"),
        (Priority.URGENT, [PriorityRaise("a", to=Priority.HIGH)], Priority.URGENT, None),
        (Priority.LOW, [PriorityRaise("v", steps=1)], Priority.NORMAL, "v"),
        (
            Priority.NORMAL,
            [PriorityRaise("a", to=Priority.HIGH), PriorityRaise("v", steps=1)],
            Priority.URGENT,
            "v",
        ),
        (Priority.HIGH, [PriorityRaise("v", steps=1), PriorityRaise("w", steps=2)], Priority.URGENT, "v"),
        (
            Priority.NORMAL,
            [PriorityRaise("a", to=Priority.HIGH), PriorityRaise("b", to=Priority.URGENT)],
            Priority.URGENT,
            "b",
        ),
    ],
)
def test_apply_raises(
    base: Priority, raises: list[PriorityRaise], expected: Priority, rule: str | None
) -> None:
    raised = apply_raises(base, raises)
    assert (raised.value, raised.rule) == (expected, rule)


# Built-in rules -------------------------------------------------------------------------------------


def builtin_set(vip: tuple[str, ...] = ()) -> RuleSet:
    return load_rules(None, DEFAULT_CATEGORIES, vip_senders=vip)


def lifted(rule_set: RuleSet, facts: MailFacts) -> tuple[Priority, str | None]:
    raised = apply_raises(Priority.NORMAL, rule_set.evaluate(facts).raises)
    return raised.value, raised.rule


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Need this ASAP", ""),
        ("", "This is URGENT, please"),
        ("Critical: payroll export", ""),
        ("", "Laptop is not working since Monday"),
        ("Pilne: faktura", ""),
        ("", "Proszę pilnie o pomoc"),
        ("", "Potrzebuję tego natychmiast"),
        ("Drukarka nie działa", ""),
        ("", "Skaner NIE DZIAŁA od rana"),
        ("", "drukarka nie dziala"),
        ("", "Po aktualizacji zgłaszam awarię drukarki"),
        ("Dringend: Zugang gesperrt", ""),
        ("", "Das ist ein Notfall!"),
        ("", "Bitte sofort prüfen, eilig"),
        ("Drucker funktioniert nicht", ""),
    ],
)
def test_builtin_urgency_words_raise_to_high(subject: str, body: str) -> None:
    assert lifted(builtin_set(), mail(subject, body)) == (Priority.HIGH, BUILTIN_URGENCY)


@pytest.mark.parametrize(
    "subject",
    [
        "Email outage",
        "VPN is down",
        "Awaria poczty",
        "Zgłaszam awarię serwera",
        "Netzwerkausfall",
        "Ausfall VPN",
    ],
)
def test_builtin_outage_in_subject_raises_to_urgent(subject: str) -> None:
    assert lifted(builtin_set(), mail(subject)) == (Priority.URGENT, BUILTIN_OUTAGE)


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Download of the report fails", "please help"),
        ("Entschuldigen Sie die Störung", "eine Frage zum Urlaub"),
        ("Pytanie o fakturę", "dziękuję"),
        ("Shutting down the old file share", "when?"),
    ],
)
def test_builtin_rules_leave_ordinary_mail_alone(subject: str, body: str) -> None:
    assert lifted(builtin_set(), mail(subject, body)) == (Priority.NORMAL, None)


def test_vip_senders_by_address_and_domain_raise_one_step() -> None:
    rule_set = builtin_set(vip=("CEO@example.com", "@board.example.org", "exec.example.net"))
    assert lifted(rule_set, mail(sender="ceo@example.com")) == (Priority.HIGH, BUILTIN_VIP)
    assert lifted(rule_set, mail(sender="chair@eu.board.example.org")) == (Priority.HIGH, BUILTIN_VIP)
    assert lifted(rule_set, mail(sender="a@exec.example.net")) == (Priority.HIGH, BUILTIN_VIP)
    assert lifted(rule_set, mail(sender="cfo@example.com")) == (Priority.NORMAL, None)
    # An urgency word from a VIP: high, then one step more.
    assert lifted(rule_set, mail("urgent", sender="ceo@example.com")) == (Priority.URGENT, BUILTIN_VIP)


def test_no_vip_rule_without_vip_senders() -> None:
    assert BUILTIN_VIP not in builtin_set().names


def test_bad_vip_entries_are_reported() -> None:
    with pytest.raises(RulesError) as caught:
        builtin_set(vip=("ceo@", "not a domain", "ok.example.com"))
    message = str(caught.value)
    assert "vip_senders: 'ceo@'" in message
    assert "vip_senders: 'not a domain'" in message


def test_a_file_rule_replaces_the_builtin_of_the_same_name(tmp_path: Path) -> None:
    text = """
    [[rule]]
    name = "builtin-urgency"
    [rule.when]
    subject_contains = "pronto"
    [rule.then]
    raise_priority_to = "urgent"
    """
    rule_set = rules(tmp_path, text, builtin=True)
    assert rule_set.names == ("builtin-urgency", BUILTIN_OUTAGE)
    assert lifted(rule_set, mail("pronto")) == (Priority.URGENT, "builtin-urgency")
    assert lifted(rule_set, mail("", "asap")) == (Priority.NORMAL, None)


def test_builtins_can_be_disabled_one_by_one_or_all(tmp_path: Path) -> None:
    path = write(tmp_path, 'disabled_builtins = ["builtin-outage"]\n')
    assert load_rules(path, DEFAULT_CATEGORIES).names == (BUILTIN_URGENCY,)
    assert load_rules(path, DEFAULT_CATEGORIES, builtin=False, vip_senders=["ceo@example.com"]).names == ()


def test_builtin_rule_file_names_its_rules_as_the_code_does() -> None:
    names = [rule["name"] for rule in tomllib.loads(BUILTIN_TOML.read_text(encoding="utf-8"))["rule"]]
    assert (*names, BUILTIN_VIP) == BUILTIN_NAMES


def test_example_rules_file_loads_and_routes() -> None:
    rule_set = load_rules(EXAMPLE, DEFAULT_CATEGORIES)
    assert "vpn" in rule_set.names
    assert "krakow-office" not in rule_set.names  # enabled = false
    outcome = rule_set.evaluate(mail("AnyConnect keeps dropping"))
    assert outcome.category is not None
    assert outcome.category.rule == "vpn"


# Broken files ---------------------------------------------------------------------------------------

BROKEN = """
unknown_top = 1

[[rule]]
name = "bad-regex"
[rule.when]
body_matches = ['ok', 'tunnel(']
[rule.then]
category = "network"

[[rule]]
description = "nameless"
[rule.when]
subject_contains = "x"
[rule.then]
category = "network"

[[rule]]
name = "typo"
[rule.when]
subjet_contains = "x"
[rule.then]
categroy = "network"

[[rule]]
name = "bad-values"
[rule.when]
subject_contains = "x"
[rule.then]
category = "printer"
priority = "highest"

[[rule]]
name = "typo"
[rule.when]
subject_contains = "x"
[rule.then]
priority = "high"
raise_priority = 1

[[rule]]
name = "no when or then"

[[rule]]
name = "wrong-types"
[rule.when]
has_attachment = "yes"
sender = ["not-an-address"]
subject_contains = ["fine", "mid*dle", "**"]
header = { "X-Priority" = "(" }
[rule.then]
raise_priority = 0
tags = "one"
stop = "yes"
"""


def test_a_broken_file_reports_every_problem_with_file_and_rule(tmp_path: Path) -> None:
    path = write(tmp_path, BROKEN)
    with pytest.raises(RulesError) as caught:
        load_rules(path, DEFAULT_CATEGORIES)
    error = caught.value
    message = str(error)
    assert str(path) in message
    expected = [
        ("file", "unknown key 'unknown_top'"),
        ('rule #1 "bad-regex"', "when.body_matches: bad regular expression 'tunnel('"),
        ("rule #2 (no name)", "missing name"),
        ('rule #3 "typo"', "unknown condition when.subjet_contains (did you mean 'subject_contains'?)"),
        ('rule #3 "typo"', "unknown action then.categroy (did you mean 'category'?)"),
        ('rule #4 "bad-values"', "then.category: unknown category 'printer' (did you mean 'printing'?)"),
        ('rule #4 "bad-values"', "then.priority: unknown priority 'highest'"),
        ('rule #5 "typo"', "duplicate name: rule #3 is also called 'typo'"),
        ('rule #5 "typo"', "then.priority and then.raise_priority: choose one"),
        ('rule #6 "no when or then"', "must be one word"),
        ('rule #6 "no when or then"', "missing [rule.when]"),
        ('rule #6 "no when or then"', "missing [rule.then]"),
        ('rule #7 "wrong-types"', "when.has_attachment: expected true or false"),
        ('rule #7 "wrong-types"', "when.sender: 'not-an-address' is not an address"),
        ('rule #7 "wrong-types"', "when.subject_contains: keyword 'mid*dle'"),
        ('rule #7 "wrong-types"', "when.subject_contains: keyword '**' has no letters"),
        ('rule #7 "wrong-types"', "when.header: header 'X-Priority': bad regular expression '('"),
        ('rule #7 "wrong-types"', "then.raise_priority: expected a number of steps from 1 to 3"),
        ('rule #7 "wrong-types"', "then.stop: expected true or false"),
    ]
    for where, text in expected:
        assert any(p.where == where and text in p.message for p in error.problems), (where, text, message)
        assert f"{where}: " in message
    assert len(error.problems) == len(expected)


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[[rule]]\nname = "x\n')
    with pytest.raises(RulesError) as caught:
        load_rules(path, DEFAULT_CATEGORIES)
    assert str(path) in str(caught.value)
    assert "not valid TOML" in str(caught.value)
    assert "line 2" in str(caught.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read it"):
        load_rules(tmp_path / "absent.toml", DEFAULT_CATEGORIES)


def test_a_key_after_a_rule_header_is_explained(tmp_path: Path) -> None:
    text = one_rule('subject_contains = "x"') + 'disabled_builtins = ["builtin-vip"]\n'
    with pytest.raises(RulesError, match="belongs at the top of the file"):
        rules(tmp_path, text)


def test_unknown_disabled_builtin_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="no built-in rule is called 'builtin-urgent'"):
        rules(tmp_path, 'disabled_builtins = ["builtin-urgent"]\n')


def test_the_rule_set_is_immutable(tmp_path: Path) -> None:
    rule_set = rules(tmp_path, one_rule('subject_contains = "x"'))
    with pytest.raises(AttributeError):
        rule_set.rules = ()  # type: ignore[misc]
    assert isinstance(rule_set.rules, tuple)
    assert isinstance(rule_set.categories, frozenset)
    assert "triage" in rule_set.categories


# Reloading ------------------------------------------------------------------------------------------


def rewrite(path: Path, text: str) -> None:
    """Write and move the modification time on, so a change is seen even on coarse-grained clocks."""
    before = path.stat().st_mtime_ns
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def test_reload_keeps_the_last_good_rules(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, one_rule('subject_contains = "vpn"'))
    holder = RulesHolder(path, DEFAULT_CATEGORIES, builtin=False)
    good = holder.current
    assert good.names == ("r",)

    rewrite(path, one_rule('subject_contains = "tunnel("').replace("subject_contains", "subject_matches"))
    assert holder.reload() is False
    assert holder.current is good
    assert holder.last_error is not None
    assert "bad regular expression" in str(holder.last_error)
    assert "kept the previous 1 rules" in caplog.text

    rewrite(path, one_rule('subject_contains = "printer"').replace('name = "r"', 'name = "printers"'))
    assert holder.reload() is True
    assert holder.current.names == ("printers",)
    assert holder.last_error is None


def test_reload_if_changed_looks_at_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, one_rule('subject_contains = "vpn"'))
    holder = RulesHolder(path, DEFAULT_CATEGORIES, builtin=False)
    assert holder.reload_if_changed() is False
    rewrite(path, one_rule('subject_contains = "vpn"').replace('name = "r"', 'name = "vpn"'))
    assert holder.reload_if_changed() is True
    assert holder.current.names == ("vpn",)
    # A broken change is tried once, then not again until the file changes once more.
    rewrite(path, "[[rule]\n")
    assert holder.reload_if_changed() is False
    assert holder.last_error is not None
    holder.last_error = None
    assert holder.reload_if_changed() is False
    assert holder.last_error is None
    assert holder.current.names == ("vpn",)


def test_holder_refuses_a_broken_file_at_start(tmp_path: Path) -> None:
    path = write(tmp_path, one_rule('nonsense = "x"'))
    with pytest.raises(RulesError, match=r"unknown condition when\.nonsense"):
        RulesHolder(path, DEFAULT_CATEGORIES)
