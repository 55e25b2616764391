"""Bounds on what an IMAP server may send: literal sizes, bytes and lines per command, a deadline.

imaplib reads a literal by announcing nothing and trusting the server: `* 1 FETCH (BODY[] {N}`
makes it ask its buffered reader for N bytes at once (3 GB, if the server says so), and it keeps
every untagged response of a command in a list for as long as the server keeps sending them. A
hostile or broken server can thus grow the daemon without bound. The hook here is the narrowest
one imaplib offers: its own overridable I/O methods (`readline`, `read`, `send`, `_create_socket`)
and `_new_tag`, which marks the start of each command. imapclient creates the imaplib object in
`IMAPClient._create_IMAP4`; `BoundedIMAPClient` overrides only that to make it one of ours.

Each command's answer gets a `ResponseBudget`: the most bytes in all, the most lines (every
untagged response is at least one), the largest single literal, and a deadline for the whole
answer. A literal over its budget is refused when it is announced, before a byte of it is read.
The fetcher gives the FETCH of mail bodies a budget from the sizes the server announced
(RFC822.SIZE) and `max_message_size`; every other command gets the mailbox's default. Going
over any bound raises `ResponseLimitExceeded` (an `IMAP4.abort`: the connection is unusable),
and the violation stays recorded on the connection so the poller can say what happened.
"""

from __future__ import annotations

import imaplib
import re
import socket
import time
from dataclasses import dataclass
from typing import Any

from imapclient import IMAPClient
from imapclient.imap4 import IMAP4WithTimeout
from imapclient.tls import IMAP4_TLS

# TCP keepalive (RFC 1122 section 4.2.3.6): a peer that vanished without a FIN or RST (a crashed
# host, a NAT entry dropped) is found in KEEPALIVE_IDLE + KEEPALIVE_INTERVAL * KEEPALIVE_COUNT
# seconds even while the connection idles; a server that is alive but silent is found by the
# poller's NOOP instead.
KEEPALIVE_IDLE = 60
KEEPALIVE_INTERVAL = 15
KEEPALIVE_COUNT = 4
# Untagged responses nobody reads (RECENT, FLAGS, ...) stay in imaplib's table across commands;
# at the start of each command at most this many of each kind are kept.
HELD_PER_KIND = 1000
_UID = re.compile(rb"\bUID (\d+)", re.IGNORECASE)
_DONE = b"DONE\r\n"
# A literal is read this much at a time, so its deadline is looked at while it arrives.
READ_CHUNK = 1024 * 1024


class ResponseLimitExceeded(imaplib.IMAP4.abort):
    """The server sent more than the bounds allow; the connection must be dropped."""


@dataclass(frozen=True)
class ResponseBudget:
    """How much one command's answer may hold."""

    max_bytes: int  # lines and literals together
    max_lines: int  # untagged responses, literal trailers and the tagged completion
    max_literal: int  # one literal (its size as announced)
    timeout: float  # seconds for the whole answer (for IDLE: from DONE on, RFC 2177)


