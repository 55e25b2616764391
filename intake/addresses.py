"""Addresses and names from address headers, recovered the way a careful reader would.

mail-parser's address parser reads RFC 5322 strictly and reports what it cannot read instead of
guessing (it is what keeps `alice@example.org)<bob@example.org>` from being read as either).
Much real mail breaks the grammar while meaning one plain thing: an unbalanced quote
(`"Kowalski, Jan <jan@example.pl>`), a name without brackets (`Jan Kowalski jan@example.pl`),
a local part ending in a dot (Japanese mobile carriers issued `taro.@docomo.ne.jp` for years),
a trailing dot after the domain. When the strict reading yields no address, `recover` reads the
header the way a person does: an address in angle brackets is the address, otherwise the one
word with an @ in it, and the rest is the name.

RFC 2047 section 5: an encoded word is never part of an address, so the structure is read
before any encoded word is decoded, and only display names are decoded (quoted ones too, since
clients write them). Raw 8-bit bytes are decoded first: a GBK or Shift_JIS byte after a lead
byte may be a `\\` or an `@`, which would otherwise be read as structure.

`choose_sender` walks the sender's headers in order: every From (a mail may carry two, one of
them garbage), then Reply-To, then Sender. The envelope sender comes last, in the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mailparser.utils import get_addresses

from intake.encoded_words import decode_words, raw_text
from intake.mime_text import LINE_CONTROLS, clean_line
from models.mail import Address

MAX_ADDRESS = 254  # RFC 5321 section 4.5.3.1.3: the longest path is 256 octets with its brackets
MAX_ANGLE = 2 * MAX_ADDRESS  # characters between < and > worth reading (a route may precede the address)
MAX_ADDRESS_HEADER = 64_000  # of an address header read; the caps on participants keep far fewer
SENDER_HEADERS = ("from", "reply-to", "sender")
# Characters no unquoted address holds (RFC 5322 section 3.2.3 specials, and white space).
_NOT_IN_ADDRESS = frozenset('()<>[]:;,"\\ \t')
_NOT_IN_LITERAL = frozenset('()<>[]"\\ \t')
_WRAPPERS = "<>[]()\"'`,;:"


def mailboxes(value: str | None, hints: Sequence[str] = (), *, recover_broken: bool = True) -> list[Address]:
    """The mailboxes of one address header value (raw, as received), names decoded. Recovery from
    broken syntax is for the sender's headers: a recipient read wrongly would be mailed."""
    if not value:
        return []
    value = value[:MAX_ADDRESS_HEADER]
    text = " ".join(raw_text(value, hints).split())
    ascii_only = not _utf8(value)
    defects: list[dict[str, object]] = []
    try:
        pairs = get_addresses(text, defects=defects, decode_names=False)
    except Exception:  # the strict reader met something it does not handle: recover instead
        pairs = []
        defects.append({"recovered": False})
    strict = [(name, normal_address(addr, ascii_only=ascii_only)) for name, addr in pairs]
    if len(strict) == 1 and not strict[0][0]:
        strict = [(_comment(text), strict[0][1])]  # "<jan@example.pl> (Jan Kowalski)"
    found: dict[str, Address] = {}
    broken = not any(addr for _, addr in strict) or any(not d.get("recovered", False) for d in defects)
    if recover_broken and broken:
        # What a person reads comes first: "Kowalski, Jan <jan@...>" names Kowalski, Jan.
        for name, addr in recover(text):
            _add(found, name, normal_address(addr, ascii_only=ascii_only, dotted=True), hints)
    for name, addr in strict:
        _add(found, name, addr, hints)
    return list(found.values())


def _comment(text: str) -> str:
    """The text of the one comment in a mailbox, which names its owner (RFC 822 usage)."""
    start = text.find("(")
    end = text.find(")", start + 1)
    if start < 0 or end < 0 or text.find("(", start + 1, end) >= 0 or text.find("(", end) >= 0:
        return ""
    return text[start + 1 : end].strip()


def _add(found: dict[str, Address], name: str, address: str, hints: Sequence[str]) -> None:
    if address and address not in found:
        shown = display_name(name, hints)
        found[address] = Address("" if shown.lower() == address else shown, address)


