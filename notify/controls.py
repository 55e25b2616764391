"""Control characters in mail-derived text: taken out before the text reaches a header or a terminal.

Whoever writes to the desk chooses the subject, the display name, the body and the attachment
names. Passed on as they are, a C0 or C1 control or an escape sequence (ECMA-48) retitles,
clears or reprograms the terminal of an administrator who lists tickets; a bidirectional
override (Unicode UAX #9) shows a reader other text than is there; and a NUL, CR or LF has no
place in a header (RFC 5322 section 2.2: printable characters, with folding white space only
between them). Both functions here remove escape sequences whole, so no half of one is left
to print, and every other control character by itself.
"""

from __future__ import annotations

import re

ESC = "\x1b"
BEL = "\x07"
# UAX #9 explicit directional formatting characters: ALM, LRM, RLM, LRE, RLE, PDF, LRO, RLO,
# LRI, RLI, FSI, PDI.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
LINE_SEPARATOR = "\u2028"
PARAGRAPH_SEPARATOR = "\u2029"

# ECMA-48 section 5.4: a control sequence is CSI (ESC [ or the C1 byte 9B), parameter bytes
# 30-3F, intermediate bytes 20-2F and one final byte 40-7E. Section 5.6: a control string
# (OSC, DCS, SOS, PM, APC, in their ESC or C1 form) runs to ST (ESC \ or 9C); terminals also end
# OSC at BEL, and here a line break ends one too, so the text after an unterminated one stays.
# Any other ESC takes intermediate bytes and one final byte (section 5.3).
# The character classes next to each other are disjoint, so matching is linear in the text.
_ESCAPE_SEQUENCE = re.compile(
    "(?:\x1b\\[|\x9b)[\x30-\x3f]*[\x20-\x2f]*[\x40-\x7e]?"
    "|(?:\x1b[\\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\\\|\x9c)?"
    "|\x1b[\x20-\x2f]*[\x30-\x7e]?"
)
# What separates words or lines in the text and so becomes a space (or a line break) rather
# than nothing: TAB, LF, VT, FF, CR, NEL and the Unicode line and paragraph separators.
_BREAKS = "\t\n\x0b\x0c\r\x85" + LINE_SEPARATOR + PARAGRAPH_SEPARATOR
_BREAK = re.compile("\r\n|[" + _BREAKS + "]")
_LINE_BREAK = re.compile("\r\n|[" + _BREAKS.replace("\t", "").replace("\n", "") + "]")
# C0, DEL, C1 and the directional formatting characters; the second keeps LF and TAB.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f" + BIDI_CONTROLS + LINE_SEPARATOR + PARAGRAPH_SEPARATOR + "]")
_CONTROL_BUT_LF_TAB = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f" + BIDI_CONTROLS + LINE_SEPARATOR + PARAGRAPH_SEPARATOR + "]"
)


def one_line(text: str) -> str:
    """`text` for a single line (a header value, a table cell): breaks and tabs become spaces."""
    if text.isprintable():  # no control, format or separator character: the common case
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    return _CONTROL.sub("", _BREAK.sub(" ", text))


def lines(text: str) -> str:
    """`text` for a terminal, keeping its line breaks (as LF) and tabs."""
    if text.isprintable():
        return text
    text = _ESCAPE_SEQUENCE.sub("", text)
    text = _LINE_BREAK.sub("\n", text)
    return _CONTROL_BUT_LF_TAB.sub("", text)
