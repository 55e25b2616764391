"""The built-in rules: urgency and outage words in English, Polish and German, and VIP senders.

The word rules live in `builtin_rules.toml`, written in the same vocabulary as a rules file, so an
admin can read exactly what they do and copy one into the rules file to change it (a file rule with
the same name replaces the built-in one). The VIP rule is made from the `vip_senders` setting.

All of them only raise priority, and they run after the file's rules:
- builtin-outage    an outage word in the subject ("outage", "is down", "awaria", "Ausfall"): to urgent
- builtin-urgency   an urgency or outage word in subject or body ("ASAP", "pilnie", "dringend",
                    "nie działa", "funktioniert nicht"): to high
- builtin-vip       mail from a VIP address or domain: one step up
`routing.rules.apply_raises` says how these combine with each other and with the model.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from functools import cache
from importlib import resources

from routing.condition_parsers import normalize_address, normalize_domain
from routing.conditions import AnyOf, Condition, SenderDomainIs, SenderIs
from routing.rule_errors import RuleProblem, RulesError
from routing.rules import Actions, Rule, compile_rules

BUILTIN_OUTAGE = "builtin-outage"
BUILTIN_URGENCY = "builtin-urgency"
BUILTIN_VIP = "builtin-vip"
BUILTIN_NAMES = (BUILTIN_OUTAGE, BUILTIN_URGENCY, BUILTIN_VIP)
VIP_SETTING = "vip_senders"


@cache
def word_rules() -> tuple[Rule, ...]:
    """The rules of `builtin_rules.toml`, compiled once."""
    text = resources.files("routing").joinpath("builtin_rules.toml").read_text(encoding="utf-8")
    rules, _, problems = compile_rules(tomllib.loads(text), categories=(), builtin=True)
    if problems:  # a defect of the product itself; its tests load this file
        raise RulesError("<built-in>", problems)
    return rules


def vip_rule(vip_senders: Iterable[str], problems: list[RuleProblem]) -> Rule | None:
    """The VIP rule for these senders (an address, or a domain with or without a leading "@").

    None when there are no VIP senders; a malformed entry is added to `problems`.
    """
    addresses: set[str] = set()
    domains: set[str] = set()
    for entry in vip_senders:
        if "@" in entry.strip().removeprefix("@"):
            address = normalize_address(entry)
            if address is not None:
                addresses.add(address)
                continue
        else:
            domain = normalize_domain(entry)
            if domain is not None:
                domains.add(domain)
                continue
        problems.append(RuleProblem(VIP_SETTING, f"{entry!r} is neither an address nor a domain"))
    tests: list[Condition] = []
    if addresses:
        tests.append(SenderIs(frozenset(addresses)))
    if domains:
        tests.append(SenderDomainIs(frozenset(domains)))
    if not tests:
        return None
    description = "mail from a VIP sender is one step more urgent"
    return Rule(
        BUILTIN_VIP, (AnyOf(tuple(tests)),), Actions(raise_by=1), description=description, builtin=True
    )


def builtin_rules(vip_senders: Iterable[str], problems: list[RuleProblem]) -> tuple[Rule, ...]:
    """Every built-in rule, in order."""
    vip = vip_rule(vip_senders, problems)
    return word_rules() + ((vip,) if vip is not None else ())
