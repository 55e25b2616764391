"""Routing reads text a stranger wrote: the classifier's cleaning and the rules are linear in it, and
an administrator's expression that backtracks without end is given up on, not waited for (issue 8)."""

from __future__ import annotations

import re
import time
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from routing import text_cleaning
from routing.condition_parsers import compile_regex
from routing.conditions import REGEX_BUDGET, MailView
from routing.config import DEFAULT_CATEGORIES
from routing.facts import MailFacts
from routing.rules_loader import load_rules

MB = 500_000  # half a megabyte: cleaning costs about 0.5 s per megabyte of any text

# The expressions `normalise` used up to now, as the reference its linear finders must equal.
OLD_CID = re.compile(r"\[cid:[^\]]*\]", re.IGNORECASE)
OLD_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
OLD_HEX = re.compile(r"\b(?=[0-9a-f-]*\d)(?=[0-9a-f-]*[a-f])[0-9a-f]{6,}(?:-[0-9a-f]{2,})*\b")


def old_normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text_cleaning._repair_mojibake(text))
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    text = "\n".join(lines).casefold()
    text = OLD_CID.sub(" ", text)
    text = text_cleaning._URL_RE.sub(f" {text_cleaning.URL_TOKEN} ", text)
    text = OLD_EMAIL.sub(f" {text_cleaning.EMAIL_TOKEN} ", text)
    text = OLD_HEX.sub(f" {text_cleaning.ID_TOKEN} ", text)
    text = text_cleaning._LONG_NUMBER_RE.sub(f" {text_cleaning.NUMBER_TOKEN} ", text)
    text = text_cleaning._fold_accents(text)
    return text_cleaning._NON_WORD_RE.sub(" ", text).strip()


# Characters that make the three expressions start, fail and backtrack in every way.
TRICKY = st.text(alphabet="abcdef0129-_.+@gx:[]CIDıİ é١ \n", max_size=60)


@settings(max_examples=3000, deadline=None)
@given(TRICKY)
def test_the_linear_finders_replace_exactly_what_the_old_expressions_did(text: str) -> None:
    assert text_cleaning.normalise(text) == old_normalise(text)
    for old, replacement, spans in (
        (OLD_CID, " ", text_cleaning._cid_spans),
        (OLD_EMAIL, " E ", text_cleaning._email_spans),
        (OLD_HEX, " H ", text_cleaning._hex_spans),
    ):
        assert text_cleaning._replace_spans(text, spans(text), replacement) == old.sub(replacement, text)


def test_real_looking_text_is_cleaned_as_before() -> None:
    text = (
        "Hi, see [cid:image001.png@01D9A1B2.3C4D5E60] and mail bob.smith+it@corp.example.com or "
        "open https://vpn.example.com/x. Device 00-1a-2b-3c-4d-5e, GUID 3f2504e0-4f89-11d3-9a0c-0305e82c3301, "
        "ticket 1234567, hash deadbeef12."
    )
    assert text_cleaning.normalise(text) == old_normalise(text)


HOSTILE = {
    "one word run (address local part)": "a" * MB,
    "dashes": "-" * MB,
    "a-a-a": "a-" * (MB // 2),
    "hex groups without a digit": "abcdef-" * (MB // 7),
    "hex groups with a digit": "abcde1-" * (MB // 7),
    "unclosed cid references": "[cid:" * (MB // 5),
    "at signs": "a@" * (MB // 2),
    "dotted domain without end": "a@" + "b." * (MB // 2),
    "long numbers": "1234" + " 1234" * (MB // 5),
}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_cleaning_a_hostile_subject_is_linear(name: str) -> None:
    # The subject is not capped like the body: a 40,000-character "a-a-a" took 33 s before.
    started = time.perf_counter()
    text_cleaning.prepare(HOSTILE[name], HOSTILE[name])
    took = time.perf_counter() - started
    assert took < 2.0, f"{name}: {took:.1f} s"


def facts(subject: str = "", body: str = "") -> MailFacts:
    return MailFacts(
        sender="mallory@example.com",
        subject=subject,
        body=body,
        language="en",
        recipients=("support@example.test",),
        headers={"x-mailer": ("a" * 1000,)},
        attachments=(),
    )


def test_an_expression_that_backtracks_without_end_is_given_up_on_within_the_budget() -> None:
    pattern = compile_regex(r"(a|aa)+$", lambda problem: pytest.fail(problem))
    assert pattern is not None
    view = MailView(facts(body="a" * 5000 + "b"))
    started = time.perf_counter()
    found = [view.found(pattern, view.normal("body")) for _ in range(40)]
    took = time.perf_counter() - started
    assert found == [False] * 40
    # Each search gives up after its timeout; all of them together stop at the mail's budget.
    assert took < REGEX_BUDGET * 4, f"{took:.2f} s"


@pytest.mark.timeout(120)
def test_rules_on_a_megabyte_of_hostile_text_decide_in_well_under_a_second(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        """
[[rule]]
name = "outage"
[rule.when]
subject_or_body_contains = ["awari*", "*ausfall", "nie działa", "c++", "down"]
[rule.then]
category = "network"

[[rule]]
name = "nested"
[rule.when]
body_matches = ['(x+x+)+y', '(a|aa)+$']
header = { "X-Mailer" = '(a|aa)+$' }
[rule.then]
priority = "high"
""",
        encoding="utf-8",
    )
    ruleset = load_rules(path, DEFAULT_CATEGORIES)
    for body in ("a" * MB, "x" * MB, "awari " * (MB // 6), "nie " * (MB // 4), ("a" * 5000 + "b ") * 200):
        started = time.perf_counter()
        ruleset.evaluate(facts(subject=body[:1000], body=body))
        took = time.perf_counter() - started
        assert took < 2.0, f"{body[:20]!r}...: {took:.1f} s"


def test_rules_still_match_what_they_matched() -> None:
    pattern = compile_regex(r"tunnel\s+(is\s+)?(down|drops)", lambda problem: pytest.fail(problem))
    assert pattern is not None
    view = MailView(facts(body="The VPN TUNNEL is  down again"))
    assert view.found(pattern, view.normal("body"))
    case = compile_regex("(?-i:VPN)", lambda problem: pytest.fail(problem))
    assert case is not None
    assert not view.found(case, "vpn") and view.found(case, "VPN")
