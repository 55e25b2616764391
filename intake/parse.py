"""Bytes to a frozen `ParsedEmail`: addresses, subject, text, the new part of a reply, attachments, language.

The standard library's `email` package reads the MIME tree (mail-parser reads it the same way,
but names attachments at random, drops parts without a name and keeps text by type alone, and
offers no option to do otherwise); on top of it:

* a broken header block is repaired when the lenient reading shows one (`intake.header_repair`);
* bodies: every inline text part in order, the alternative chosen by content, HTML read as
  text, every other part an attachment with a stable name (`intake.bodies`, `intake.attachments`);
* charsets: text and header values decoded with the charsets the mail declares elsewhere as hints
  when their own label is missing or wrong (`intake.charsets`, `intake.encoded_words`);
* senders: mail-parser's strict address parser first, a careful recovery when it finds no
  address, and From, then Reply-To, then Sender (`intake.addresses`);
* the new part of a reply separated from quoted history and signature (`intake.quotes`);
* RFC 3464 delivery status reports read, so a bounce can find the mail it is about;
* control characters (NUL above all, which PostgreSQL refuses in text) kept out of every field,
  and what one mail may put into the database capped: subject and header lengths, references,
  To/Cc addresses and attachment rows, counting what was left out in `ParsedEmail.omitted`.
"""

from __future__ import annotations

import email
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message
from email.policy import compat32
from email.utils import parsedate_to_datetime
from typing import Any

from intake.addresses import choose_sender, mailboxes
from intake.attachments import attachments as read_attachments
from intake.bodies import MAX_PARTS, read_body
from intake.charsets import guess_codec, mail_hints
from intake.config import IntakeConfig
from intake.errors import ParseError
from intake.header_repair import repair_headers
from intake.language import detect_language
from intake.mime_text import clean_line, clean_text, decode_text, payload_of, raw_header
from intake.quotes import new_content
from intake.raw_queue import extract_message_id
from models.mail import Address, DeliveryReport, ParsedEmail

MAX_TEXT_CHARS = 1_000_000  # a body beyond this is truncated for storage and routing (the raw mail keeps it)
MAX_SUBJECT_CHARS = 1000  # RFC 5322 section 2.1.1: a line is at most 998 characters
MAX_HEADER_CHARS = 1000  # each kept header value (routing rules and automatic-mail detection read them)
MAX_HEADER_VALUES = 20  # values kept per header name
MAX_MESSAGE_ID = 998  # RFC 5322 line length; longer ids are not ids
MAX_REFERENCE_CHARS = 1_000_000  # of an In-Reply-To or References header (about 25,000 ids)
MAX_ADDRESS = 254  # RFC 5321 section 4.5.3.1.3: the longest path is 256 octets with its brackets
MAX_HINT_WORDS = 8  # encoded words per header looked at for the charsets a mail declares
MAX_HINT_BYTES = 1024  # of each raw 8-bit header pooled to judge their charset together
_NAMED_HEADERS = frozenset(("subject", "from", "to", "cc", "reply-to", "sender"))
_MSGIDS = re.compile(r"<([^<>\s]+)>")


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


_ORIGINAL_PARTS = ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers")


def _delivery_report(message: Message) -> DeliveryReport | None:
    if message.get_content_type() != "multipart/report":
        return None
    recipients: list[str] = []
    action = status = diagnostic = ""
    original: str | None = None
    for part in _parts(message):  # no recursion: a report may nest as deep as any mail
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            blocks = payload_of(part)
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
    payload = payload_of(part)
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


def _headers(message: Message, hints: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    kept: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        key = name.lower()
        if key in _KEPT_HEADERS:
            values = kept.setdefault(key, [])
            if len(values) < MAX_HEADER_VALUES:
                values.append(decode_text(value, hints=hints)[:MAX_HEADER_CHARS])
    kept["received-count"] = [str(len(message.get_all("Received") or []))]
    return {k: tuple(v) for k, v in kept.items()}


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(decode_text(value))
    except (TypeError, ValueError, IndexError, OverflowError):  # a year beyond any calendar
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def read_message(data: bytes) -> tuple[Message, list[str]]:
    """The MIME tree of `data`, its header block repaired when the lenient reading shows it broken
    (`intake.header_repair`), and notes on what was repaired."""
    try:
        message = email.message_from_bytes(data, policy=compat32)
    except RecursionError as exc:
        raise ParseError("the message is nested too deeply to be read") from exc
    except Exception as exc:
        raise ParseError(f"the message could not be read: {exc.__class__.__name__}: {exc}") from exc
    broken = len(message) == 0 or any(
        isinstance(d, MissingHeaderBodySeparatorDefect) for d in message.defects
    )
    if broken:
        repaired = repair_headers(data)
        if repaired is not None:
            try:
                candidate = email.message_from_bytes(repaired.data, policy=compat32)
            except Exception:  # RecursionError included: keep the lenient reading
                return message, []
            if len(candidate) > len(message):  # never worse than the lenient reading
                return candidate, list(repaired.notes)
    return message, []


def _parts(message: Message) -> Iterator[Message]:
    """Every part of the tree, depth first, without recursion (a hostile mail nests deeply)."""
    stack = [message]
    seen = 0
    while stack and seen < MAX_PARTS:
        part = stack.pop()
        seen += 1
        yield part
        payload = payload_of(part)
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, Message)]))


