"""The text cleaning every subject and body goes through before it becomes features.

`prepare` folds case and accents (NFKD, plus the letters NFKD keeps: "ł", "ø" ...), repairs
UTF-8 read as Latin-1 ("Ã©"), and replaces what never recurs (addresses, links, long numbers,
hex ids, inline-image references) with placeholders, so the vocabulary learns words, not values.
Each step is linear in the text: it runs on what a stranger wrote.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence

# Placeholders keep the fact that "there was an address / a link / an id here" without learning
# the particular values, which never recur and only bloat the vocabulary.
EMAIL_TOKEN = "_email_"
URL_TOKEN = "_url_"
NUMBER_TOKEN = "_num_"
ID_TOKEN = "_id_"

# Only the start of a long body is read: the problem is stated first, and pasted logs or
# forwarded threads further down would only make one mail cost many milliseconds.
MAX_BODY_CHARS = 4000

# Inline-image references left by mail clients ("[cid:image001.png@01D...]").
_CID_OPEN_RE = re.compile(r"\[cid:", re.IGNORECASE)
# An address: a local part of [\w.+-] right before "@", a domain of dot-separated [\w-] labels.
_EMAIL_DOMAIN_RE = re.compile(r"@[\w-]+(?:\.[\w-]+)+")
_URL_RE = re.compile(r"(?:https?://|ftp://|www\.)\S+", re.IGNORECASE)
# Hex strings with at least one digit and one letter (GUIDs, hashes, MAC and serial numbers): a run
# of six or more hex digits starting a word, then "-" groups of two or more, ending a word.
_HEX_HEAD_RE = re.compile(r"(?<!\w)[0-9a-f]{6,}")
_HEX_GROUPS_RE = re.compile(r"(?:-[0-9a-f]{2,})*")
_HEX_SPAN_RE = re.compile(r"[0-9a-f-]+")
_ASCII_DIGIT_RE = re.compile(r"[0-9]")
_HEX_LETTER_RE = re.compile(r"[a-f]")
_LONG_NUMBER_RE = re.compile(r"\d{5,}")
_NON_WORD_RE = re.compile(r"[^\w]+")
# Mojibake markers: UTF-8 bytes that were decoded as Latin-1/cp1252 somewhere upstream.
_MOJIBAKE_RE = re.compile(r"[ÃÅÄ][\x80-\xbf]|â€")
# Letters NFKD does not decompose but people routinely type without their diacritic.
_FOLD = str.maketrans({"ł": "l", "ø": "o", "đ": "d", "ı": "i", "æ": "ae", "œ": "oe"})


def _repair_mojibake(text: str) -> str:
    """Undo one round of UTF-8-read-as-cp1252 ("fÃ¼r" -> "für"); leave the text alone if that fails."""
    if not _MOJIBAKE_RE.search(text):
        return text
    for codec in ("cp1252", "latin-1"):
        try:
            return text.encode(codec).decode("utf-8")
        except UnicodeError:
            continue
    return text


def _fold_accents(text: str) -> str:
    # Requesters on foreign keyboards write "haslo" for "hasło" and "fur" for "für": match both.
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _is_word(ch: str) -> bool:
    """What `\\w` matches in a str pattern."""
    return ch.isalnum() or ch == "_"


def _replace_spans(text: str, spans: list[tuple[int, int]], replacement: str) -> str:
    if not spans:
        return text
    parts: list[str] = []
    last = 0
    for start, end in spans:
        parts.append(text[last:start])
        parts.append(replacement)
        last = end
    parts.append(text[last:])
    return "".join(parts)


# The three finders below give exactly what `re.sub` gave with the expressions of FEATURES_VERSION 1
# (r"\[cid:[^\]]*\]", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+" and
# r"\b(?=[0-9a-f-]*\d)(?=[0-9a-f-]*[a-f])[0-9a-f]{6,}(?:-[0-9a-f]{2,})*\b"), in linear time: a
# backtracking engine retried those from every character of a long run, which made one mail with a
# 40,000-character subject cost half a minute. tests/routing/test_features.py holds them equal.


def _cid_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (opening := _CID_OPEN_RE.search(text, pos)) is not None:
        close = text.find("]", opening.end())
        if close < 0:  # no "]" after this one: none after a later one either
            break
        spans.append((opening.start(), close + 1))
        pos = close + 1
    return spans


def _email_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while (domain := _EMAIL_DOMAIN_RE.search(text, pos)) is not None:
        at = start = domain.start()
        # The local part: the [\w.+-] characters right before "@", back to where this search began
        # (each character is walked over once: `pos` only moves forward).
        while start > pos and (text[start - 1] in "._+-" or text[start - 1].isalnum()):
            start -= 1
        if start < at:
            spans.append((start, domain.end()))
            pos = domain.end()
        else:  # nothing of a local part before this "@" (or it was part of the previous match)
            pos = at + 1
    return spans


def _hex_spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    # Candidates come in increasing order; what was found about the [0-9a-f-] run that holds the
    # previous candidate serves the next one in the same run, so each character is read a few times.
    span_end = next_digit = next_letter = -1
    while (head := _HEX_HEAD_RE.search(text, pos)) is not None:
        start = head.start()
        if start >= span_end:
            span_end = _HEX_SPAN_RE.match(text, start).end()  # type: ignore[union-attr]
        if next_digit < start:
            found = _ASCII_DIGIT_RE.search(text, start, span_end)
            next_digit = found.start() if found else span_end
        if next_letter < start:
            found = _HEX_LETTER_RE.search(text, start, span_end)
            next_letter = found.start() if found else span_end
        # (?=[0-9a-f-]*\d): an ASCII digit in the run from `start`, or any digit right after it.
        has_digit = next_digit < span_end or (span_end < len(text) and text[span_end].isdecimal())
        # (?=[0-9a-f-]*[a-f]): a hex letter in the run from `start`.
        has_letter = next_letter < span_end
        if not (has_digit and has_letter):
            pos = head.end()
            continue
        # Checked only now: the groups can be long, and a match moves `pos` past them.
        end = _HEX_GROUPS_RE.match(text, head.end()).end()  # type: ignore[union-attr]
        if end < len(text) and _is_word(text[end]):  # no word boundary: give back the last group
            end = text.rfind("-", head.end(), end) if end > head.end() else -1
        if end > 0:
            spans.append((start, end))
            pos = end
        else:
            pos = head.end()
    return spans


def normalise(text: str) -> str:
    """Clean one piece of mail text into lower-case words separated by single spaces.

    Quoted lines (starting with ">") are dropped: intake strips quoted history before routing,
    but training text from a CSV export is raw. Linear in the length of `text`.
    """
    # Repair first: NFKC would turn the "¼" of a mis-decoded "ü" ("Ã¼") into "1⁄4".
    text = unicodedata.normalize("NFKC", _repair_mojibake(text))
    lines = [line for line in text.splitlines() if not line.lstrip().startswith(">")]
    text = "\n".join(lines).casefold()
    text = _replace_spans(text, _cid_spans(text), " ")
    text = _URL_RE.sub(f" {URL_TOKEN} ", text)
    text = _replace_spans(text, _email_spans(text), f" {EMAIL_TOKEN} ")
    text = _replace_spans(text, _hex_spans(text), f" {ID_TOKEN} ")
    text = _LONG_NUMBER_RE.sub(f" {NUMBER_TOKEN} ", text)
    text = _fold_accents(text)
    return _NON_WORD_RE.sub(" ", text).strip()


def prepare(subject: str, body: str) -> tuple[str, str]:
    """Normalise a subject and body; a body that only repeats the subject counts as empty."""
    subject_n = normalise(subject or "")
    body_n = normalise((body or "")[:MAX_BODY_CHARS])
    if body_n == subject_n:
        body_n = ""
    return subject_n, body_n


def prepare_rows(items: Iterable[Sequence[str]]) -> list[tuple[str, str, str]]:
    """(subject, body) pairs -> (subject, body, full) with `full` the two joined, all normalised."""
    rows = []
    for item in items:
        subject, body = prepare(str(item[0]), str(item[1]) if len(item) > 1 else "")
        rows.append((subject, body, f"{subject} {body}".strip()))
    return rows
