"""A staff reply split into its commands (each checked) and the text that goes to the requester.

Commands are lines of their own at the top of the reply (blank lines between them are fine); the
first line that is not a command starts the text. They are all checked before any is applied:
one unknown or malformed line and nothing changes (`ParsedReply.errors` says which and why).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from tickets.commands import BY_NAME, COMMAND_HELP, Checks
from tickets.errors import CommandError

_COMMAND = re.compile(r"^#([A-Za-z_]+)(?:[ \t]+(.*))?$")


@dataclass(frozen=True)
class CommandLine:
    name: str
    arg: str
    line_number: int
    line: str


@dataclass(frozen=True)
class ParsedReply:
    commands: tuple[CommandLine, ...]
    errors: tuple[CommandError, ...]
    public_text: str  # what goes to the requester


def parse_reply(text: str, checks: Checks) -> ParsedReply:
    """Split a staff reply into its commands (checked against `checks`) and the text for the requester."""
    lines = text.replace("\r\n", "\n").split("\n")
    commands: list[CommandLine] = []
    errors: list[CommandError] = []
    body_from = len(lines)
    for index, raw_line in enumerate(lines):
        line = raw_line.strip()
        if not line:
            continue
        match = _COMMAND.match(line)
        if match is None:
            body_from = index
            break
        name, arg = match.group(1).lower(), (match.group(2) or "").strip()
        why = check_line(name, arg, checks)
        if why:
            errors.append(CommandError(index + 1, line, why))
        else:
            commands.append(CommandLine(name, arg, index + 1, line))
    public = "\n".join(lines[body_from:]).strip()
    return ParsedReply(tuple(commands), tuple(errors), public)


def check_line(name: str, arg: str, checks: Checks) -> str:
    """Why `#name arg` will not do; empty when it will."""
    command = BY_NAME.get(name)
    if command is None:
        return f"unknown command #{name}; the commands are: {', '.join(h.split()[0] for h in COMMAND_HELP)}"
    return command.check(arg, checks)
