"""A broken header block repaired, so that a mail's headers do not end up in its body.

The standard library ends the header block at the first line that is not a header (RFC 5322
section 2.2): a header folded without the leading white space that marks a continuation
(web forms and scripts that wrap long subjects), a first line that is no header (a byte-order
mark, a blank line written by a broken script, Outlook's "Microsoft Mail Internet Headers
Version 2.0" line, a gateway's banner), or a name followed by a space before its colon (the
obsolete syntax of RFC 5322 section 4.5) all put every later header, From and Content-Type
included, into the body. A person reading such a mail sees the headers; so does this:

* leading lines that are not headers (at most a few) are dropped when a header block of known
  fields follows them;
* a line that is not a header, inside the block, is joined to the header above it when a known
  header follows it; otherwise the block really ends there, as the standard library says;
* `Name :` becomes `Name:` for known header names.

Only the header block is rewritten, in one pass over its lines. `parse` uses the repaired copy
only when the standard library's own reading shows the problem, and only when it yields more
header fields than that reading: a mail is never worse off than the lenient parse of it.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEADER_BLOCK = 256 * 1024  # bytes of a header block examined; longer ones are left alone
MAX_LEADING_LINES = 5
BOM = b"\xef\xbb\xbf"
KNOWN_FIELDS = frozenset(
    """from to cc bcc subject date message-id reply-to sender in-reply-to references mime-version
    content-type content-transfer-encoding content-disposition content-id content-description
    content-language received return-path delivered-to dkim-signature domainkey-signature
    authentication-results arc-seal arc-message-signature arc-authentication-results received-spf
    list-id list-unsubscribe list-unsubscribe-post list-post list-help list-subscribe list-archive
    list-owner precedence auto-submitted importance priority thread-topic thread-index user-agent
    organization disposition-notification-to return-receipt-to errors-to comments keywords
    resent-from resent-to resent-cc resent-date resent-message-id resent-sender accept-language
    envelope-to feedback-id""".split()
)


@dataclass(frozen=True)
class Repaired:
    data: bytes
    notes: tuple[str, ...]  # what was repaired, for the parsed mail's defects


def _field_name(line: bytes) -> bytes | None:
    """The name of a header field line (`name:` with no space in the name), or None."""
    colon = line.find(b":")
    if colon <= 0:
        return None
    name = line[:colon].rstrip(b" \t")
    if not name or any(byte <= 0x20 or byte >= 0x7F for byte in name):
        return None
    return name


def _known(name: bytes | None) -> bool:
    if name is None:
        return False
    lower = name.lower()
    return lower.startswith(b"x-") or lower.decode("ascii") in KNOWN_FIELDS


def _lines(head: bytes) -> list[bytes]:
    """The header block's lines with their line endings, up to and excluding the blank line."""
    lines: list[bytes] = []
    start = 0
    while start < len(head):
        end = head.find(b"\n", start)
        end = len(head) if end < 0 else end + 1
        line = head[start:end]
        if line in (b"\n", b"\r\n", b"\r"):
            break
        lines.append(line)
        start = end
    return lines


def repair_headers(data: bytes) -> Repaired | None:
    """A copy of `data` with its header block repaired, or None when nothing could be repaired."""
    notes: list[str] = []
    if data.startswith(BOM):
        data = data[len(BOM) :]
        notes.append("byte-order mark before the headers removed")
    lines = _lines(data[:MAX_HEADER_BLOCK])
    skipped = 0
    while skipped < min(MAX_LEADING_LINES, len(lines)) and _field_name(lines[skipped]) is None:
        skipped += 1
    if skipped and not data.startswith((b"From ", b"\n", b"\r\n")):
        follows = lines[skipped : skipped + 2]
        if len(follows) == 2 and _known(_field_name(follows[0])) and _field_name(follows[1]) is not None:
            notes.append(f"{skipped} line(s) before the headers dropped")
        else:
            skipped = 0
    if data.startswith((b"\n", b"\r\n")):  # a blank first line: the headers follow it
        blank = 2 if data.startswith(b"\r\n") else 1
        rest = _lines(data[blank:MAX_HEADER_BLOCK])
        if len(rest) >= 2 and _known(_field_name(rest[0])):
            data = data[blank:]
            lines = rest
            skipped = 0
            notes.append("blank line before the headers removed")
    fixed = _rejoin(lines[skipped:], notes)
    if not notes:
        return None
    consumed = sum(len(line) for line in lines)
    return Repaired(b"".join(fixed) + data[consumed:], tuple(notes))


def _rejoin(lines: list[bytes], notes: list[str]) -> list[bytes]:
    """Lines without a header name inside the block joined to the header above them, when a known
    header follows; `Name :` made `Name:`. Stops where the block really ends."""
    fixed: list[bytes] = []
    index = 0
    joined = 0
    while index < len(lines):
        line = lines[index]
        if line[:1] in (b" ", b"\t"):
            fixed.append(line)
            index += 1
            continue
        name = _field_name(line)
        if name is not None:
            colon = line.find(b":")
            if colon > len(name) and _known(name):
                line = name + line[colon:]
                notes.append(f"space before the colon of {name.decode('ascii')} removed")
            fixed.append(line)
            index += 1
            continue
        following = index
        while following < len(lines) and _field_name(lines[following]) is None:
            following += 1
        if not fixed or following >= len(lines) or not _known(_field_name(lines[following])):
            fixed.extend(lines[index:])  # the body starts here, without its blank line
            break
        fixed.extend(b" " + lines[k] for k in range(index, following))
        joined += following - index
        index = following
    if joined:
        notes.append(f"{joined} header line(s) without indentation joined to the header above")
    return fixed
