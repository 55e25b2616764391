"""Header values to text: raw 8-bit bytes and RFC 2047 encoded words, as mail clients read them.

The standard library's decoder gives up on the encoded words real mail carries: a stray `=` of
padding or a cut-off word fails base64 and the whole header stays undecoded; a label naming a
subset of the charset used (`gb2312`, `shift_jis`), or a wrong one, fails or garbles; and its
expression for finding words can take quadratic time on a hostile header. This reader finds
words with bounded `str.find` steps (linear in the header), decodes base64 and Q leniently
(RFC 2047 section 4), joins adjacent words of one charset before decoding them, so a character
split across two words survives, and reads each run of bytes with `intake.charsets`.

Raw 8-bit bytes in a header (RFC 6532 UTF-8, or a legacy charset sent unencoded) come from the
standard library as surrogate escapes; they are decoded first, with the charsets the mail
declares elsewhere as hints. So is an unencoded ISO-2022-JP header, which is 7-bit.

Address headers must not be read this way before their structure is (RFC 2047 section 5: an
encoded word is never part of an address); `intake.addresses` calls `raw_text` first and
`decode_words` only on display names.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence

from intake.charsets import codec_for, decode_bytes, iso2022jp_decode, looks_iso2022jp

MAX_CHARSET_LABEL = 64  # RFC 2978 charset names are at most 40 characters; with *language more
MAX_ENCODED_TEXT = 4096  # RFC 2047 allows 75 characters per word; real mailers write longer ones
_B64 = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def raw_text(value: str, hints: Sequence[str] = ()) -> str:
    """A header value with its raw 8-bit bytes (surrogate escapes) and unencoded ISO-2022-JP
    decoded; encoded words are left as they are."""
    if not value.isascii():
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            return decode_bytes(value.encode("utf-8", "surrogateescape"), None, hints)
        return value
    if "\x1b" in value:
        data = value.encode("ascii")
        if looks_iso2022jp(data):
            return iso2022jp_decode(data)
    return value


def decode_words(text: str, hints: Sequence[str] = ()) -> str:
    """`text` with its RFC 2047 encoded words decoded; white space between adjacent words dropped
    (RFC 2047 section 6.2). Linear in the text."""
    if "=?" not in text:
        return text
    pieces: list[str | tuple[str, bytes]] = []  # literal text, or (charset label, decoded bytes)
    position = 0
    length = len(text)
    while position < length:
        start = text.find("=?", position)
        if start < 0:
            break
        word = _word_at(text, start)
        if word is None:
            pieces.append(text[position : start + 2])
            position = start + 2
            continue
        label, data, end = word
        if start > position:
            pieces.append(text[position:start])
        pieces.append((label, data))
        position = end
    if position < length:
        pieces.append(text[position:])
    return _join(pieces, hints)


def _word_at(text: str, start: int) -> tuple[str, bytes, int] | None:
    """The encoded word starting at `start` ("=?charset?B|Q?text?="): its label, its bytes, and
    where it ends; None when there is none. Each search is bounded, so scanning stays linear."""
    question = text.find("?", start + 2, start + 3 + MAX_CHARSET_LABEL)
    if question < 0 or question + 2 >= len(text) or text[question + 2] != "?":
        return None
    encoding = text[question + 1].upper()
    if encoding not in ("B", "Q"):
        return None
    label = text[start + 2 : question]
    body_start = question + 3
    close = text.find("?", body_start, body_start + MAX_ENCODED_TEXT + 1)
    if close >= 0 and text.startswith("?=", close):
        end = close + 2
        encoded = text[body_start:close]
    elif close < 0 and len(text) - body_start <= MAX_ENCODED_TEXT and not _has_space(text, body_start):
        end = len(text)  # the header was cut off before the word's "?="
        encoded = text[body_start:]
    else:
        return None
    if not label or " " in label:
        return None
    try:
        raw = encoded.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None
    data = _b_decode(raw) if encoding == "B" else binascii.a2b_qp(raw, header=True)
    return label, data, end


def _has_space(text: str, start: int) -> bool:
    return any(ch.isspace() for ch in text[start : start + MAX_ENCODED_TEXT])


def _b_decode(raw: bytes) -> bytes:
    """Base64, leniently: characters outside the alphabet skipped, a stray `=` of padding ends a
    chunk and the next one is decoded on its own, a chunk cut short loses only its last bits."""
    out = bytearray()
    for chunk in bytes(b for b in raw.replace(b"-", b"+").replace(b"_", b"/") if b in _B64 or b == 61).split(
        b"="
    ):
        usable = len(chunk) - len(chunk) % 4 if len(chunk) % 4 == 1 else len(chunk)
        if usable:
            try:
                out += binascii.a2b_base64(chunk[:usable] + b"=" * (-usable % 4))
            except binascii.Error:
                continue
    return bytes(out)


def _join(pieces: list[str | tuple[str, bytes]], hints: Sequence[str]) -> str:
    """Adjacent words of one charset decoded together; white space between words dropped."""
    out: list[str] = []
    label: str | None = None  # of the run of words being collected
    run = bytearray()
    for index, piece in enumerate(pieces):
        if isinstance(piece, str):
            next_is_word = index + 1 < len(pieces) and not isinstance(pieces[index + 1], str)
            if label is not None and next_is_word and not piece.strip():
                continue  # white space between two encoded words is not text
            if label is not None:
                out.append(decode_bytes(bytes(run), label, hints))
                label, run = None, bytearray()
            out.append(piece)
            continue
        word_label, data = piece
        if label is not None and codec_for(word_label) != codec_for(label):
            out.append(decode_bytes(bytes(run), label, hints))
            run = bytearray()
            label = word_label
        elif label is None:
            label = word_label
        run += data
    if label is not None:
        out.append(decode_bytes(bytes(run), label, hints))
    return "".join(out)
