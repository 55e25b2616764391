"""A fake IMAP server on loopback that misbehaves on purpose: the protocol edge of a hostile mailbox.

It speaks just enough IMAP4rev1 (RFC 3501) and IDLE (RFC 2177) for the poller: CAPABILITY, LOGIN,
SELECT, UID SEARCH, UID FETCH, UID STORE, NOOP, IDLE/DONE, LOGOUT. What it does wrong is set in a
`Behaviour`:

* `announced_sizes`: RFC822.SIZE values that lie (or tell the truth about a huge mail);
* `literal_sizes`: the size of the BODY[] literal it announces for a UID, followed by filler bytes
  sent as fast as the client takes them (or `literal_rate` bytes a second), endlessly;
* `flood`: untagged lines sent in answer to a command before its tagged completion;
* `silent_in_idle`: after `+ idling` it never writes again (nor answers DONE), keeping the
  connection open, as a server that hangs or a middlebox that drops the flow would.

It runs its own event loop in a thread, and records what the client did (`log`), so tests can
tell when the poller connected, idled or came back.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tests.loopback import wait_until

CAPABILITIES = b"IMAP4rev1 IDLE UIDPLUS"
UIDVALIDITY = 7
FILLER = b"x" * 65536
_UID_RANGE = re.compile(rb"UID (\d+):\*")


@dataclass
class Behaviour:
    mails: Mapping[int, bytes] = field(default_factory=dict)
    announced_sizes: Mapping[int, int] = field(default_factory=dict)
    literal_sizes: Mapping[int, int] = field(default_factory=dict)
    literal_rate: float | None = None  # bytes a second of a huge literal; None: as fast as taken
    flood: Mapping[str, int] = field(default_factory=dict)  # command -> untagged lines
    flood_line: bytes = b"* 1 FETCH (FLAGS (\\Seen))"
    silent_in_idle: bool = False
    flood_once: bool = True  # only the first connection is flooded


@dataclass
class Record:
    at: float
    connection: int
    command: str


class HostileImapServer:
    """`with HostileImapServer(behaviour) as server:` listens on 127.0.0.1:`server.port`."""

    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.host = "127.0.0.1"
        self.port = 0
        self.log: list[Record] = []
        self.connections = 0
        self.bytes_sent = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="hostile-imap", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    # -- life cycle ------------------------------------------------------------------------------

    def __enter__(self) -> HostileImapServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        future.result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        # Each connection's task sees its transport closing and ends; none is left pending.
        tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
        if tasks:
            await asyncio.wait(tasks, timeout=2)

    # -- what the client did ---------------------------------------------------------------------

    def commands(self, name: str | None = None) -> list[Record]:
        return [r for r in list(self.log) if name is None or r.command == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 30.0) -> Record | None:
        """The `count`-th `name` command the client sent, once it has (None if not within `timeout`)."""
        if not wait_until(lambda: len(self.commands(name)) >= count, timeout):
            return None
        return self.commands(name)[count - 1]

    # -- one connection --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        self._writers.add(writer)
        self._note(number, "CONNECT")
        try:
            await self._send(writer, b"* OK [CAPABILITY " + CAPABILITIES + b"] hostile IMAP ready\r\n")
            while True:
                line = await reader.readline()
                if not line:
                    break
                tag, _, rest = line.rstrip(b"\r\n").partition(b" ")
                words = rest.split(b" ")
                command = words[0].upper().decode()
                if command == "UID" and len(words) > 1:
                    command = "UID " + words[1].upper().decode()
                self._note(number, command)
                if not await self._answer(number, reader, writer, tag, command, rest):
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self._note(number, "DISCONNECT")
            self._writers.discard(writer)
            writer.transport.abort()

    def _note(self, connection: int, command: str) -> None:
        self.log.append(Record(time.monotonic(), connection, command))

    async def _send(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(data)
        self.bytes_sent += len(data)
        await writer.drain()

    async def _flood(self, writer: asyncio.StreamWriter, number: int, command: str) -> None:
        lines = self.behaviour.flood.get(command, 0)
        if not lines or (self.behaviour.flood_once and number > 1):
            return
        line = self.behaviour.flood_line + b"\r\n"
        sent = 0
        while sent < lines:
            count = min(10_000, lines - sent)
            await self._send(writer, line * count)
            sent += count

    async def _answer(
        self,
        number: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        tag: bytes,
        command: str,
        rest: bytes,
    ) -> bool:
        """Answer one command; False to hang up."""
        b = self.behaviour
        await self._flood(writer, number, command)
        ok = tag + b" OK " + command.encode() + b" done\r\n"
        if command == "CAPABILITY":
            await self._send(writer, b"* CAPABILITY " + CAPABILITIES + b"\r\n" + ok)
        elif command == "LOGIN":
            await self._send(writer, tag + b" OK [CAPABILITY " + CAPABILITIES + b"] logged in\r\n")
        elif command == "SELECT":
            top = max(b.mails, default=0)
            await self._send(
                writer,
                b"* FLAGS (\\Seen \\Deleted)\r\n"
                + f"* {len(b.mails)} EXISTS\r\n* 0 RECENT\r\n".encode()
                + f"* OK [UIDVALIDITY {UIDVALIDITY}] UIDs valid\r\n".encode()
                + f"* OK [UIDNEXT {top + 1}] next\r\n".encode()
                + tag
                + b" OK [READ-WRITE] selected\r\n",
            )
        elif command == "UID SEARCH":
            match = _UID_RANGE.search(rest)
            above = int(match.group(1)) if match else 1
            uids = [uid for uid in sorted(b.mails) if uid >= above] or sorted(b.mails)[-1:]
            await self._send(writer, b"* SEARCH " + b" ".join(str(u).encode() for u in uids) + b"\r\n" + ok)
        elif command == "UID FETCH":
            await self._fetch(writer, tag, rest)
        elif command == "IDLE":
            await self._send(writer, b"+ idling\r\n")
            if b.silent_in_idle:
                while await reader.readline():  # DONE and whatever else: never answered
                    pass
                return False
            done = await reader.readline()
            self._note(number, done.strip().decode(errors="replace") or "EOF")
            if not done:
                return False
            await self._send(writer, tag + b" OK IDLE terminated\r\n")
        elif command == "LOGOUT":
            await self._send(writer, b"* BYE hostile IMAP says goodbye\r\n" + ok)
            return False
        elif command in ("NOOP", "UID STORE", "UID EXPUNGE", "ENABLE"):
            await self._send(writer, ok)
        else:
            await self._send(writer, tag + b" BAD unknown command\r\n")
        return True

    async def _fetch(self, writer: asyncio.StreamWriter, tag: bytes, rest: bytes) -> None:
        b = self.behaviour
        words = rest.split(b" ", 3)
        uids = [uid for uid in _uid_set(words[2]) if uid in b.mails]
        items = words[3].upper() if len(words) > 3 else b""
        stamp = datetime.now(UTC).strftime("%d-%b-%Y %H:%M:%S +0000").encode()
        for seq, uid in enumerate(uids, start=1):
            if b"RFC822.SIZE" in items:
                size = b.announced_sizes.get(uid, len(b.mails[uid]))
                await self._send(
                    writer,
                    f"* {seq} FETCH (UID {uid} RFC822.SIZE {size} INTERNALDATE ".encode()
                    + b'"'
                    + stamp
                    + b'")\r\n',
                )
            if b"BODY.PEEK[" in items or b"BODY[" in items:
                section = items[items.index(b"BODY") :].split(b" ", 1)[0].replace(b".PEEK", b"").rstrip(b")")
                huge = b.literal_sizes.get(uid) if section == b"BODY[]" else None
                if huge is not None:
                    await self._send(
                        writer, f"* {seq} FETCH (UID {uid} ".encode() + section + f" {{{huge}}}\r\n".encode()
                    )
                    await self._endless(writer, huge)
                    return
                data = b.mails[uid]
                if section.startswith(b"BODY[HEADER]<"):  # a partial FETCH (RFC 3501 6.4.5)
                    origin, _, length = section[len(b"BODY[HEADER]<") : -1].partition(b".")
                    data = (data.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n")[
                        int(origin) : int(origin) + int(length)
                    ]
                    section = b"BODY[HEADER]<" + origin + b">"
                await self._send(
                    writer,
                    f"* {seq} FETCH (UID {uid} ".encode()
                    + section
                    + f" {{{len(data)}}}\r\n".encode()
                    + data
                    + b")\r\n",
                )
        await self._send(writer, tag + b" OK FETCH done\r\n")

    async def _endless(self, writer: asyncio.StreamWriter, size: int) -> None:
        """Filler for a literal of `size` bytes, for as long as the client reads (or the size lasts)."""
        rate = self.behaviour.literal_rate
        left = size
        while left > 0 and not writer.is_closing():
            chunk = FILLER[: min(left, len(FILLER) if rate is None else max(1, int(rate / 10)))]
            await self._send(writer, chunk)
            left -= len(chunk)
            if rate is not None:
                await asyncio.sleep(0.1)


def _uid_set(text: bytes) -> list[int]:
    uids: list[int] = []
    for part in text.split(b","):
        first, _, last = part.partition(b":")
        if last == b"*":
            uids.append(int(first))  # enough for this server: a range to the end is one UID
        elif last:
            uids.extend(range(int(first), int(last) + 1))
        elif first.isdigit():
            uids.append(int(first))
    return uids


def rss_kib(pid: int) -> tuple[int, int]:
    """(current, peak) resident set size of a process in KiB, from /proc (VmRSS, VmHWM)."""
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values.get("VmRSS", 0), values.get("VmHWM", 0)
