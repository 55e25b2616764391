"""Bytes to a frozen `ParsedEmail`: addresses, subject, text, the new part of a reply, attachments, language.

mail-parser does the MIME walk and the header decoding. On top of it we:

* turn HTML-only mail into text (inscriptis: keeps the layout of tables and lists readable);
* re-decode text parts whose declared charset was missing or wrong (common in real mail:
  8-bit bodies labelled us-ascii, or not labelled at all) by trying UTF-8 and then detecting;
* separate the new part of a reply from quoted history and signature (`intake.quotes`);
* cap attachments by size, count and total, recording the ones we do not keep (never silently);
* read RFC 3464 delivery status reports so a bounce can find the mail it is about.
"""

from __future__ import annotations

import base64
import email
import hashlib
import mimetypes
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import charset_normalizer
import mailparser

from intake.config import IntakeConfig
from intake.errors import ParseError
from intake.language import detect_language
from intake.quotes import new_content
from intake.store import extract_message_id

MAX_TEXT_CHARS = 1_000_000  # a body beyond this is truncated for storage and routing (the raw mail keeps it)
_MSGIDS = re.compile(r"<([^<>\s]+)>")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f<>:"/\\|?*]+')


@dataclass(frozen=True)
class Address:
    name: str
    addr: str  # lower-cased

    def __str__(self) -> str:
        return f"{self.name} <{self.addr}>" if self.name else self.addr


@dataclass(frozen=True)
class ParsedAttachment:
    filename: str  # sanitised: no path, no control characters
    content_type: str
    size: int
    sha256: str
    content: bytes | None  # None when omitted
    omitted: str | None = None  # why the content was not kept


@dataclass(frozen=True)
class DeliveryReport:
    """The parts of an RFC 3464 delivery status notification that matter to a ticket."""

    original_message_id: str | None
    recipients: tuple[str, ...]
    action: str  # failed, delayed, delivered, relayed, expanded
    status: str  # e.g. 5.1.1
    diagnostic: str


@dataclass(frozen=True)
class ParsedEmail:
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    subject: str
    date: datetime | None
    text: str  # the whole text body
    new_text: str  # quoted history and signature removed
    html_only: bool
    attachments: tuple[ParsedAttachment, ...]
    language: str
    content_type: str
    headers: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    report: DeliveryReport | None = None
    defects: tuple[str, ...] = ()

    @property
    def sender(self) -> str:
        return self.from_.addr if self.from_ else ""

    @property
    def references_all(self) -> tuple[str, ...]:
        """In-Reply-To first, then References from the newest to the oldest, without repeats."""
        seen: dict[str, None] = {}
        for ref in (*self.in_reply_to, *reversed(self.references)):
            seen.setdefault(ref, None)
        return tuple(seen)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""


def decode_text(value: Any) -> str:
    """A header value as text: RFC 2047 words decoded, raw 8-bit bytes rescued, whitespace folded.

    Pass raw values (`raw_header`): the standard library hides raw 8-bit header bytes (RFC 6532
    UTF-8, or a legacy charset sent unencoded) behind surrogate escapes that decode to U+FFFD.
    """
    if value is None:
        return ""
    if not isinstance(value, str):
        value = str(value)
    if any("\udc80" <= ch <= "\udcff" for ch in value):
        value = _decode_bytes(value.encode("utf-8", "surrogateescape"), None)
    if "=?" not in value:
        return " ".join(value.split())
    try:
        text = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, TypeError, AssertionError, HeaderParseError):
        parts = []
        try:
            chunks = decode_header(value)
        except Exception:
            chunks = [(value, None)]
        for chunk, charset in chunks:
            parts.append(chunk if isinstance(chunk, str) else _decode_bytes(chunk, charset))
        text = "".join(parts)
    return " ".join(text.split())


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


