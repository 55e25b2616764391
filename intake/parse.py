"""Bytes to a frozen `ParsedEmail`: addresses, subject, text, the new part of a reply, attachments, language.

mail-parser does the MIME walk and the header decoding. On top of it we:

* turn HTML-only mail into text, and re-decode text parts whose declared charset was missing or
  wrong (`intake.mime_text`);
* separate the new part of a reply from quoted history and signature (`intake.quotes`);
* cap attachments by size, count and total, recording the ones we do not keep (never silently);
* read RFC 3464 delivery status reports so a bounce can find the mail it is about;
* keep control characters (NUL above all, which PostgreSQL refuses in text) out of every field,
  and cap what one mail may put into the database: subject and header lengths, references,
  To/Cc addresses and attachment rows, counting what was left out in `ParsedEmail.omitted`.
"""

from __future__ import annotations

import base64
import email
import hashlib
import mimetypes
import re
import unicodedata
from datetime import UTC, datetime
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import mailparser

from intake.config import IntakeConfig
from intake.errors import ParseError
from intake.language import detect_language
from intake.mime_text import (
    LINE_CONTROLS,
    clean_line,
    clean_text,
    decode_text,
    raw_header,
    redecode_text_parts,
    text_parts,
    valid_unicode,
)
from intake.quotes import new_content
from intake.raw_queue import extract_message_id
from models.mail import Address, DeliveryReport, ParsedAttachment, ParsedEmail

MAX_TEXT_CHARS = 1_000_000  # a body beyond this is truncated for storage and routing (the raw mail keeps it)
MAX_SUBJECT_CHARS = 1000  # RFC 5322 section 2.1.1: a line is at most 998 characters
MAX_HEADER_CHARS = 1000  # each kept header value (routing rules and automatic-mail detection read them)
MAX_HEADER_VALUES = 20  # values kept per header name
MAX_MESSAGE_ID = 998  # RFC 5322 line length; longer ids are not ids
MAX_REFERENCE_CHARS = 1_000_000  # of an In-Reply-To or References header (about 25,000 ids)
MAX_ADDRESS = 254  # RFC 5321 section 4.5.3.1.3: the longest path is 256 octets with its brackets
_MSGIDS = re.compile(r"<([^<>\s]+)>")
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]+')


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
        if not addr or "@" not in addr or len(addr) > MAX_ADDRESS or LINE_CONTROLS.search(addr):
            continue  # not an address anyone can be written to
        result.append(Address(decode_text(str(display)), valid_unicode(addr)))
    return tuple(result)


def _message_ids(value: Any) -> tuple[str, ...]:
    raw = "" if value is None else str(value)
    if len(raw) > MAX_REFERENCE_CHARS:  # the thread's root is first, the newest ids are last
        raw = raw[:1000] + " " + raw[-(MAX_REFERENCE_CHARS - 1000) :]
    text = decode_text(raw, limit=None)  # read whole, so that what the caps leave out is counted
    found = [mid for mid in _MSGIDS.findall(text) if len(mid) <= MAX_MESSAGE_ID]
    if found:
        return tuple(found)
    single = extract_message_id(text)
    return (single,) if single and len(single) <= MAX_MESSAGE_ID else ()


def _capped_references(ids: tuple[str, ...], cap: int) -> tuple[str, ...]:
    """The first id (the thread's root, RFC 5322 section 3.6.4) and the newest ones, `cap` in all."""
    if len(ids) <= cap:
        return ids
    return (ids[0], *ids[len(ids) - cap + 1 :]) if cap > 1 else ids[:cap]


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


def _attachments(parser: Any, config: IntakeConfig) -> tuple[tuple[ParsedAttachment, ...], int]:
    """The attachments to record (at most `max_attachment_rows`) and how many more were left out."""
    result: list[ParsedAttachment] = []
    total = 0
    items = list(parser.attachments)
    for index, item in enumerate(items[: config.max_attachment_rows], start=1):
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
    return tuple(result), len(items) - len(result)


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
                rcpt = decode_text(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                if rcpt and len(recipients) < MAX_HEADER_VALUES:
                    recipients.append(rcpt.rpartition(";")[2].strip().strip("<>").lower()[:MAX_ADDRESS])
                action = action or decode_text(block.get("Action") or "").strip().lower()[:40]
                status = status or decode_text(block.get("Status") or "").strip()[:40]
                diagnostic = diagnostic or decode_text(block.get("Diagnostic-Code") or "")[:MAX_HEADER_CHARS]
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
            values = kept.setdefault(key, [])
            if len(values) < MAX_HEADER_VALUES:
                values.append(decode_text(value)[:MAX_HEADER_CHARS])
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
        self.text_plain, self.text_html = redecode_text_parts(self.message)
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
        text, html_only = text_parts(parser)
    except Exception as exc:
        raise ParseError(f"could not decode the text of the message: {exc}") from exc
    text = clean_text(text[: MAX_TEXT_CHARS * 2])[:MAX_TEXT_CHARS]
    new_text = new_content(text)
    from_list = _addresses(parser.from_)
    sender_list = _addresses(parser.sender)
    subject = decode_text(raw_header(message, "Subject"))[:MAX_SUBJECT_CHARS]
    default_language = config.default_language
    language = detect_language(f"{subject}\n{new_text or text}", default=default_language)
    defects = tuple(clean_line(str(d))[:500] for d in (parser.defects or [])[:20])
    omitted: dict[str, int] = {}
    in_reply_to = _message_ids(raw_header(message, "In-Reply-To"))[: config.max_references]
    all_references = _message_ids(raw_header(message, "References"))
    references = _capped_references(all_references, max(0, config.max_references - len(in_reply_to)))
    if len(references) < len(all_references):
        omitted["references"] = len(all_references) - len(references)
    recipients = [*((a, "to") for a in _addresses(parser.to)), *((a, "cc") for a in _addresses(parser.cc))]
    if len(recipients) > config.max_participants:
        omitted["participants"] = len(recipients) - config.max_participants
        recipients = recipients[: config.max_participants]
    attachments, attachments_left_out = _attachments(parser, config)
    if attachments_left_out:
        omitted["attachments"] = attachments_left_out
    message_id = extract_message_id(decode_text(raw_header(message, "Message-ID")))
    return ParsedEmail(
        message_id=message_id if message_id and len(message_id) <= MAX_MESSAGE_ID else None,
        in_reply_to=in_reply_to,
        references=references,
        from_=(from_list or sender_list or (None,))[0],
        reply_to=_addresses(parser.reply_to)[: config.max_participants],
        to=tuple(a for a, role in recipients if role == "to"),
        cc=tuple(a for a, role in recipients if role == "cc"),
        subject=subject,
        date=_date(raw_header(message, "Date")),
        text=text,
        new_text=new_text,
        html_only=html_only,
        attachments=attachments,
        language=language,
        content_type=clean_line(message.get_content_type())[:255],
        headers=_headers(message),
        report=_delivery_report(message),
        defects=defects,
        omitted=omitted,
    )