def _utf8(value: str) -> bool:
    """Whether a raw header value is ASCII or UTF-8 (its 8-bit bytes come as surrogate escapes)."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return False
    return True


def normal_address(addr: str, *, ascii_only: bool = False, dotted: bool = False) -> str:
    """An address as stored (lower-cased, no trailing dot, no brackets), or "" if it is none.

    `ascii_only`: refuse non-ASCII addresses, for headers that were not UTF-8 (RFC 6532 allows
    UTF-8 addresses only; a legacy charset's bytes in an address make nothing deliverable).
    `dotted`: require a dot in the domain, for addresses recovered from broken syntax, where a
    word like "Jan@Home" is more likely a name than a mailbox."""
    addr = addr.strip()
    while len(addr) > 1 and addr[0] in "<[(" and addr[-1] in ">])":
        addr = addr[1:-1].strip()
    if addr[:7].lower() == "mailto:":
        addr = addr[7:]
    if addr.startswith('"') and addr.endswith('"') and "@" in addr:
        addr = addr[1:-1].strip()  # "jan@example.pl", an address written as a quoted name
    if not addr.startswith('"'):
        addr = addr.lstrip(_WRAPPERS)
    addr = addr.rstrip(_WRAPPERS + ".") if "@[" not in addr else addr.rstrip(_WRAPPERS.replace("]", "") + ".")
    addr = addr.lower()
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain or len(addr) > MAX_ADDRESS or LINE_CONTROLS.search(addr):
        return ""
    if ascii_only and not addr.isascii():
        return ""
    if domain.startswith("[") and domain.endswith("]"):  # RFC 5321 address literal, IPv6 ones too
        domain_ok = not any(ch in _NOT_IN_LITERAL for ch in domain[1:-1])
    else:
        domain_ok = not any(ch in _NOT_IN_ADDRESS for ch in domain) and ("." in domain or not dotted)
    if local.startswith('"') and local.endswith('"') and len(local) > 1:
        return addr if domain_ok else ""  # a quoted local part may hold anything but controls
    if any(ch in _NOT_IN_ADDRESS or ch == "@" for ch in local) or not domain_ok:
        return ""
    return addr


def display_name(name: str, hints: Sequence[str] = ()) -> str:
    """A display name as shown: encoded words decoded, quotes and escapes of RFC 5322 taken off."""
    text = " ".join(clean_line(decode_words(name, hints)).split())
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text.replace('\\"', '"').replace("\\\\", "\\")


def recover(text: str) -> list[tuple[str, str]]:
    """(name, address) pairs of a header the strict parser rejected, read as a person reads it."""
    items = _items(text)
    result: list[tuple[str, str]] = []
    pending = ""  # items without an address belong to the next item's name: "Kowalski, Jan <...>"
    for item in items:
        pairs = _item(item)
        if not pairs:
            pending = f"{pending}, {item.strip()}" if pending else item.strip()
            continue
        if pending:
            name, addr = pairs[0]
            pairs[0] = (_name(f"{pending}, {name}" if name else pending), addr)
            pending = ""
        result.extend(pairs)
    return result


def _items(text: str) -> list[str]:
    """`text` split at commas and semicolons outside quotes, comments and angle brackets; a quote
    or a parenthesis left open to the end is taken as a stray character, not as structure."""
    for quotes in (True, False):
        items: list[str] = []
        start = 0
        quoted = False
        depth = 0
        angle = False
        escaped = False
        for index, ch in enumerate(text):
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif quoted:
                quoted = ch != '"'
            elif ch == '"' and quotes:
                quoted = True
            elif ch == "(" and quotes:
                depth += 1
            elif ch == ")" and depth:
                depth -= 1
            elif ch == "<":
                angle = True
            elif ch == ">":
                angle = False
            elif ch in ",;" and not depth and not angle:
                items.append(text[start:index])
                start = index + 1
        if not (quoted or depth) or not quotes:
            items.append(text[start:])
            return [item for item in items if item.strip()]
    return [text]


def _item(item: str) -> list[tuple[str, str]]:
    """The address(es) of one item, with the name around them."""
    open_angle = item.find("<")
    close = -1
    while open_angle >= 0:
        if 0 <= close < open_angle or close == -1:
            close = item.find(">", open_angle)  # searched again only past the last one: linear
            close = len(item) if close < 0 else close
        if close - open_angle > MAX_ANGLE:  # no address is that long: skip without copying it
            open_angle = item.find("<", open_angle + 1)
            continue
        inside = item[open_angle + 1 : close]
        addr = normal_address(inside.rpartition(":")[2], dotted=True)  # <@route:addr>, RFC 5322 obs-route
        if addr:
            after = item[close + 1 :]  # a comment after the address names too; a stray dot does not
            return [(_name(item[:open_angle] + " " + (_comment(after) if "(" in after else "")), addr)]
        open_angle = item.find("<", open_angle + 1)
    words = item.replace("(", " ( ").replace(")", " ) ").replace('"', ' " ').split()
    pairs: list[tuple[str, str]] = []
    name_words: list[str] = []
    for word in words:
        addr = normal_address(word, dotted=True) if "@" in word else ""
        if addr:
            pairs.append(("", addr))
        else:
            name_words.append(word)
    if pairs:
        pairs[0] = (_name(" ".join(name_words)), pairs[0][1])
    return pairs


def _name(text: str) -> str:
    """The name part of a recovered mailbox: stray quotes, brackets of a comment and white space off."""
    words = text.replace('"', " ").replace("(", " ").replace(")", " ").split()
    return " ".join(words).strip(" ,;:")


def choose_sender(
    headers: Iterable[tuple[str, str]], hints: Sequence[str] = ()
) -> tuple[Address | None, str]:
    """The sender and the header it came from: the first usable From, then Reply-To, then Sender.

    `headers` are (lower-case name, raw value) pairs in the order received. When the address
    comes from another header than From, a From that holds only a name still names the sender.
    """
    values: dict[str, list[str]] = {name: [] for name in SENDER_HEADERS}
    for name, value in headers:
        if name in values and len(values[name]) < 10:
            values[name].append(value)
    for header in SENDER_HEADERS:
        for value in values[header]:
            found = mailboxes(value, hints)
            if found:
                sender = found[0]
                if header != "from" and not sender.name:
                    sender = Address(_bare_name(values["from"], hints), sender.addr)
                return sender, header
    return None, ""


def _bare_name(values: list[str], hints: Sequence[str]) -> str:
    """The name in a From that holds no address: `Contact form`, `Lab Printer <>`."""
    for value in values:
        text = raw_text(value, hints)
        if "<" in text and "@" not in text.partition("<")[2]:
            text = text.partition("<")[0]
        name = display_name(text.strip(), hints)
        if name and "@" not in name and "<" not in name:
            return name
    return ""