class ResponseBounds:
    """The budget of the command being answered on one connection, and what it has used."""

    def __init__(self, default: ResponseBudget, read_timeout: float) -> None:
        self.default = default
        self.read_timeout = read_timeout  # the socket's own timeout, per read
        self.budget = default
        self._next: ResponseBudget | None = None
        self.command = "greeting"
        self.used_bytes = 0
        self.used_lines = 0
        self.deadline: float | None = time.monotonic() + default.timeout
        self.last_line = b""
        self.violation: str | None = None

    def expect(self, budget: ResponseBudget) -> None:
        """The answer to the next command may be this big (then the default applies again)."""
        self._next = budget

    def begin(self) -> None:
        """A new command: a fresh budget."""
        self.budget = self._next or self.default
        self._next = None
        self.command = "command"
        self.used_bytes = self.used_lines = 0
        self.deadline = time.monotonic() + self.budget.timeout

    def sent(self, data: bytes, tag: bytes | None) -> None:
        """Note the name of the command being sent, and when IDLE starts and ends."""
        if tag is not None and data.startswith(tag + b" "):
            words = data[len(tag) + 1 :].rstrip(b"\r\n").split(b" ", 2)
            name = words[0].upper()
            if name == b"UID" and len(words) > 1:
                name += b" " + words[1].upper()
            self.command = name.decode("ascii", "replace")
            if self.command == "IDLE":
                self.deadline = None  # waiting for news has no deadline; its end (DONE) has
        elif data == _DONE:
            self.deadline = time.monotonic() + self.budget.timeout

    def fail(self, problem: str) -> ResponseLimitExceeded:
        self.violation = self.violation or f"answer to {self.command}: {problem}"
        return ResponseLimitExceeded(self.violation)

    def line_room(self) -> int:
        """The longest line that may still come."""
        if self.violation is not None:
            raise ResponseLimitExceeded(self.violation)
        if self.used_lines >= self.budget.max_lines:
            raise self.fail(f"more than {self.budget.max_lines} responses (max_response_lines)")
        room = self.budget.max_bytes - self.used_bytes
        if room <= 0:
            raise self.fail(f"more than {self.budget.max_bytes} bytes (max_response_bytes)")
        return room

    def got_line(self, line: bytes, room: int) -> None:
        self.used_lines += 1
        self.used_bytes += len(line)
        self.last_line = line[:200]
        if len(line) > room:
            raise self.fail(f"more than {self.budget.max_bytes} bytes (max_response_bytes)")

    def literal(self, size: int) -> None:
        """Refuse a literal before reading it when its announced size is over the budget."""
        if self.violation is not None:
            raise ResponseLimitExceeded(self.violation)
        match = _UID.search(self.last_line)
        which = f" for uid {int(match.group(1))}" if match else ""
        if size > self.budget.max_literal:
            raise self.fail(
                f"a literal of {size} bytes{which} is over the limit of {self.budget.max_literal} bytes"
            )
        if self.used_bytes + size > self.budget.max_bytes:
            raise self.fail(
                f"a literal of {size} bytes{which} takes the answer over {self.budget.max_bytes} bytes"
            )
        self.used_bytes += size

    def time_left(self) -> float | None:
        """Seconds until the answer must be complete (None: no deadline); raises once it passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.fail(f"not complete after {self.budget.timeout:g} s (command_timeout)")
        return left


def enable_keepalive(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (
        ("TCP_KEEPIDLE", KEEPALIVE_IDLE),
        ("TCP_KEEPINTVL", KEEPALIVE_INTERVAL),
        ("TCP_KEEPCNT", KEEPALIVE_COUNT),
    ):
        option = getattr(socket, name, None)
        if option is not None:  # Linux names; other systems keep their defaults
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class _Bounded:
    """imaplib's I/O with the bounds applied (mixed into imapclient's IMAP4 classes)."""

    bounds: ResponseBounds
    file: Any
    sock: socket.socket
    untagged_responses: dict[str, list[Any]]
    _tag: bytes | None = None
    _lowered = False  # the socket timeout was cut short for a deadline

    def _create_socket(self, timeout: float | None) -> socket.socket:
        sock: socket.socket = super()._create_socket(timeout)  # type: ignore[misc]
        enable_keepalive(sock)
        return sock

    def _new_tag(self) -> bytes:
        tag: bytes = super()._new_tag()  # type: ignore[misc]
        self._tag = tag
        self.bounds.begin()
        if self._lowered:
            self.sock.settimeout(self.bounds.read_timeout)
            self._lowered = False
        held = self.untagged_responses
        for kind in list(held):
            if len(held[kind]) > HELD_PER_KIND:
                del held[kind][:-HELD_PER_KIND]
        return tag

    def send(self, data: bytes) -> None:
        self.bounds.sent(data, self._tag)
        super().send(data)  # type: ignore[misc]

    def _before_read(self) -> None:
        """Past the deadline, fail; close to it, wait no longer than it for the next bytes."""
        left = self.bounds.time_left()
        # A timeout of 0 is imapclient's idle_check polling a non-blocking socket: leave it so.
        if left is not None and left < self.bounds.read_timeout and self.sock.gettimeout() != 0.0:
            self.sock.settimeout(left)
            self._lowered = True

    def readline(self) -> bytes:
        room = self.bounds.line_room()
        self._before_read()
        line: bytes = self.file.readline(room + 1)
        self.bounds.got_line(line, room)
        return line

    def read(self, size: int) -> bytes:
        """A literal, refused before it is read when too big, read in chunks to keep the deadline."""
        self.bounds.literal(size)
        parts: list[bytes] = []
        left = size
        while left > 0:
            self._before_read()
            part: bytes = self.file.read1(min(left, READ_CHUNK))
            if not part:
                break  # EOF: imaplib finds out at the next line
            parts.append(part)
            left -= len(part)
        return parts[0] if len(parts) == 1 else b"".join(parts)


class BoundedIMAP4(_Bounded, IMAP4WithTimeout):  # type: ignore[misc]  # imapclient is untyped
    def __init__(self, host: str, port: int, timeout: float | None, bounds: ResponseBounds) -> None:
        self.bounds = bounds
        super().__init__(host, port, timeout)


class BoundedIMAP4_TLS(_Bounded, IMAP4_TLS):  # type: ignore[misc]
    def __init__(
        self, host: str, port: int, ssl_context: Any, timeout: float | None, bounds: ResponseBounds
    ) -> None:
        self.bounds = bounds
        super().__init__(host, port, ssl_context, timeout)


class BoundedIMAPClient(IMAPClient):  # type: ignore[misc]
    """imapclient, with every answer of the server bounded by `bounds`."""

    def __init__(self, host: str, port: int, *, bounds: ResponseBounds, **kwargs: Any) -> None:
        self.bounds = bounds
        super().__init__(host, port, **kwargs)

    def _create_IMAP4(self) -> imaplib.IMAP4:
        connect_timeout = getattr(self._timeout, "connect", None)
        if self.ssl:
            return BoundedIMAP4_TLS(self.host, self.port, self.ssl_context, connect_timeout, self.bounds)
        return BoundedIMAP4(self.host, self.port, connect_timeout, self.bounds)


def bounds_of(client: object) -> ResponseBounds | None:
    bounds = getattr(client, "bounds", None)
    return bounds if isinstance(bounds, ResponseBounds) else None
