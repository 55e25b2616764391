"""The conditions a routing rule can test: keywords, expressions, addresses, language, headers, attachments.

Each key of a rule's `when` (or `unless`) table is compiled once, when the rules are loaded, into a
frozen condition object; evaluating a rule is then only calls to `holds`. A list value means "any of
these". `CONDITIONS` (in `routing.condition_parsers`) maps every key of the vocabulary to its
parser, in one table.

Keywords compare NFC-normalised, case-folded text on word boundaries, so "NIE DZIAŁA" in a subject
matches the keyword "nie działa" however the sender's mail program composed its letters, and "down"
does not match "download". A `*` at either end of a keyword stands for more letters of the same word
("awari*" matches "awaria", "awarię", "awarii"; "*ausfall" matches "Stromausfall"). Regular
expressions are searched case-insensitively; `(?-i:...)` makes part of one case-sensitive.

Everything here runs on text a stranger wrote. Keyword expressions are built so that each is linear
in the text. An administrator's regular expression may not be (a nested quantifier backtracks
exponentially), so expressions are compiled with the `regex` package, whose searches take a timeout
and release the GIL while they run: one search gets `REGEX_TIMEOUT`, all of one mail's searches
together `REGEX_BUDGET`, and an expression that runs out counts as not found (and is logged). Only
the first `MAX_TEXT_CHARS` of a subject or body are searched.
"""

from __future__ import annotations

import fnmatch
import logging
import re
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol

import regex

from routing.facts import MailFacts

log = logging.getLogger("helpdesk.routing")

TextField = Literal["subject", "body", "text"]
Report = Callable[[str], None]


# What rules read of a subject or body: a rule decides on what a mail says first.
MAX_TEXT_CHARS = 100_000
# Seconds one administrator's expression may search one text, and all of them one mail.
REGEX_TIMEOUT = 0.05
REGEX_BUDGET = 0.5
# `regex` in its version-0 mode behaves as the standard `re` does (the syntax rules are written in).
REGEX_FLAGS = regex.IGNORECASE | regex.V0


def fold(text: str) -> str:
    """Text as keywords compare it: NFC-normalised and case-folded."""
    return unicodedata.normalize("NFC", text).casefold()


class MailView:
    """One mail's facts with the normalised texts that conditions search, each computed at most once."""

    def __init__(self, facts: MailFacts) -> None:
        self.facts = facts
        self._regex_time = 0.0

    @cached_property
    def _normal(self) -> dict[TextField, str]:
        subject = unicodedata.normalize("NFC", self.facts.subject[:MAX_TEXT_CHARS])
        body = unicodedata.normalize("NFC", self.facts.body[:MAX_TEXT_CHARS])
        return {"subject": subject, "body": body, "text": f"{subject}\n{body}"}

    @cached_property
    def _folded(self) -> dict[TextField, str]:
        return {name: text.casefold() for name, text in self._normal.items()}

    def normal(self, field: TextField) -> str:
        """The field in NFC, as regular expressions search it."""
        return self._normal[field]

    def folded(self, field: TextField) -> str:
        """The field in NFC and case-folded, as keywords search it."""
        return self._folded[field]

    def found(self, pattern: regex.Pattern[str], text: str) -> bool:
        """Whether an administrator's expression is found in `text`, within this mail's time budget."""
        left = REGEX_BUDGET - self._regex_time
        if left <= 0:
            return False
        started = time.perf_counter()
        try:
            return pattern.search(text, timeout=min(REGEX_TIMEOUT, left), concurrent=True) is not None
        except TimeoutError:
            log.warning(
                "RULES expression %r gave up after %.2f s on a mail from %s: counted as not found",
                pattern.pattern[:200],
                time.perf_counter() - started,
                self.facts.sender or "?",
            )
            return False
        finally:
            self._regex_time += time.perf_counter() - started


class Condition(Protocol):
    def holds(self, mail: MailView) -> bool: ...


@dataclass(frozen=True)
class Contains:
    """Any of the keywords occurs, as whole words, in the field."""

    field: TextField
    keywords: tuple[str, ...]
    pattern: re.Pattern[str]

    def holds(self, mail: MailView) -> bool:
        return self.pattern.search(mail.folded(self.field)) is not None


@dataclass(frozen=True)
class Matches:
    """Any of the regular expressions is found in the field."""

    field: TextField
    patterns: tuple[regex.Pattern[str], ...]

    def holds(self, mail: MailView) -> bool:
        text = mail.normal(self.field)
        return any(mail.found(p, text) for p in self.patterns)


@dataclass(frozen=True)
class SenderIs:
    addresses: frozenset[str]

    def holds(self, mail: MailView) -> bool:
        return mail.facts.sender.lower() in self.addresses


@dataclass(frozen=True)
class SenderDomainIs:
    """The sender's domain is one of these, or a subdomain of one."""

    domains: frozenset[str]

    def holds(self, mail: MailView) -> bool:
        domain = mail.facts.sender_domain.lower()
        return any(domain == d or domain.endswith("." + d) for d in self.domains)


@dataclass(frozen=True)
class RecipientIs:
    addresses: frozenset[str]

    def holds(self, mail: MailView) -> bool:
        return any(r.lower() in self.addresses for r in mail.facts.recipients)


@dataclass(frozen=True)
class LanguageIs:
    languages: frozenset[str]

    def holds(self, mail: MailView) -> bool:
        return mail.facts.language.lower() in self.languages


@dataclass(frozen=True)
class HeadersMatch:
    """Every named header is present with a value in which one of its expressions is found."""

    checks: tuple[tuple[str, tuple[regex.Pattern[str], ...]], ...]  # lower-cased name, expressions

    def holds(self, mail: MailView) -> bool:
        headers = mail.facts.headers
        return all(
            any(mail.found(p, value[:MAX_TEXT_CHARS]) for value in headers.get(name, ()) for p in patterns)
            for name, patterns in self.checks
        )


@dataclass(frozen=True)
class HasAttachment:
    expected: bool

    def holds(self, mail: MailView) -> bool:
        return bool(mail.facts.attachments) == self.expected


@dataclass(frozen=True)
class AttachmentNameMatches:
    patterns: tuple[regex.Pattern[str], ...]

    def holds(self, mail: MailView) -> bool:
        return any(mail.found(p, a.filename) for a in mail.facts.attachments for p in self.patterns)


@dataclass(frozen=True)
class AttachmentTypeIs:
    """Some attachment's content type fits one of the patterns ("application/pdf", "image/*")."""

    patterns: tuple[str, ...]

    def holds(self, mail: MailView) -> bool:
        return any(
            fnmatch.fnmatchcase(a.content_type.lower(), p)
            for a in mail.facts.attachments
            for p in self.patterns
        )


@dataclass(frozen=True)
class AnyOf:
    conditions: tuple[Condition, ...]

    def holds(self, mail: MailView) -> bool:
        return any(c.holds(mail) for c in self.conditions)


# Compiling values -----------------------------------------------------------------------------------
