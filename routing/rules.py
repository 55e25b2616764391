"""Routing rules: named, ordered and declarative; the first matching rule decides each field.

A rule has a `name`, an optional `description`, a `when` table of conditions that must all hold,
an optional `unless` table of exceptions (the rule is skipped when any one of them holds) and a
`then` table of actions. The vocabulary of conditions is `routing.conditions.CONDITIONS`; the actions
are `ACTIONS` below. `deploy/rules.example.toml` documents both, with examples.

Evaluation, in the rule set's order (the file's rules, then the built-in ones):
- `category`, `priority` and `assignee`: the first matching rule that sets the field wins; a later
  rule may still set a field that earlier rules left unset.
- `raise_priority` (steps) and `raise_priority_to` (a floor) accumulate from every matching rule;
  `apply_raises` says how. An explicit `priority` is final: raises are then ignored.
- `tags` accumulate from every matching rule, in order, without repeats.
- `stop = true` ends the evaluation after its rule, built-in rules included.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from models.ticket import Priority
from routing.condition_parsers import CONDITIONS, prefixed
from routing.conditions import Condition, MailView, Report
from routing.facts import MailFacts
from routing.rule_errors import RuleProblem

RULE_KEYS = ("name", "description", "enabled", "when", "unless", "then")
ACTIONS = ("category", "priority", "raise_priority", "raise_priority_to", "tags", "assignee", "stop")
PRIORITY_ACTIONS = ("priority", "raise_priority", "raise_priority_to")
TOP_LEVEL_KEYS = ("rule", "disabled_builtins")
# Names show in logs and ticket events as "rule:<name>", so they are single words.
_NAME_RE = re.compile(r"^[\w.:-]+$")
_TOP = Priority.URGENT.rank
_BY_RANK = {p.rank: p for p in Priority}


@dataclass(frozen=True)
class Actions:
    category: str | None = None
    priority: Priority | None = None
    raise_to: Priority | None = None
    raise_by: int = 0
    tags: tuple[str, ...] = ()
    assignee: str | None = None
    stop: bool = False


@dataclass(frozen=True)
class Rule:
    name: str
    when: tuple[Condition, ...]
    then: Actions
    unless: tuple[Condition, ...] = ()
    description: str = ""
    builtin: bool = False

    def matches(self, mail: MailView) -> bool:
        return all(c.holds(mail) for c in self.when) and not any(c.holds(mail) for c in self.unless)


@dataclass(frozen=True)
class RuleHit:
    """A field a rule set: the value and the rule that set it."""

    value: str
    rule: str
    description: str = ""


@dataclass(frozen=True)
class PriorityRaise:
    rule: str
    to: Priority | None = None  # raise_priority_to: at least this
    steps: int = 0  # raise_priority: this many steps up


@dataclass(frozen=True)
class RaisedPriority:
    value: Priority
    rule: str | None  # the rule whose raise decided `value`; None when the raises changed nothing
    applied: tuple[str, ...]  # each raise that lifted the priority, as "<rule> to high" or "<rule> +1"


def apply_raises(base: Priority, raises: Sequence[PriorityRaise]) -> RaisedPriority:
    """Lift `base` by the raises: first to the highest floor, then up by the sum of the steps.

    So the floor of an urgency word (high) and a VIP's one step make urgent; a model's urgent is
    not lowered by a floor of high; nothing goes past urgent.
    """
    rank, rule, applied = base.rank, None, []
    # max() keeps the first of equal floors, so the earliest rule is named.
    floor = max((r for r in raises if r.to is not None), key=_floor_rank, default=None)
    if floor is not None and _floor_rank(floor) > rank:
        rank, rule = _floor_rank(floor), floor.rule
        applied.append(f"{floor.rule} to {_BY_RANK[rank].value}")
    for step in raises:
        if step.steps and rank < _TOP:
            rank = min(_TOP, rank + step.steps)
            rule = step.rule
            applied.append(f"{step.rule} +{step.steps}")
    return RaisedPriority(_BY_RANK[rank], rule, tuple(applied))


def _floor_rank(r: PriorityRaise) -> int:
    return r.to.rank if r.to is not None else -1


@dataclass(frozen=True)
class RuleOutcome:
    """What the rules decided for one mail, field by field, and which rule decided it."""

    category: RuleHit | None = None
    priority: RuleHit | None = None  # set explicitly by `priority = ...`
    raises: tuple[PriorityRaise, ...] = ()
    assignee: RuleHit | None = None
    tags: tuple[str, ...] = ()
    matched: tuple[str, ...] = ()
    stopped_by: str | None = None


@dataclass(frozen=True)
class RuleSet:
    """An immutable, ordered set of compiled rules and the categories they were checked against."""

    rules: tuple[Rule, ...]
    categories: frozenset[str]
    source: str = "<none>"

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def evaluate(self, facts: MailFacts) -> RuleOutcome:
        mail = MailView(facts)
        category = priority = assignee = None
        raises: list[PriorityRaise] = []
        tags: list[str] = []
        matched: list[str] = []
        stopped_by = None
        for rule in self.rules:
            if not rule.matches(mail):
                continue
            matched.append(rule.name)
            then = rule.then
            if then.category is not None and category is None:
                category = RuleHit(then.category, rule.name, rule.description)
            if then.priority is not None and priority is None:
                priority = RuleHit(then.priority.value, rule.name, rule.description)
            if then.raise_to is not None or then.raise_by:
                raises.append(PriorityRaise(rule.name, then.raise_to, then.raise_by))
            if then.assignee is not None and assignee is None:
                assignee = RuleHit(then.assignee, rule.name, rule.description)
            tags.extend(t for t in then.tags if t not in tags)
            if then.stop:
                stopped_by = rule.name
                break
        return RuleOutcome(
            category, priority, tuple(raises), assignee, tuple(tags), tuple(matched), stopped_by
        )


# Compiling a parsed rules document ------------------------------------------------------------------


def compile_rules(
    document: Mapping[str, Any],
    categories: Collection[str],
    *,
    builtin_names: Collection[str] = (),
    builtin: bool = False,
) -> tuple[tuple[Rule, ...], tuple[str, ...], list[RuleProblem]]:
    """Check and compile a parsed rules file: (enabled rules, disabled built-in names, problems).

    Every problem is collected rather than raised, so one pass over the file reports them all.
    """
    problems: list[RuleProblem] = []
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            problems.append(RuleProblem("file", f"unknown key {key!r}{_suggest(key, TOP_LEVEL_KEYS)}"))
    disabled = _disabled_builtins(document.get("disabled_builtins", []), builtin_names, problems)
    entries = document.get("rule", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        problems.append(RuleProblem("file", "'rule' must be an array of tables: write each rule as [[rule]]"))
        return (), disabled, problems
    rules: list[Rule] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        name = entry.get("name")
        where = f'rule #{index} "{name}"' if isinstance(name, str) and name else f"rule #{index} (no name)"

        def report(message: str, where: str = where) -> None:
            problems.append(RuleProblem(where, message))

        if isinstance(name, str) and name in seen:
            report(f"duplicate name: rule #{seen[name]} is also called {name!r}")
        elif isinstance(name, str) and name:
            seen[name] = index
        rule = _compile_rule(entry, categories, report, builtin=builtin)
        if rule is not None and entry.get("enabled", True) is True:
            rules.append(rule)
    return tuple(rules), disabled, problems


def _compile_rule(
    entry: Mapping[str, Any], categories: Collection[str], report: Report, *, builtin: bool
) -> Rule | None:
    check = _Counter(report)
    for key in entry:
        if key not in RULE_KEYS:
            check(_unknown(f"key {key!r}", key, RULE_KEYS))
    name = entry.get("name")
    if name is None:
        check("missing name")
    elif not isinstance(name, str) or not _NAME_RE.match(name):
        check(f"name {name!r} must be one word of letters, digits, '.', ':', '-' or '_'")
    description = entry.get("description", "")
    if not isinstance(description, str):
        check(f"description must be a string, got {description!r}")
    if not isinstance(entry.get("enabled", True), bool):
        check(f"enabled must be true or false, got {entry['enabled']!r}")
    if "when" not in entry:
        check("missing [rule.when]: a rule needs at least one condition")
    when = _conditions(entry.get("when", {}), "when", check, required="when" in entry)
    unless = _conditions(entry.get("unless", {}), "unless", check, required="unless" in entry)
    if "then" not in entry:
        check("missing [rule.then]: a rule needs at least one action")
    then = _actions(entry.get("then", {}), categories, check, required="then" in entry)
    if check.count or then is None:
        return None
    return Rule(str(name), when, then, unless, str(description), builtin)


def _conditions(table: object, section: str, report: Report, *, required: bool) -> tuple[Condition, ...]:
    if not isinstance(table, dict):
        report(f"{section} must be a table of conditions, got {table!r}")
        return ()
    if required and not table:
        report(f"[rule.{section}] is empty")
    conditions = []
    for key, value in table.items():
        parser = CONDITIONS.get(key)
        if parser is None:
            report(_unknown(f"condition {section}.{key}", key, CONDITIONS))
            continue
        condition = parser(value, prefixed(report, f"{section}.{key}: "))
        if condition is not None:
            conditions.append(condition)
    return tuple(conditions)


def _actions(table: object, categories: Collection[str], report: Report, *, required: bool) -> Actions | None:
    if not isinstance(table, dict):
        report(f"then must be a table of actions, got {table!r}")
        return None
    if required and not table:
        report("[rule.then] is empty")
    count = _Counter(report)
    for key in table:
        if key not in ACTIONS:
            count(_unknown(f"action then.{key}", key, ACTIONS))
    chosen = [k for k in PRIORITY_ACTIONS if k in table]
    if len(chosen) > 1:
        count(f"then.{' and then.'.join(chosen)}: choose one way to change the priority")
    category = table.get("category")
    if category is not None and (not isinstance(category, str) or category not in categories):
        known = ", ".join(sorted(categories))
        count(
            f"then.category: unknown category {category!r}{_suggest(category, categories)} (known: {known})"
        )
    priority = _priority(table, "priority", count)
    raise_to = _priority(table, "raise_priority_to", count)
    raise_by = table.get("raise_priority", 0)
    if "raise_priority" in table and (type(raise_by) is not int or not 1 <= raise_by <= _TOP):
        count(f"then.raise_priority: expected a number of steps from 1 to {_TOP}, got {raise_by!r}")
    tags = table.get("tags", [])
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        count(f"then.tags: expected a list of non-empty strings, got {tags!r}")
    assignee = table.get("assignee")
    if assignee is not None and (not isinstance(assignee, str) or not assignee.strip()):
        count(f"then.assignee: expected an address, got {assignee!r}")
    stop = table.get("stop", False)
    if not isinstance(stop, bool):
        count(f"then.stop: expected true or false, got {stop!r}")
    if count.count:
        return None
    return Actions(
        category=category,
        priority=priority,
        raise_to=raise_to,
        raise_by=raise_by,
        tags=tuple(dict.fromkeys(t.strip() for t in tags)),
        assignee=assignee.strip().lower() if assignee else None,
        stop=stop,
    )


def _priority(table: Mapping[str, Any], key: str, report: Report) -> Priority | None:
    value = table.get(key)
    if value is None:
        return None
    names = [p.value for p in Priority]
    if not isinstance(value, str) or value.lower() not in names:
        report(f"then.{key}: unknown priority {value!r}{_suggest(value, names)} (known: {', '.join(names)})")
        return None
    return Priority(value.lower())


def _disabled_builtins(value: object, known: Collection[str], problems: list[RuleProblem]) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.append(RuleProblem("file", f"disabled_builtins must be a list of names, got {value!r}"))
        return ()
    for name in value:
        if name not in known:
            listed = ", ".join(known) or "none"
            message = f"disabled_builtins: no built-in rule is called {name!r} (built-in: {listed})"
            problems.append(RuleProblem("file", message))
    return tuple(value)


def _unknown(what: str, key: str, known: Collection[str]) -> str:
    if key in TOP_LEVEL_KEYS:
        # TOML puts a key written below a [[rule]] (or one of its tables) into that rule.
        return f"unknown {what}: {key!r} belongs at the top of the file, before the first [[rule]]"
    return f"unknown {what}{_suggest(key, known)}"


def _suggest(word: object, choices: Collection[str]) -> str:
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Counter:
    """A reporter that also counts, so a compiler knows whether its part of the rule was sound."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self.count = 0

    def __call__(self, message: str) -> None:
        self.count += 1
        self._report(message)