def declared_charsets(message: Message) -> tuple[str, ...]:
    """The codecs a mail's undeclared bytes are read with: its text parts' charsets, those of its
    encoded words, then the charset of all its raw 8-bit header bytes read together (a subject
    and a name written by one mailer: more bytes to judge than either alone)."""
    labels: list[str | None] = []
    for part in _parts(message):
        if part.get_content_maintype() == "text":
            labels.append(part.get_content_charset())
    for name in ("Subject", "From", "To"):
        labels.extend(_word_charsets(raw_header(message, name) or ""))
    hints = mail_hints(labels)
    raw = b"\n".join(
        str(value).encode("utf-8", "surrogateescape")[:MAX_HINT_BYTES]
        for name, value in message.raw_items()
        if name.lower() in _NAMED_HEADERS and not str(value).isascii()
    )
    if raw and not _utf8(raw):
        pooled = guess_codec(raw[: 4 * MAX_HINT_BYTES], hints)
        if pooled is not None and pooled not in hints:
            hints = (*hints, pooled)
    return hints


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _word_charsets(value: str) -> list[str]:
    labels: list[str] = []
    start = value.find("=?")
    while start >= 0 and len(labels) < MAX_HINT_WORDS:
        end = value.find("?", start + 2, start + 70)
        if end < 0:
            break
        labels.append(value[start + 2 : end])
        start = value.find("=?", end)
    return labels


def _defects(message: Message, notes: list[str]) -> tuple[str, ...]:
    found = list(notes)
    for part in _parts(message):
        found.extend(d.__class__.__name__ for d in getattr(part, "defects", ()))
        if len(found) >= 20:
            break
    return tuple(clean_line(d)[:500] for d in found[:20])


def _raw_headers(message: Message) -> list[tuple[str, str]]:
    return [(name.lower(), str(value)) for name, value in message.raw_items()]


def _addresses_of(values: list[str], hints: tuple[str, ...]) -> list[Address]:
    found: list[Address] = []
    for value in values:
        found.extend(mailboxes(value, hints, recover_broken=False))
    return found


def parse_email(data: bytes, config: IntakeConfig) -> ParsedEmail:
    """Parse raw bytes; raises ParseError only when nothing usable can be read."""
    message, notes = read_message(data)
    hints = declared_charsets(message)
    try:
        body = read_body(message, hints)
        text, html_only = body.text()
    except RecursionError as exc:
        raise ParseError("the message is nested too deeply to be read") from exc
    text = clean_text(text[: MAX_TEXT_CHARS * 2])[:MAX_TEXT_CHARS]
    new_text = new_content(text)
    headers = _raw_headers(message)
    sender, _ = choose_sender(headers, hints)
    subject = decode_text(raw_header(message, "Subject"), hints=hints)[:MAX_SUBJECT_CHARS]
    language = detect_language(f"{subject}\n{new_text or text}", default=config.default_language)
    omitted: dict[str, int] = {}
    in_reply_to = _message_ids(raw_header(message, "In-Reply-To"))[: config.max_references]
    all_references = _message_ids(raw_header(message, "References"))
    references = _capped_references(all_references, max(0, config.max_references - len(in_reply_to)))
    if len(references) < len(all_references):
        omitted["references"] = len(all_references) - len(references)
    values: dict[str, list[str]] = {"to": [], "cc": [], "reply-to": []}
    for name, value in headers:
        if name in values and len(values[name]) < MAX_HEADER_VALUES:
            values[name].append(value)
    recipients = [
        *((a, "to") for a in _addresses_of(values["to"], hints)),
        *((a, "cc") for a in _addresses_of(values["cc"], hints)),
    ]
    if len(recipients) > config.max_participants:
        omitted["participants"] = len(recipients) - config.max_participants
        recipients = recipients[: config.max_participants]
    attachments, attachments_left_out = read_attachments(body.attachments, config, hints)
    if attachments_left_out or body.omitted:
        omitted["attachments"] = attachments_left_out + body.omitted
    message_id = extract_message_id(decode_text(raw_header(message, "Message-ID")))
    return ParsedEmail(
        message_id=message_id if message_id and len(message_id) <= MAX_MESSAGE_ID else None,
        in_reply_to=in_reply_to,
        references=references,
        from_=sender,
        reply_to=tuple(_addresses_of(values["reply-to"], hints))[: config.max_participants],
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
        headers=_headers(message, hints),
        report=_delivery_report(message),
        defects=_defects(message, notes),
        omitted=omitted,
    )
