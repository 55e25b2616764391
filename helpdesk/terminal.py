"""What the command line prints: text without control characters, JSON with them escaped.

Subjects, names, bodies, attachment names and server replies are written by strangers. Every
readable line a command prints goes through `echo`, which takes out escape sequences, C0 and
C1 controls and bidirectional overrides (notify/controls.py) so that none of them reaches the
administrator's terminal; a table cell or one field of a line goes through `cell` first, which
also turns line breaks into spaces, so mail text cannot start a line of its own or push a
table out of line. JSON (`--json`) keeps every value as stored: the characters a terminal
would act on are written as \\u escapes, which every JSON reader decodes back.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any, TextIO

from notify.controls import BIDI_CONTROLS, LINE_SEPARATOR, PARAGRAPH_SEPARATOR, lines, one_line

# json.dumps escapes C0 itself; with ensure_ascii=False it writes DEL, C1, the bidirectional
# controls and the Unicode separators as they are. They can only stand inside a JSON string.
_JSON_UNSAFE = re.compile("[\x7f-\x9f" + BIDI_CONTROLS + LINE_SEPARATOR + PARAGRAPH_SEPARATOR + "]")


def cell(value: object) -> str:
    """One field of a line (a table cell, a subject after a label): one line, nothing to act on."""
    return "" if value is None else one_line(str(value))


def echo(text: object = "", *, file: TextIO | None = None) -> None:
    """Print one or more lines for a person to read: line breaks and tabs stay, controls go."""
    print(lines(str(text)), file=sys.stdout if file is None else file)


def json_text(data: Any, *, indent: int | None = 2) -> str:
    """`data` as JSON whose text is safe to print; decoded, every value is as it was."""
    text = json.dumps(data, ensure_ascii=False, indent=indent, default=str)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class SafeFormatter(logging.Formatter):
    """Log lines (the terminal of `serve` and `ingest`, the log file) without control characters."""

    def format(self, record: logging.LogRecord) -> str:
        return lines(super().format(record))
