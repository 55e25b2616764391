"""The conditions a routing rule can test: keywords, expressions, addresses, language, headers, attachments.

Each key of a rule's `when` (or `unless`) table is compiled once, when the rules are loaded, into a
frozen condition object; evaluating a rule is then only calls to `holds`. A list value means "any of
these". `CONDITIONS` maps every key of the vocabulary to its parser, in one table.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Literal, Protocol

import regex

from routing.facts import MailFacts

log = logging.getLogger("helpdesk.routing")

TextField = Literal["subject", "body", "text"]
Report = Callable[[str], None]

_ADDRESS_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN_RE = re.compile(r"^[^@\s./]+(\.[^@\s./]+)*$")
_LANGUAGE_RE = re.compile(r"^([a-z]{2,3}|und)(-[a-z0-9]+)*$")
_HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")  # RFC 5322 §2.2: printable ASCII except colon

# What rules read of a subject or body: a rule decides on what a mail says first.
MAX_TEXT_CHARS = 100_000
# Seconds one administrator's expression may search one text, and all of them one mail.
REGEX_TIMEOUT = 0.05
REGEX_BUDGET = 0.5
# `regex` in its version-0 mode behaves as the standard `re` does (the syntax rules are written in).
_REGEX_FLAGS = regex.IGNORECASE | regex.V0


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


def keyword_expression(keyword: str) -> str:
    """The expression for one keyword in folded text, without its word boundaries.

    Raises ValueError for a keyword that is empty or has a `*` anywhere but at its ends.
    """
    folded = fold(keyword.strip())
    core = folded.strip("*")
    if not core.strip():
        raise ValueError(f"keyword {keyword!r} has no letters")
    if "*" in core:
        raise ValueError(f"keyword {keyword!r}: '*' may only stand at the start or the end")
    # Whitespace inside a phrase matches any run of whitespace, line breaks included.
    phrase = r"\s+".join(re.escape(word) for word in core.split())
    lead = r"\w*" if folded.startswith("*") else ""
    trail = r"\w*" if folded.endswith("*") else ""
    return f"{lead}{phrase}{trail}"


def keyword_pattern(expressions: list[str]) -> re.Pattern[str]:
    """One expression that finds any of the keywords' expressions as whole words."""
    # Look-arounds rather than \b, so a keyword that starts or ends with punctuation ("c++") works.
    return re.compile(r"(?<!\w)(?:" + "|".join(expressions) + r")(?!\w)")


def prefixed(report: Report, prefix: str) -> Report:
    """A reporter that puts `prefix` before each message, to say where in a rule the problem is."""

    def prefixed_report(message: str) -> None:
        report(prefix + message)

    return prefixed_report


def compile_regex(source: str, report: Report) -> regex.Pattern[str] | None:
    try:
        return regex.compile(source, _REGEX_FLAGS)
    except regex.error as err:
        # The stubs do not know the error's `msg` and `pos`; its text carries both ("... at position N").
        report(f"bad regular expression {source!r}: {err}")
        return None


def normalize_address(value: str) -> str | None:
    address = value.strip().lower()
    return address if _ADDRESS_RE.match(address) else None


def normalize_domain(value: str) -> str | None:
    domain = value.strip().lower().removeprefix("@")
    return domain if _DOMAIN_RE.match(domain) else None


def _strings(value: object, report: Report, what: str, *, empty: bool = False) -> tuple[str, ...] | None:
    """A string, or a non-empty list of strings (empty strings only if `empty`); else it is reported."""
    items = [value] if isinstance(value, str) else value
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(i, str) and (i or empty) for i in items)
    ):
        report(f"expected {what} or a non-empty list of them, got {value!r}")
        return None
    return tuple(str(i) for i in items)


def _regexes(value: object, report: Report) -> tuple[regex.Pattern[str], ...] | None:
    # An empty expression is found in any text: in `header` it asks only that the header be present.
    sources = _strings(value, report, "a regular expression", empty=True)
    if sources is None:
        return None
    compiled = [compile_regex(s, report) for s in sources]
    patterns = tuple(p for p in compiled if p is not None)
    return patterns if len(patterns) == len(compiled) else None


