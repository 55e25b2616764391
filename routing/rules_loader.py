"""Loading the rules file into a `RuleSet`, and holding the rule set in force across reloads.

`load_rules` reads the TOML file, checks every rule against the vocabulary and the configured
categories, and adds the built-in rules the file does not replace or disable. A broken file is
refused with one `RulesError` that lists every problem.

`RulesHolder` is what the daemon keeps: it loads at start (a broken file stops the start), and on
SIGHUP or when the file's modification time changes it loads again. A broken new file never replaces
the rules in force: the holder keeps the last good set, logs the error and remembers it.
"""

from __future__ import annotations

import logging
import os
import threading
import tomllib
from collections.abc import Iterable
from pathlib import Path

from routing.builtin_rules import BUILTIN_NAMES, builtin_rules
from routing.config import RoutingConfig
from routing.facts import DEFAULT_CATEGORY
from routing.rule_errors import RuleProblem, RulesError
from routing.rules import Rule, RuleSet, compile_rules

logger = logging.getLogger(__name__)

_Stamp = tuple[int, int, int] | None  # (inode, size, mtime in ns) of the rules file; None when absent


def load_rules(
    path: str | os.PathLike[str] | None,
    categories: Iterable[str],
    *,
    builtin: bool = True,
    vip_senders: Iterable[str] = (),
) -> RuleSet:
    """The rule set of the file at `path` (None: no file) followed by the built-in rules.

    `categories` are the names a rule may set; `triage` is always one of them. With `builtin` false
    no built-in rule is added. Raises `RulesError` naming the file and every problem.
    """
    known = frozenset(categories) | {DEFAULT_CATEGORY}
    source = os.fspath(path) if path is not None else "<none>"
    problems: list[RuleProblem] = []
    file_rules: tuple[Rule, ...] = ()
    disabled: tuple[str, ...] = ()
    if path is not None:
        document = _read(Path(path), source)
        file_rules, disabled, problems = compile_rules(document, known, builtin_names=BUILTIN_NAMES)
    builtins = builtin_rules(vip_senders, problems) if builtin else ()
    if problems:
        raise RulesError(source, problems)
    replaced = {rule.name for rule in file_rules} | set(disabled)
    rules = file_rules + tuple(rule for rule in builtins if rule.name not in replaced)
    return RuleSet(rules, known, source)


def _read(path: Path, source: str) -> dict[str, object]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        problem = RuleProblem("file", f"cannot read it: {err.strerror or err}")
    except UnicodeDecodeError as err:
        problem = RuleProblem("file", f"not UTF-8 text: {err.reason} at byte {err.start}")
    except tomllib.TOMLDecodeError as err:
        problem = RuleProblem("file", f"not valid TOML: {err}")
    raise RulesError(source, [problem])


def _stamp(path: Path | None) -> _Stamp:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class RulesHolder:
    """The rule set in force, replaced whole on a good reload and kept on a bad one."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        categories: Iterable[str],
        *,
        builtin: bool = True,
        vip_senders: Iterable[str] = (),
    ) -> None:
        self.path = Path(path) if path is not None else None
        self._categories = tuple(categories)
        self._builtin = builtin
        self._vip_senders = tuple(vip_senders)
        self._lock = threading.Lock()
        self.last_error: RulesError | None = None
        # The stamp is taken before reading, so a write during the read is noticed by the next check.
        self._stamp = _stamp(self.path)
        self._current = self._load()  # a broken file at start is the caller's to refuse
        logger.info("RULES loaded %s: %s", self._current.source, ", ".join(self._current.names) or "none")

    @classmethod
    def from_config(cls, config: RoutingConfig) -> RulesHolder:
        return cls(
            config.rules_path,
            config.categories,
            builtin=config.builtin_rules,
            vip_senders=config.vip_senders,
        )

    @property
    def current(self) -> RuleSet:
        return self._current

    def reload(self) -> bool:
        """Load the file again; True when the new rules are in force, False when the old ones are kept."""
        with self._lock:
            self._stamp = _stamp(self.path)
            try:
                rules = self._load()
            except RulesError as err:
                self.last_error = err
                logger.error("RULES kept the previous %d rules: %s", len(self._current), err)
                return False
            # One reference assignment: a router reading `current` sees the old set or the new one.
            self._current = rules
            self.last_error = None
            logger.info("RULES reloaded %s: %s", rules.source, ", ".join(rules.names) or "none")
            return True

    def reload_if_changed(self) -> bool:
        """Reload if the file's inode, size or modification time changed; True when new rules are in force."""
        if self.path is None or _stamp(self.path) == self._stamp:
            return False
        return self.reload()

    def _load(self) -> RuleSet:
        return load_rules(self.path, self._categories, builtin=self._builtin, vip_senders=self._vip_senders)
