"""The body of a mail and its other parts: which MIME parts are the text a person wrote, in order.

A careful reader (and every mail client) reads a MIME tree like this (RFC 2046, RFC 2387):

* multipart/mixed and its kin: every part in order. Inline text parts, plain or HTML, are the
  body, however many there are (Apple Mail puts text, a picture, more text; a web form puts
  its summary in a second part); anything else is an attachment;
* multipart/alternative: one of the parts, chosen by content, not by type alone. The plain text
  is preferred (it quotes replies with ">", which `intake.quotes` reads), unless it is a stub
  ("view this mail in HTML") or lacks most of what the HTML says; then the HTML, read as text;
* multipart/related: its root (RFC 2387 `start`, or the first part) is the body, the rest
  (inline images) attachments; multipart/signed: the first part, the signature an attachment;
* an attached mail (message/rfc822) is an attachment, `message-N.eml`; shown inline (no
  `attachment` disposition, as in a bounce or a digest) its text follows the body's;
* a text part with a file name, or marked as an attachment, is an attachment. When a mail has
  no body text at all, the text of such parts (and of attached mails) stands in for it.

Every part that is not body text becomes an attachment: nothing is dropped. The walk is bounded
in depth and in parts; what lies deeper is an attachment too.
"""

from __future__ import annotations

import email
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from email.policy import compat32

from intake.charsets import codec_for, decode_bytes
from intake.mime_text import html_to_text, payload_of

MAX_DEPTH = 30  # MIME nesting followed; deeper structures are kept as attachments, unread
MAX_PARTS = 5000  # parts read into the body or the attachment list; the rest are counted
META_SEARCH = 2048  # bytes of an HTML part searched for its <meta charset>
BOUNDARY_SEARCH = 8192  # characters of a broken multipart searched for the boundary it uses
BOUNDARY_LINES = 20
MESSAGE_TYPES = frozenset(("message/rfc822", "message/global"))
_BODY_SUBTYPES = frozenset(("plain", "html"))
# A plain alternative that leaves out this share of the HTML's words is not the same text.
POORER_SHARE = 0.5
POORER_WORDS = 10  # ... or at least this many words and a fifth of them
_WORDS = re.compile(r"\w+")
_TAG = re.compile(r"<[^<>]*>")  # linear: a match never runs past the next "<"
_HIDDEN_BLOCKS = ("style", "script", "head", "title")
_MARKUP = ("<html", "<!doctype", "<head", "<body", "<div", "<p>", "<table", "<meta")


@dataclass
class Text:
    content: str
    html: bool  # came from an HTML part
    markup: bool = False  # `content` is HTML still to be read as text
    _read: str | None = field(default=None, repr=False)

    def read(self) -> str:
        """The text, HTML read once however often it is asked for (choosing an alternative reads it)."""
        if self._read is None:
            self._read = html_to_text(self.content) if self.markup else self.content
        return self._read


@dataclass
class Body:
    texts: list[Text] = field(default_factory=list)  # body text parts, in order
    attachments: list[Message] = field(default_factory=list)  # every non-body part, in order
    standby: list[Text] = field(default_factory=list)  # text of named text parts and attached mails
    parts: int = 0  # parts visited
    omitted: int = 0  # parts beyond MAX_PARTS

    @property
    def html_only(self) -> bool:
        return bool(self.texts) and all(t.html for t in self.texts)

    def text(self) -> tuple[str, bool]:
        """The body text, and whether it all came from HTML."""
        texts = [(t.read(), t.html) for t in self.texts]
        texts = [(t, h) for t, h in texts if t.strip()]
        if not texts:
            return "\n".join(t for t in (s.read() for s in self.standby) if t.strip()), False
        return "\n".join(t for t, _ in texts), all(h for _, h in texts)


def read_body(message: Message, hints: Sequence[str] = ()) -> Body:
    body = Body()
    _walk(message, body, hints, 0)
    return body


