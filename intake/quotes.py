"""The new part of a reply: quoted history and signature cut off.

Mail clients mark the history they quote in a few recognisable ways, which we look for from
the top and cut at the first one found:

* a block of lines starting with ">" (RFC 3676 section 4.5), with the attribution line(s)
  that introduce it ("On Mon, ... wrote:", "W dniu ... napisał:", "Am ... schrieb ...:");
* a separator such as "-----Original Message-----" / "----- Ursprüngliche Nachricht -----" /
  "-----Wiadomość oryginalna-----", or Outlook's underscore rule;
* a header block of the quoted mail (From:/Sent:/To:/Subject:, Von:/Gesendet:/An:/Betreff:,
  Od:/Wysłano:/Do:/Temat:) as Outlook and Exchange write it, without any ">".

The signature starts at the RFC 3676 separator "-- " or a mobile client's "Sent from my ..." line.

Every expression here runs on text a stranger wrote, so each is linear in the line it reads (no
two unbounded quantifiers that can share characters), lines longer than any real attribution,
separator or header line are not tried at all, and only the start of a very long mail is read.
"""

from __future__ import annotations

import re

# The new part of a reply is at its top; past this many characters the rest is history or an
# attachment pasted inline, and reading it costs time without changing what a requester wrote.
MAX_SCAN_CHARS = 200_000
# No attribution, separator or quoted header line is longer (real ones are under 200 characters).
MAX_MARKER_LINE = 1000

_SEPARATORS = re.compile(
    r"""^\s*(
        -{2,}\s*(original\s+message|ursprüngliche\s+nachricht|wiadomość\s+oryginalna|
                 message\s+d'origine|mensaje\s+original|oorspronkelijk\s+bericht)\s*-{2,}
      | _{20,}
      | -{2,}\s*reply\s+above\s+this\s+line\s*-{2,}
    )\s*$""",
    re.IGNORECASE | re.VERBOSE,
)

# "On <date>, <someone> wrote:" in the languages we meet most; it may wrap onto a second line.
_ATTRIBUTION = re.compile(
    r"""(
        ^on\s.+\swrote:?$
      | ^.+\swrote:$
      | ^w\sdniu\s.+\s(napisał|napisała|napisał\(a\)|pisze):?$
      | ^.+\s(napisał|napisała|napisał\(a\)):$
      | ^am\s.+\s(schrieb|geschrieben)\s?.*:?$
      | ^(?=.*:$).+\sschrieb    # "... schrieb ...:", the colon checked once, not after every "schrieb"
      | ^le\s.+\sa\sécrit\s?:$
      | ^el\s.+\sescribió:$
      | ^.+\s(написал|написала|пише):$
      | ^\d{1,4}[./-]\d{1,2}[./-]\d{1,4}.{0,80}:$
    )""",
    re.IGNORECASE | re.VERBOSE,
)

_HEADER_NAMES = {
    "from": ("from", "von", "od", "de", "van", "от"),
    "sent": ("sent", "date", "gesendet", "datum", "wysłano", "data", "envoyé", "enviado", "verzonden"),
    "to": ("to", "an", "do", "à", "para", "aan", "кому"),
    "subject": ("subject", "betreff", "temat", "objet", "asunto", "onderwerp", "тема"),
}
_HEADER_LINE = re.compile(r"^\s*\*?([^\W\d_]+)\s*:\*?\s*\S", re.UNICODE)

_SIGNATURE = re.compile(
    r"""^(
        --\s?
      | sent\sfrom\smy\s.+
      | sent\sfrom\s(outlook|mail)\s.*
      | get\soutlook\sfor\s.+
      | wysłane\sz\s.+
      | von\smeinem\s.+\sgesendet
      | gesendet\svon\s.+
      | envoyé\sde\smon\s.+
      | enviado\sdesde\smi\s.+
    )$""",
    re.IGNORECASE | re.VERBOSE,
)


def _header_kind(line: str) -> str | None:
    if len(line) > MAX_MARKER_LINE:
        return None
    match = _HEADER_LINE.match(line)
    if not match:
        return None
    name = match.group(1).lower()
    for kind, names in _HEADER_NAMES.items():
        if name in names:
            return kind
    return None


def _is_quoted_header_block(lines: list[str], start: int) -> bool:
    """A From: line followed within a few lines by at least two of Sent/To/Subject."""
    if _header_kind(lines[start]) != "from":
        return False
    seen: set[str] = set()
    for line in lines[start + 1 : start + 7]:
        kind = _header_kind(line)
        if kind:
            seen.add(kind)
    return len(seen & {"sent", "to", "subject"}) >= 2


_ATTRIBUTION_OPENING = re.compile(
    r"^(on\s|w\sdniu\s|am\s|le\s|el\s|\d{1,4}[./-]\d{1,2}[./-]\d{1,4})", re.IGNORECASE
)


def _attribution_start(lines: list[str], quote_at: int) -> int:
    """Where the attribution introducing a quote block at `quote_at` starts (blank lines skipped)."""
    i = quote_at - 1
    while i >= 0 and not lines[i].strip():
        i -= 1
    if i < 0:
        return quote_at
    last = lines[i].strip()
    if len(last) > MAX_MARKER_LINE:
        return quote_at
    if _ATTRIBUTION.match(last) and _ATTRIBUTION_OPENING.match(last):
        return i
    # Clients wrap long attributions: "02.04.2012 14:20 user <" / "bob@example.com> wrote:".
    if (
        i >= 1
        and 0 < len(lines[i - 1].strip()) <= MAX_MARKER_LINE
        and _ATTRIBUTION.match(lines[i - 1].strip() + " " + last)
    ):
        return i - 1
    if _ATTRIBUTION.match(last):
        return i
    return quote_at


def strip_quoted(text: str) -> str:
    """The author's own lines: quoted blocks, their attributions and forwarded history removed."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    # Outlook-style history has no ">" marks: everything from its separator or header block down is old.
    for i, line in enumerate(lines):
        if len(line) > MAX_MARKER_LINE:
            continue
        if _SEPARATORS.match(line.strip()) or _is_quoted_header_block(lines, i):
            lines = lines[:i]
            break
    keep = [True] * len(lines)
    i = 0
    while i < len(lines):
        if lines[i].lstrip().startswith(">"):
            begin = _attribution_start(lines, i)
            while i < len(lines) and (lines[i].lstrip().startswith(">") or not lines[i].strip()):
                i += 1
            for j in range(begin, i):
                keep[j] = False
            continue
        i += 1
    kept = [line for line, k in zip(lines, keep, strict=True) if k]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(kept)).strip("\n").rstrip()


def strip_signature(text: str) -> str:
    """The text above a signature separator in the last part of the mail."""
    lines = text.split("\n")
    # Only look at the tail: a "-- " high up is more likely a divider in the content.
    start = max(0, len(lines) - 15)
    for i in range(start, len(lines)):
        if len(lines[i]) > MAX_MARKER_LINE:
            continue
        if _SIGNATURE.match(lines[i].rstrip("\n").rstrip() if lines[i].strip() != "--" else "--"):
            if lines[i].startswith("--") and lines[i].strip() not in ("--", "-- "):
                continue
            return "\n".join(lines[:i]).rstrip()
    return text.rstrip()


def new_content(text: str) -> str:
    """What the author wrote in this mail: no quoted history, no signature (read up to `MAX_SCAN_CHARS`)."""
    return strip_signature(strip_quoted(text[:MAX_SCAN_CHARS])).strip()