def _decode_bytes(data: bytes, charset: str | None) -> str:
    if charset and charset.lower() not in ("unknown-8bit", "x-unknown"):
        try:
            return data.decode(charset)
        except (LookupError, UnicodeError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = charset_normalizer.from_bytes(data, cp_isolation=list(_MAIL_CHARSETS)).best()
    if best is not None:
        return str(best)
    return data.decode("latin-1")


def _addresses(pairs: Any) -> tuple[Address, ...]:
    """mail-parser's (display name, address) pairs, already RFC 2047-decoded, as Addresses."""
    result: list[Address] = []
    if isinstance(pairs, str):
        pairs = getaddresses([pairs])
    for pair in pairs or ():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            continue
        display, addr = pair
        addr = str(addr).strip().strip("<>").lower()
        if not addr or "@" not in addr:
            continue
        result.append(Address(" ".join(str(display).split()), addr))
    return tuple(result)


def _message_ids(value: Any) -> tuple[str, ...]:
    text = decode_text(value)
    found = _MSGIDS.findall(text)
    if found:
        return tuple(found)
    single = extract_message_id(text)
    return (single,) if single else ()


def sanitize_filename(name: str, content_type: str, index: int) -> str:
    """A filename safe to show and to write: no directories, no control or reserved characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    if not name:
        ext = mimetypes.guess_extension(content_type or "") or ".bin"
        name = f"attachment-{index}{ext}"
    encoded = name.encode("utf-8")
    if len(encoded) > 200:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        keep = 200 - len(ext) - 1
        stem = (stem if dot else name).encode("utf-8")[:keep].decode("utf-8", "ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name


def _attachments(parser: Any, config: IntakeConfig) -> tuple[ParsedAttachment, ...]:
    result: list[ParsedAttachment] = []
    total = 0
    for index, item in enumerate(parser.attachments, start=1):
        payload = item.get("payload") or ""
        content_type = str(item.get("mail_content_type") or "application/octet-stream")
        try:
            if item.get("binary"):
                content = base64.b64decode(payload)
            else:
                content = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
        except Exception as exc:
            content = b""
            omitted: str | None = f"could not decode the attachment: {exc}"
        else:
            omitted = None
        filename = sanitize_filename(str(item.get("filename") or ""), content_type, index)
        size = len(content)
        digest = hashlib.sha256(content).hexdigest()
        if omitted is None:
            if index > config.max_attachments:
                omitted = f"more than {config.max_attachments} attachments"
            elif size > config.max_attachment_size:
                omitted = f"larger than {config.max_attachment_size} bytes"
            elif total + size > config.max_attachments_total:
                omitted = f"attachments together larger than {config.max_attachments_total} bytes"
        if omitted is None:
            total += size
        result.append(
            ParsedAttachment(
                filename=filename,
                content_type=content_type[:255],
                size=size,
                sha256=digest,
                content=None if omitted else content,
                omitted=omitted,
            )
        )
    return tuple(result)


_BLANK_RUNS = re.compile(r"\n\s*\n(\s*\n)+")


def _html_to_text(html: str) -> str:
    from inscriptis import get_text  # lxml underneath: loaded with the first HTML-only mail

    text = "\n".join(line.rstrip() for line in str(get_text(html)).splitlines())
    return _BLANK_RUNS.sub("\n\n", text).strip("\n")


def _text_parts(parser: Any) -> tuple[str, bool]:
    """(text, html_only): plain text parts joined, or the HTML parts converted when there is no plain text."""
    charset_trouble = any("CharsetDecodeDefect" in str(d) for d in (parser.defects or []))
    plain: list[str] = list(parser.text_plain)
    html: list[str] = list(parser.text_html)
    if charset_trouble:
        plain, html = _redecode_text_parts(parser.message)
    if any(p.strip() for p in plain):
        return "\n".join(plain), False
    if html:
        return "\n".join(_html_to_text(h) for h in html), True
    return "", False


def _redecode_text_parts(message: Message) -> tuple[list[str], list[str]]:
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
        text = _decode_bytes(data, part.get_content_charset())
        (html if part.get_content_subtype() == "html" else plain).append(text)
    return plain, html


_ORIGINAL_PARTS = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


def _delivery_report(message: Message) -> DeliveryReport | None:
    if message.get_content_type() != "multipart/report":
        return None
    recipients: list[str] = []
    action = status = diagnostic = ""
    original: str | None = None
    for part in message.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            blocks = part.get_payload()
            if not isinstance(blocks, list):
                continue
            for block in blocks[1:] or blocks:
                if not isinstance(block, Message):
                    continue
                rcpt = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                if rcpt:
                    recipients.append(rcpt.rpartition(";")[2].strip().strip("<>").lower())
                action = action or str(block.get("Action") or "").strip().lower()
                status = status or str(block.get("Status") or "").strip()
                diagnostic = diagnostic or decode_text(block.get("Diagnostic-Code") or "")
        elif ctype in _ORIGINAL_PARTS and original is None:
            original = _original_message_id(part)
    return DeliveryReport(original, tuple(recipients), action, status, diagnostic)


def _original_message_id(part: Message) -> str | None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return extract_message_id(decode_text(payload[0].get("Message-ID")))
    if isinstance(payload, str):
        match = re.search(r"^Message-ID:\s*(.+)$", payload, re.IGNORECASE | re.MULTILINE)
        if match:
            return extract_message_id(match.group(1))
    return None


# Headers routing rules and automatic-mail detection look at; the rest stay in the raw mail.
_KEPT_HEADERS = (
    "from",
    "auto-submitted",
    "precedence",
    "x-precedence",
    "list-id",
    "list-unsubscribe",
    "list-post",
    "x-autoreply",
    "x-autorespond",
    "x-auto-response-suppress",
    "x-autogenerated",
    "x-failed-recipients",
    "x-loop",
    "x-helpdesk-loop",
    "x-helpdesk-ticket",
    "x-priority",
    "importance",
    "priority",
    "x-mailer",
    "user-agent",
    "content-language",
    "content-type",
    "return-path",
    "delivered-to",
    "x-original-to",
    "feedback-id",
    "x-campaign",
    "x-mailgun-tag",
    "x-ms-exchange-inbox-rules-loop",
    "x-mailchimp-campaign",
    "x-spam-flag",
    "x-spam-status",
    "x-spam",
)


def _headers(message: Message) -> dict[str, tuple[str, ...]]:
    kept: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = name.lower()
        if key in _KEPT_HEADERS:
            kept.setdefault(key, []).append(decode_text(value))
    kept["received-count"] = [str(len(message.get_all("Received") or []))]
    return {k: tuple(v) for k, v in kept.items()}


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(decode_text(value))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class _StdlibParse:
    """The few attributes of mail-parser's result we use, read with the standard library only."""

    def __init__(self, data: bytes, why: str) -> None:
        self.message: Message = email.message_from_bytes(data, policy=compat32)
        self.defects = [f"mail-parser failed ({why}); read with the standard library"]
        self.text_plain, self.text_html = _redecode_text_parts(self.message)
        self.attachments: list[dict[str, Any]] = []
        for part in self.message.walk():
            if part.is_multipart():
                continue
            filename = part.get_filename()
            if not filename and part.get_content_disposition() != "attachment":
                continue
            payload = part.get_payload(decode=True)
            self.attachments.append(
                {
                    "filename": decode_text(filename or ""),
                    "payload": base64.b64encode(payload if isinstance(payload, bytes) else b"").decode(),
                    "binary": True,
                    "mail_content_type": part.get_content_type(),
                }
            )
        self.from_ = getaddresses([decode_text(v) for v in self.message.get_all("From") or []])
        self.sender = getaddresses([decode_text(v) for v in self.message.get_all("Sender") or []])
        self.to = getaddresses([decode_text(v) for v in self.message.get_all("To") or []])
        self.cc = getaddresses([decode_text(v) for v in self.message.get_all("Cc") or []])
        self.reply_to = getaddresses([decode_text(v) for v in self.message.get_all("Reply-To") or []])


def parse_email(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Parse raw bytes; raises ParseError only when nothing usable can be read."""
    parser: Any
    try:
        parser = mailparser.parse_from_bytes(data)
    except Exception as exc:
        # mail-parser gives up on some broken structures (e.g. an epilogue with no boundary);
        # the standard library alone still reads them, which beats quarantining a requester's mail.
        try:
            parser = _StdlibParse(data, f"{exc.__class__.__name__}: {exc}")
        except Exception as exc2:
            raise ParseError(f"the message could not be read: {exc}; {exc2}") from exc2
    message: Message | None = parser.message
    if message is None:
        raise ParseError("the message has no headers and no body")
    try:
        text, html_only = _text_parts(parser)
    except Exception as exc:
        raise ParseError(f"could not decode the text of the message: {exc}") from exc
    text = text.replace("\r\n", "\n").replace("\x00", "")[:MAX_TEXT_CHARS]
    new_text = new_content(text)
    from_list = _addresses(parser.from_)
    sender_list = _addresses(parser.sender)
    subject = decode_text(raw_header(message, "Subject"))
    default_language = config.default_language
    language = detect_language(f"{subject}\n{new_text or text}", default=default_language)
    defects = tuple(str(d) for d in (parser.defects or []))[:20]
    return ParsedEmail(
        message_id=extract_message_id(decode_text(raw_header(message, "Message-ID"))),
        in_reply_to=_message_ids(raw_header(message, "In-Reply-To")),
        references=_message_ids(raw_header(message, "References")),
        from_=(from_list or sender_list or (None,))[0],
        reply_to=_addresses(parser.reply_to),
        to=_addresses(parser.to),
        cc=_addresses(parser.cc),
        subject=subject,
        date=_date(raw_header(message, "Date")),
        text=text,
        new_text=new_text,
        html_only=html_only,
        attachments=_attachments(parser, config),
        language=language,
        content_type=message.get_content_type(),
        headers=_headers(message),
        report=_delivery_report(message),
        defects=defects,
    )
