"""Attachments: every part that is not body text, with a stable, safe name, within the caps.

A part's name is, in order: its file name (Content-Disposition `filename`, else Content-Type
`name`, RFC 2231 and RFC 2047 forms decoded), else its Content-ID (an inline image's
`<image001.jpg@01D4A1B2.C3D4E5F0>` is `image001.jpg`), else its type and its place among the
mail's attachments: `part-3.mov`, `message-1.eml`. The same mail gives the same names on every
run and on every machine (extensions come from the standard library's own table, not from the
host's mime.types). Names lose directories, control and reserved characters, and length.

Attachments over the caps (`[intake] max_attachments`, `max_attachment_size`,
`max_attachments_total`) are recorded without their content and with the reason; rows beyond
`max_attachment_rows` are counted, never silently dropped.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata
from collections.abc import Sequence
from email.message import Message
from email.policy import compat32

from intake.bodies import MESSAGE_TYPES
from intake.config import IntakeConfig
from intake.encoded_words import decode_words, raw_text
from intake.mime_text import MAX_RAW_HEADER_CHARS, decode_text, payload_of
from models.mail import ParsedAttachment

MAX_FILENAME_BYTES = 200
_UNSAFE_FILENAME = re.compile(r'[\x00-\x1f\x7f-\x9f<>:"/\\|?*]+')
# Built-in table only: the host's /etc/mime.types would make names differ between machines.
_TYPES = mimetypes.MimeTypes(filenames=())
# Mail's own types, and the common ones whose built-in extension is not the usual one.
_EXTENSIONS = {
    "message/rfc822": ".eml",
    "message/global": ".eml",
    "message/delivery-status": ".txt",
    "message/disposition-notification": ".txt",
    "text/rfc822-headers": ".txt",
    "message/rfc822-headers": ".txt",
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/x-vcard": ".vcf",
    "text/vcard": ".vcf",
    "image/jpeg": ".jpg",
    "image/pjpeg": ".jpg",
    "application/octet-stream": ".bin",
    "application/pgp-signature": ".asc",
    "application/pkcs7-signature": ".p7s",
    "application/x-pkcs7-signature": ".p7s",
    "application/ms-tnef": ".dat",
    "video/quicktime": ".mov",
}


def extension_for(content_type: str) -> str:
    known = _EXTENSIONS.get(content_type)
    if known:
        return known
    guessed = _TYPES.guess_extension(content_type, strict=False)
    return guessed or (".txt" if content_type.startswith("text/") else ".bin")


def attachment_name(part: Message, number: int, hints: Sequence[str] = ()) -> str:
    """The stable name of the `number`-th attachment (1-based) of a mail."""
    content_type = part.get_content_type()
    try:
        filename = _filename(part, hints)
    except Exception:  # a parameter the standard library cannot read names nothing
        filename = None
    name = ""
    if filename:
        # Decoded without decode_text's folding: a control character becomes "_" below, not a space.
        name = _safe(decode_words(raw_text(str(filename)[:MAX_RAW_HEADER_CHARS], hints), hints))
    if not name:
        name = _from_content_id(str(part.get("Content-ID") or ""), content_type)
    if not name:
        kind = "message" if content_type in MESSAGE_TYPES else "part"
        name = f"{kind}-{number}{extension_for(content_type)}"
    return name


def _filename(part: Message, hints: Sequence[str]) -> str | None:
    """Content-Disposition `filename` or Content-Type `name`. Raw 8-bit bytes in them are decoded
    first: the standard library would turn them into U+FFFD before reading the parameter."""
    raw = [(k, v) for k, v in part.raw_items() if k.lower() in ("content-disposition", "content-type")]
    if all(str(value).isascii() for _, value in raw):
        return part.get_filename()
    view = Message()
    for key, value in raw:
        view[key] = raw_text(str(value)[:MAX_RAW_HEADER_CHARS], hints)
    return view.get_filename()


def _from_content_id(content_id: str, content_type: str) -> str:
    """An inline part's name from its Content-ID (RFC 2392): the part before the @, with an
    extension for its type unless it has one."""
    cid = decode_text(content_id).strip().strip("<>").strip()
    local = cid.rpartition("@")[0] if "@" in cid else cid
    local = _safe(local)
    if not local:
        return ""
    stem, dot, _ = local.rpartition(".")
    if dot and stem and _TYPES.guess_type(local, strict=False)[0] is not None:
        return local
    return _safe(local + extension_for(content_type))


def _safe(name: str) -> str:
    """A file name safe to show and to write: no directories, no control or reserved characters."""
    name = unicodedata.normalize("NFC", name or "")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_FILENAME.sub("_", name).strip(" .")
    encoded = name.encode("utf-8")
    if len(encoded) > MAX_FILENAME_BYTES:
        stem, dot, ext = name.rpartition(".")
        ext = ext if dot and len(ext) <= 10 else ""
        keep = MAX_FILENAME_BYTES - len(ext) - 1
        stem = (stem if dot else name).encode("utf-8")[:keep].decode("utf-8", "ignore")
        name = f"{stem}.{ext}" if ext else stem
    return name


def content_of(part: Message) -> bytes:
    """The bytes of an attachment: decoded from its transfer encoding, or a whole attached mail."""
    inner = payload_of(part)
    if part.get_content_type() in MESSAGE_TYPES and isinstance(inner, list) and inner:
        return inner[0].as_bytes(policy=compat32) if isinstance(inner[0], Message) else b""
    if isinstance(inner, list):  # a delivery status's blocks, a multipart: its body as written
        return part.as_bytes(policy=compat32).partition(b"\n\n")[2]
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    payload = payload_of(part)
    return payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""


def attachments(
    parts: Sequence[Message], config: IntakeConfig, hints: Sequence[str] = ()
) -> tuple[tuple[ParsedAttachment, ...], int]:
    """The attachments to record (at most `max_attachment_rows`) and how many more were left out."""
    result: list[ParsedAttachment] = []
    total = 0
    for number, part in enumerate(parts[: config.max_attachment_rows], start=1):
        content_type = part.get_content_type()
        omitted: str | None = None
        try:
            content = content_of(part)
        except Exception as exc:  # a structure the generator cannot write back: keep the row
            content = b""
            omitted = f"could not decode the attachment: {exc.__class__.__name__}"
        size = len(content)
        if omitted is None:
            if number > config.max_attachments:
                omitted = f"more than {config.max_attachments} attachments"
            elif size > config.max_attachment_size:
                omitted = f"larger than {config.max_attachment_size} bytes"
            elif total + size > config.max_attachments_total:
                omitted = f"attachments together larger than {config.max_attachments_total} bytes"
        if omitted is None:
            total += size
        result.append(
            ParsedAttachment(
                filename=attachment_name(part, number, hints),
                content_type=content_type[:255],
                size=size,
                sha256=hashlib.sha256(content).hexdigest(),
                content=None if omitted else content,
                omitted=omitted,
            )
        )
    return tuple(result), len(parts) - len(result)