def part_text(part: Message, hints: Sequence[str]) -> str:
    """A text part's payload as text: its declared charset when it holds, else the mail's others."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a payload the standard library cannot decode: its text as it stands
        data = None
    if not isinstance(data, bytes):
        payload = payload_of(part)
        return payload if isinstance(payload, str) else ""
    declared = part.get_content_charset() if part.get_content_maintype() == "text" else None
    if codec_for(declared) is None and part.get_content_subtype() == "html":
        declared = _meta_charset(data) or declared  # none, or one no codec reads ("chinesebig5")
    return decode_bytes(data, declared, hints)


def _meta_charset(data: bytes) -> str | None:
    """The charset an HTML document names in its <meta> (HTML Living Standard 13.2.3.2), for an
    HTML part whose MIME header names none."""
    head = data[:META_SEARCH].lower()
    at = head.find(b"charset=")
    if at < 0 or head.rfind(b"<meta", 0, at) < 0:
        return None
    value = head[at + len(b"charset=") :].lstrip(b"\"' ")
    end = next((i for i, byte in enumerate(value) if byte in b"\"'; />\t\r\n"), len(value))
    label = value[:end].decode("ascii", "replace")
    return label if 0 < len(label) <= 40 else None


def _walk(part: Message, body: Body, hints: Sequence[str], depth: int) -> None:
    body.parts += 1
    if body.parts > MAX_PARTS:
        body.omitted += 1
        return
    ctype = part.get_content_type()
    disposition = _disposition(part)
    if part.get_content_maintype() == "message" and ctype not in MESSAGE_TYPES:
        body.attachments.append(part)  # a delivery status, a feedback report: one part, not a tree
        return
    if ctype in MESSAGE_TYPES:
        payload = payload_of(part)
        inner = payload[0] if isinstance(payload, list) and payload and depth < MAX_DEPTH else None
        if not isinstance(inner, Message):
            body.attachments.append(part)
            return
        if disposition != "attachment" and not _filename(part):
            # Shown inline (a bounce's returned mail, a digest): its text and its files are the mail's.
            _walk(inner, body, hints, depth + 1)
            return
        body.attachments.append(part)  # an attached mail is one file, message-N.eml
        attached = Body()
        _walk(inner, attached, hints, depth + 1)
        body.standby.append(Text(*attached.text()))
        return
    if part.is_multipart():
        children = [child for child in payload_of(part) if isinstance(child, Message)]
        children += _epilogue_parts(part)
        if depth >= MAX_DEPTH:
            body.attachments.append(part)
            return
        _multipart(part, children, disposition, body, hints, depth)
        return
    if part.get_content_maintype() == "multipart":
        # A multipart whose boundary never appears: its parts under the boundary its lines use, or,
        # failing that, what it holds as text (to a reader it is text, not a file).
        recovered = _with_boundary_found(part) if depth < MAX_DEPTH else None
        if recovered is not None:
            _walk(recovered, body, hints, depth + 1)
        else:
            body.standby.append(Text(part_text(part, hints), html=False))
        return
    if part.get_content_subtype() in _BODY_SUBTYPES and disposition != "attachment":
        from_html = part.get_content_subtype() == "html"
        reading = Text(part_text(part, hints), from_html, markup=from_html)
        named = bool(_filename(part))
        if part.get_content_maintype() == "text" and (not named or disposition == "inline"):
            body.texts.append(reading)  # an inline text part is body text, named or not
            if not named:
                return
        else:
            body.standby.append(reading)  # a named text part, or text under another type
    body.attachments.append(part)


def _multipart(
    part: Message,
    children: list[Message],
    disposition: str | None,
    body: Body,
    hints: Sequence[str],
    depth: int,
) -> None:
    subtype = part.get_content_subtype()
    if disposition == "attachment" or subtype == "encrypted":
        # RFC 2183 section 2.9: the disposition covers the whole container (Apple's appledouble).
        for child in children:
            _attachments_only(child, body, depth + 1)
        return
    if subtype == "alternative" and len(children) > 1:
        _alternative(children, body, hints, depth)
        return
    if subtype == "related" and children:
        root = _related_root(part, children)
        for child in children:
            if child is root:
                _walk(child, body, hints, depth + 1)
            else:
                _attachments_only(child, body, depth + 1)
        return
    if subtype == "signed" and children:
        _walk(children[0], body, hints, depth + 1)
        for child in children[1:]:
            _attachments_only(child, body, depth + 1)
        return
    for child in children:
        _walk(child, body, hints, depth + 1)


def _with_boundary_found(part: Message) -> Message | None:
    """`part` read again with the boundary its delimiter lines use (RFC 2046 section 5.1.1: a line
    of "--" and the boundary), when it declares another one; None if no such line comes first."""
    payload = payload_of(part)
    if not isinstance(payload, str):
        return None
    for line in payload[:BOUNDARY_SEARCH].splitlines()[:BOUNDARY_LINES]:
        if not line.startswith("--"):
            continue  # a preamble
        boundary = line.rstrip()[2:]
        if (
            not (0 < len(boundary) <= 70)
            or any(ch in boundary for ch in '"\\')
            or boundary == part.get_boundary()
        ):
            return None
        head = f'Content-Type: {part.get_content_type()}; boundary="{boundary}"\n\n'
        recovered = email.message_from_bytes(
            (head + payload).encode("utf-8", "surrogateescape"), policy=compat32
        )
        return recovered if isinstance(payload_of(recovered), list) else None
    return None


def _epilogue_parts(part: Message) -> list[Message]:
    """Parts after a multipart's closing delimiter: a mailer that reused its boundary in a nested
    multipart closed the outer one early, and the rest of the mail (an attachment) follows it."""
    epilogue = part.epilogue
    boundary = part.get_boundary()
    if not epilogue or not boundary or f"--{boundary}" not in epilogue or any(ch in boundary for ch in '"\\'):
        return []
    head = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
    recovered = email.message_from_bytes(
        (head + epilogue).encode("utf-8", "surrogateescape"), policy=compat32
    )
    payload = payload_of(recovered)
    return [child for child in payload if isinstance(child, Message)] if isinstance(payload, list) else []


def _attachments_only(part: Message, body: Body, depth: int) -> None:
    """Every leaf of `part` (or the whole of an attached mail) as an attachment, none as text."""
    body.parts += 1
    if body.parts > MAX_PARTS:
        body.omitted += 1
        return
    if part.is_multipart() and part.get_content_maintype() != "message" and depth < MAX_DEPTH:
        for child in payload_of(part):
            if isinstance(child, Message):
                _attachments_only(child, body, depth + 1)
        return
    body.attachments.append(part)


def _related_root(part: Message, children: list[Message]) -> Message:
    start = part.get_param("start")
    if isinstance(start, str) and start.strip():
        wanted = start.strip().strip("<>")
        for child in children:
            if str(child.get("Content-ID", "")).strip().strip("<>") == wanted:
                return child
    return children[0]


def _alternative(children: list[Message], body: Body, hints: Sequence[str], depth: int) -> None:
    """One alternative's text, chosen by content; every alternative's attachments (inline images
    of an HTML part, a calendar invitation) kept."""
    readings: list[Body] = []
    for child in children:
        reading = Body(parts=body.parts)
        _walk(child, reading, hints, depth + 1)
        body.parts = reading.parts
        body.omitted += reading.omitted
        readings.append(reading)
        body.attachments.extend(reading.attachments)
    with_text = [r for r in readings if any(t.content.strip() for t in r.texts)]
    plain = next((r for r in with_text if not r.html_only), None)
    rich = next((r for r in reversed(with_text) if r.html_only), None)
    chosen = plain or rich
    if plain is not None and rich is not None and _richer(rich, plain.text()[0]):
        chosen = rich
    if chosen is None:
        for reading in readings:
            body.standby.extend(reading.standby)
        return
    body.texts.extend(chosen.texts)
    body.standby.extend(chosen.standby)


def _richer(rich: Body, plain: str) -> bool:
    """Whether the HTML alternative says what the plain one lacks (the plain one is a stub, or a
    part of it only). Its markup is read properly only when a rough look says it might."""
    if plain.lstrip()[:20].lower().startswith(_MARKUP):
        return True  # the "plain" alternative is the HTML source itself
    plain_words = _words(plain)
    rough = [w for t in rich.texts for w in (rough_html_words(t.content) if t.markup else _words(t.content))]
    if not _lacks(plain_words, rough):
        return False
    return _lacks(plain_words, _words(rich.text()[0]))


def _lacks(plain_words: list[str], rich_words: list[str]) -> bool:
    """Whether most of the rich text's words (and more words than the plain text has) are missing
    from the plain text, or a good many of them are."""
    known = set(plain_words)
    missing = sum(1 for word in rich_words if word not in known)
    if missing > POORER_SHARE * len(rich_words) and len(rich_words) > len(plain_words):
        return True
    return missing >= POORER_WORDS and missing > 0.2 * len(rich_words)


def rough_html_words(markup: str) -> list[str]:
    """The words of HTML without a parser: blocks that show nothing removed, tags removed. A
    superset of what the HTML shows, cheap enough to decide whether to read it properly."""
    lower = markup.lower()
    kept: list[str] = []
    start = 0
    # The next opening of each kind of block; each search moves forward only, so this is linear.
    upcoming = {name: lower.find(f"<{name}") for name in _HIDDEN_BLOCKS}
    while True:
        found = [(position, name) for name, position in upcoming.items() if position >= 0]
        if not found:
            break
        position, name = min(found)
        kept.append(markup[start:position])
        end = lower.find(f"</{name}", position)
        start = len(markup) if end < 0 else end + 2
        for other, at in upcoming.items():
            if 0 <= at < start:
                upcoming[other] = lower.find(f"<{other}", start)
    kept.append(markup[start:])
    return _words(html.unescape(_TAG.sub(" ", " ".join(kept))))


def _words(text: str) -> list[str]:
    """Words to compare texts by: lower-cased, and each CJK character a word of its own (those
    scripts put no spaces between words, and line breaks fall anywhere)."""
    words: list[str] = []
    for word in _WORDS.findall(text.lower()):
        if word.isascii():
            words.append(word)
        else:
            words.extend(word)
    return words


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:  # a header the standard library cannot read is no disposition
        return None


def _filename(part: Message) -> str | None:
    try:
        return part.get_filename()
    except Exception:
        return None
