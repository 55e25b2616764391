"""The text of a mail as it may be stored and shown: header values decoded, HTML read as text.

Header values are decoded by `intake.encoded_words` (raw 8-bit bytes, RFC 2047 words), bodies by
`intake.charsets`; HTML, all of it, including what follows its `</html>`, is read as text here.
What leaves these functions may be stored and shown: control characters out (NUL above all,
which PostgreSQL refuses in text), no lone surrogates, line endings as LF.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message
from html.parser import HTMLParser
from typing import Any

from intake.encoded_words import decode_words, raw_text

MAX_HTML_CHARS = 5_000_000  # HTML converted to text; markup is a few times the text it carries
# inscriptis keeps tables and lists readable, but within one long line its time grows with the
# square of the line (4 s for 1.7 MB of inline markup); larger HTML is read by the plain reader.
MAX_LAYOUT_HTML_CHARS = 1_000_000
MAX_RAW_HEADER_CHARS = 64_000  # a header is decoded from at most this much of its raw value
# Control characters (C0, DEL, C1). Text bodies keep tab and newline; one-line fields keep none.
_BODY_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]+")
LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")


def clean_text(text: str) -> str:
    """A body as it may be stored: CRLF and CR as LF, no control characters but tab and newline,
    no lone surrogates (which no database encoding holds)."""
    text = _BODY_CONTROLS.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    return valid_unicode(text)


def clean_line(text: str) -> str:
    """A one-line field as it may be stored and shown: every control character a space."""
    return valid_unicode(LINE_CONTROLS.sub(" ", text))


def valid_unicode(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates, from bytes decoded with surrogateescape
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def decode_text(value: Any, limit: int | None = MAX_RAW_HEADER_CHARS, hints: Sequence[str] = ()) -> str:
    """A header value as text: raw 8-bit bytes and RFC 2047 words decoded, whitespace folded.

    Pass raw values (`raw_header`): the standard library hides raw 8-bit header bytes (RFC 6532
    UTF-8, or a legacy charset sent unencoded) behind surrogate escapes that decode to U+FFFD.
    `hints` are the codecs the same mail declares elsewhere (`intake.charsets.mail_hints`).
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    text = decode_words(raw_text(value[:limit], hints), hints)
    return " ".join(clean_line(text).split())


def payload_of(part: Message) -> Any:
    """A part's payload as parsed: its subparts (a list), or its text with raw bytes as surrogate
    escapes. The standard library decodes such text with the part's charset parameter, whatever
    that holds (a NUL in it raises ValueError): then the bytes are taken as they are."""
    try:
        return part.get_payload()
    except (ValueError, LookupError, UnicodeError):
        data = part.get_payload(decode=True)
        return data.decode("ascii", "surrogateescape") if isinstance(data, bytes) else ""


def raw_header(message: Message, name: str) -> str | None:
    """The first value of header `name` exactly as received (surrogate-escaped where 8-bit)."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


_BLANK_RUNS = re.compile(r"\n{3,}")  # on right-stripped lines: blank lines are empty


def html_to_text(html: str) -> str:
    """The text of an HTML part, including what follows its `</html>`: mobile clients and list
    servers append text (a reply typed under a forwarded page, a footer) after the document,
    or a second document, and an HTML parser stops at the first end of the document."""
    html = html[:MAX_HTML_CHARS]
    texts = [_document_text(document) for document in _documents(html)]
    return "\n\n".join(text for text in texts if text)


def _documents(html: str) -> list[str]:
    """`html` cut after each `</html>` (any case); what follows the last one if it is not blank."""
    lower = html.lower()
    documents: list[str] = []
    start = 0
    while True:
        close = lower.find("</html", start)
        if close < 0:
            break
        end = lower.find(">", close)
        end = len(html) if end < 0 else end + 1
        documents.append(html[start:end])
        start = end
    tail = html[start:]
    if tail.strip() or not documents:
        documents.append(tail)
    return documents


def _document_text(html: str) -> str:
    from inscriptis import get_text  # lxml underneath: loaded with the first HTML-only mail

    converted = ""
    if len(html) <= MAX_LAYOUT_HTML_CHARS:
        try:
            converted = str(get_text(html))
        except (RecursionError, ValueError, TypeError):
            converted = ""
    if not converted.strip():
        # libxml2 stops at 255 levels of nesting and gives an empty tree: read the text anyway.
        converted = _HtmlText.text_of(html)
    text = "\n".join(line.rstrip() for line in converted.splitlines())
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


class _HtmlText(HTMLParser):
    """The text of HTML however deeply it nests: the standard library's tokenizer keeps no tree."""

    _BLOCKS = frozenset(
        "address article aside blockquote br dd div dl dt fieldset figcaption figure footer form h1 h2 h3 "
        "h4 h5 h6 header hr li main nav ol p pre section table td th tr ul".split()
    )
    _HIDDEN = frozenset(("script", "style", "head", "title", "template"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden = 0

    @classmethod
    def text_of(cls, html: str) -> str:
        reader = cls()
        reader.feed(html)
        reader.close()
        lines = ("".join(reader.parts)).split("\n")
        return "\n".join(" ".join(line.split()) for line in lines)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._HIDDEN:
            self.hidden += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._HIDDEN:
            self.hidden = max(0, self.hidden - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)
