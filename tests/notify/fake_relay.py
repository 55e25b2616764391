"""A fake SMTP relay on loopback that misbehaves on purpose: the protocol edge of outgoing mail.

It speaks enough SMTP (RFC 5321) for smtplib: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT. What
it does wrong is set in a `Misbehaviour`:

* `drip_for`: for a RCPT TO of this address it answers with `250-` lines, one every
  `drip_every` seconds, and never ends the reply (RFC 5321 4.2.1 multiline replies);
* `drop`: "mid-data" cuts the connection halfway through the first DATA it gets; "after-data"
  takes the first mail (records it as delivered) and cuts the connection before answering;
* `rcpt_replies`: per recipient, answers (e.g. "550 5.1.1 no such user") given in turn to its
  RCPT; "250 ..." once they run out. `data_replies` likewise for the end of DATA, for any mail.

Every mail it takes is in `received`, with the time it was taken.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from tests.loopback import wait_until


@dataclass
class Misbehaviour:
    drip_for: str | None = None
    drip_every: float = 0.2
    drop: str | None = None  # "mid-data" or "after-data", once
    rcpt_replies: dict[str, list[str]] = field(default_factory=dict)
    data_replies: list[str] = field(default_factory=list)


@dataclass
class Taken:
    at: float
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message_id(self) -> str:
        return str(BytesHeaderParser(policy=compat32).parsebytes(self.data).get("Message-ID", ""))


class FakeRelay:
    """`with FakeRelay(misbehaviour) as relay:` listens on 127.0.0.1:`relay.port`."""

    def __init__(self, misbehaviour: Misbehaviour | None = None) -> None:
        self.misbehaviour = misbehaviour or Misbehaviour()
        self.host = "127.0.0.1"
        self.port = 0
        self.received: list[Taken] = []
        self.connections = 0
        self.drips = 0
        self._dropped = False
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fake-relay", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def __enter__(self) -> FakeRelay:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}?tls=none"

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

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Taken]:
        wait_until(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        m = self.misbehaviour
        mail_from = ""
        rcpts: list[str] = []
        try:
            writer.write(b"220 relay.test fake ESMTP\r\n")
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    writer.write(b"250-relay.test\r\n250-8BITMIME\r\n250 SIZE 52428800\r\n")
                elif verb == b"MAIL":
                    mail_from, rcpts = _address(line), []
                    writer.write(b"250 2.1.0 OK\r\n")
                elif verb == b"RCPT":
                    rcpt = _address(line)
                    if rcpt == m.drip_for:
                        await self._drip(writer)
                        return
                    turns = m.rcpt_replies.get(rcpt) or []
                    reply = turns.pop(0) if turns else "250 2.1.5 OK"
                    if reply.startswith("250"):
                        rcpts.append(rcpt)
                    writer.write(reply.encode() + b"\r\n")
                elif verb == b"DATA":
                    if not rcpts:
                        writer.write(b"554 5.5.1 no valid recipients\r\n")
                        continue
                    writer.write(b"354 go ahead\r\n")
                    await writer.drain()
                    data = await self._data(reader)
                    if data is None:
                        return  # dropped halfway
                    if m.drop == "after-data" and not self._dropped:
                        self._dropped = True
                        self.received.append(Taken(time.monotonic(), mail_from, rcpts, data))
                        return  # taken, and the answer never sent
                    reply = m.data_replies.pop(0) if m.data_replies else "250 2.0.0 queued"
                    if reply.startswith("250"):
                        self.received.append(Taken(time.monotonic(), mail_from, rcpts, data))
                    writer.write(reply.encode() + b"\r\n")
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 bye\r\n")
                    await writer.drain()
                    return
                else:  # RSET, NOOP
                    writer.write(b"250 2.0.0 OK\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()

    async def _drip(self, writer: asyncio.StreamWriter) -> None:
        while not writer.is_closing():
            writer.write(b"250-still thinking about that recipient\r\n")
            self.drips += 1
            await writer.drain()
            await asyncio.sleep(self.misbehaviour.drip_every)

    async def _data(self, reader: asyncio.StreamReader) -> bytes | None:
        lines: list[bytes] = []
        drop_midway = self.misbehaviour.drop == "mid-data" and not self._dropped
        while (line := await reader.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
            if drop_midway and len(lines) >= 3:
                self._dropped = True
                return None
        return b"".join(lines) if line else None


def _address(line: bytes) -> str:
    text = line.decode("utf-8", "replace")
    return text[text.find("<") + 1 : text.find(">")].lower()
