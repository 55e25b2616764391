"""The text of a mail: bodies and header values decoded whatever their charset, HTML read as text.

Real mail lies about its charset (8-bit bodies labelled us-ascii, or not labelled at all, raw
UTF-8 in headers, RFC 6532), and some of it is HTML only. These functions turn it into text that
may be stored and shown: control characters out (NUL above all, which PostgreSQL refuses in
text), no lone surrogates, line endings as LF. `intake.parse` uses them for every part.
"""

from __future__ import annotations

import re
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from html.parser import HTMLParser
from typing import Any

import charset_normalizer

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


def decode_text(value: Any, limit: int | None = MAX_RAW_HEADER_CHARS) -> str:
    """A header value as text: RFC 2047 words decoded, raw 8-bit bytes rescued, whitespace folded.

    Pass raw values (`raw_header`): the standard library hides raw 8-bit header bytes (RFC 6532
    UTF-8, or a legacy charset sent unencoded) behind surrogate escapes that decode to U+FFFD.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    value = value[:limit]
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        value = decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    if "=?" not in value:
        return " ".join(clean_line(value).split())
    try:
        text = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, TypeError, AssertionError, MessageError):
        # MessageError: HeaderParseError, or CharsetError for a charset name that is not ASCII.
        parts = []
        try:
            chunks = decode_header(value)
        except Exception:
            chunks = [(value, None)]
        for chunk, charset in chunks:
            parts.append(chunk if isinstance(chunk, str) else decode_bytes(chunk, charset))
        text = "".join(parts)
    return " ".join(clean_line(text).split())


def raw_header(message: Message, name: str) -> str | None:
    """The first value of header `name` exactly as received (surrogate-escaped where 8-bit)."""
    wanted = name.lower()
    for key, value in message.raw_items():
        if key.lower() == wanted:
            return str(value)
    return None


# The legacy charsets undeclared 8-bit mail is actually written in; letting the detector consider
# every codec it knows picks look-alikes (cp1257 for Polish) that garble the text.
_MAIL_CHARSETS = (
    "cp1250",
    "iso8859_2",
    "cp1252",
    "iso8859_15",
    "cp1251",
    "koi8_r",
    "iso8859_7",
    "shift_jis",
    "euc_jp",
    "iso2022_jp",
    "gb18030",
    "big5",
    "euc_kr",
)


def decode_bytes(data: bytes, charset: str | None) -> str:
    if charset and charset.lower() not in ("unknown-8bit", "x-unknown"):
        try:
            return data.decode(charset)
        except (LookupError, UnicodeError, ValueError):  # ValueError: a NUL in the charset's name
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data, cp_isolation=list(_MAIL_CHARSETS)).best()
    if best is not None:
        return str(best)
    return data.decode("latin-1")


_BLANK_RUNS = re.compile(r"\n{3,}")  # on right-stripped lines: blank lines are empty


def html_to_text(html: str) -> str:
    from inscriptis import get_text  # lxml underneath: loaded with the first HTML-only mail

    html = html[:MAX_HTML_CHARS]
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


def text_parts(parser: Any) -> tuple[str, bool]:
    """(text, html_only): plain text parts joined, or the HTML parts converted when there is no plain text."""
    charset_trouble = any("CharsetDecodeDefect" in str(d) for d in (parser.defects or []))
    plain: list[str] = list(parser.text_plain)
    html: list[str] = list(parser.text_html)
    if charset_trouble:
        plain, html = redecode_text_parts(parser.message)
    if any(p.strip() for p in plain):
        return "\n".join(plain), False
    if html:
        return "\n".join(html_to_text(h) for h in html), True
    return "", False


def redecode_text_parts(message: Message) -> tuple[list[str], list[str]]:
    """Decode text parts ourselves when the declared charset was missing or wrong."""
    plain: list[str] = []
    html: list[str] = []
    for part in message.walk():
        if part.is_multipart() or part.get_content_maintype() != "text":
            continue
        if part.get_content_disposition() == "attachment" or part.get_filename():
            continue
        data = part.get_payload(decode=True)
        if not isinstance(data, bytes):
            continue
        text = decode_bytes(data, part.get_content_charset())
        (html if part.get_content_subtype() == "html" else plain).append(text)
    return plain, html
