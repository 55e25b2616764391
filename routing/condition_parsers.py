"""Reading a rule's `when` table: each key of the vocabulary, its parser, in one table (`CONDITIONS`).

A parser checks the value an administrator wrote (reporting every problem through `report`, so
the loader can name them all at once) and compiles it into a frozen condition of
`routing.conditions`. Keyword expressions are built here to be linear in the text; regular
expressions are compiled with the `regex` package (see `routing.conditions` for their budgets).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import regex

from routing.conditions import (
    REGEX_FLAGS,
    AttachmentNameMatches,
    AttachmentTypeIs,
    Condition,
    Contains,
    HasAttachment,
    HeadersMatch,
    LanguageIs,
    Matches,
    RecipientIs,
    Report,
    SenderDomainIs,
    SenderIs,
    TextField,
    fold,
)

_ADDRESS_RE = re.compile(r"^[^@\s]+@[^@\s]+$")
_DOMAIN_RE = re.compile(r"^[^@\s./]+(\.[^@\s./]+)*$")
_LANGUAGE_RE = re.compile(r"^([a-z]{2,3}|und)(-[a-z0-9]+)*$")
_HEADER_NAME_RE = re.compile(r"^[!-9;-~]+$")  # RFC 5322 §2.2: printable ASCII except colon


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
        return regex.compile(source, REGEX_FLAGS)
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