def _normalized(
    value: object, report: Report, what: str, norm: Callable[[str], str | None]
) -> frozenset[str] | None:
    items = _strings(value, report, what)
    if items is None:
        return None
    result = set()
    ok = True
    for item in items:
        normalized = norm(item)
        if normalized is None:
            report(f"{item!r} is not {what}")
            ok = False
        else:
            result.add(normalized)
    return frozenset(result) if ok else None


def _language(item: str) -> str | None:
    code = item.strip().lower()
    return code if _LANGUAGE_RE.match(code) else None


def _content_type(item: str) -> str | None:
    pattern = item.strip().lower()
    return pattern if pattern.count("/") == 1 and " " not in pattern else None


# Parsers: one per key of the vocabulary -------------------------------------------------------------

ConditionParser = Callable[[object, Report], Condition | None]


def _contains(field: TextField) -> ConditionParser:
    def parse(value: object, report: Report) -> Condition | None:
        keywords = _strings(value, report, "a keyword")
        if keywords is None:
            return None
        expressions = []
        for keyword in keywords:
            try:
                expressions.append(keyword_expression(keyword))
            except ValueError as err:
                report(str(err))
        if len(expressions) < len(keywords):
            return None
        return Contains(field, keywords, keyword_pattern(expressions))

    return parse


def _matches(field: TextField) -> ConditionParser:
    def parse(value: object, report: Report) -> Condition | None:
        patterns = _regexes(value, report)
        return Matches(field, patterns) if patterns is not None else None

    return parse


def _sender(value: object, report: Report) -> Condition | None:
    addresses = _normalized(value, report, "an address", normalize_address)
    return SenderIs(addresses) if addresses is not None else None


def _sender_domain(value: object, report: Report) -> Condition | None:
    domains = _normalized(value, report, "a domain", normalize_domain)
    return SenderDomainIs(domains) if domains is not None else None


def _recipient(value: object, report: Report) -> Condition | None:
    addresses = _normalized(value, report, "an address", normalize_address)
    return RecipientIs(addresses) if addresses is not None else None


def _language_is(value: object, report: Report) -> Condition | None:
    languages = _normalized(value, report, "a language code", _language)
    return LanguageIs(languages) if languages is not None else None


def _header(value: object, report: Report) -> Condition | None:
    if not isinstance(value, Mapping) or not value:
        report(
            f'expected a table of header names to expressions, e.g. {{ "X-Priority" = "1" }}, got {value!r}'
        )
        return None
    checks = []
    ok = True
    for name, expressions in value.items():
        if not _HEADER_NAME_RE.match(name):
            report(f"{name!r} is not a header name")
            ok = False
            continue
        patterns = _regexes(expressions, prefixed(report, f"header {name!r}: "))
        if patterns is None:
            ok = False
        else:
            checks.append((name.lower(), patterns))
    return HeadersMatch(tuple(checks)) if ok else None


def _has_attachment(value: object, report: Report) -> Condition | None:
    if not isinstance(value, bool):
        report(f"expected true or false, got {value!r}")
        return None
    return HasAttachment(value)


def _attachment_name(value: object, report: Report) -> Condition | None:
    patterns = _regexes(value, report)
    return AttachmentNameMatches(patterns) if patterns is not None else None


def _attachment_type(value: object, report: Report) -> Condition | None:
    patterns = _normalized(value, report, "a content type", _content_type)
    return AttachmentTypeIs(tuple(sorted(patterns))) if patterns is not None else None


CONDITIONS: Mapping[str, ConditionParser] = {
    "subject_contains": _contains("subject"),
    "body_contains": _contains("body"),
    "subject_or_body_contains": _contains("text"),
    "subject_matches": _matches("subject"),
    "body_matches": _matches("body"),
    "subject_or_body_matches": _matches("text"),
    "sender": _sender,
    "sender_domain": _sender_domain,
    "recipient": _recipient,
    "language": _language_is,
    "header": _header,
    "has_attachment": _has_attachment,
    "attachment_name_matches": _attachment_name,
    "attachment_type": _attachment_type,
}
