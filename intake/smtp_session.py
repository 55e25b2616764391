"""A listener session within its limits: aiosmtpd's SMTP session, every resource bounded.

`LimitedSMTP` passes the `SessionGate` of `intake.smtp_limits` when its connection is made (past a
cap: 421, closed at once, RFC 5321 section 3.8) and leaves it when the connection is lost, the TLS
handshake included; in between it spends its budgets: commands, NOOPs, error replies, the idle
time, the total session time, the TLS handshake deadline, and DATA read into one buffer that stops
growing at the size limit while the rest is read to the final dot and answered 552.

aiosmtpd's `LMTP` is a subclass of its `SMTP`, so an LMTP listener gets every limit unchanged from
`class LimitedLMTP(LimitedSMTP, LMTP)`, sharing a gate or having its own.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto as sslproto
import functools
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, AnyStr

from aiosmtpd.smtp import MISSING, SMTP, syntax

from intake.config import SessionLimits
from intake.smtp_data import DATA_IDLE_RESET, DATA_YIELD_LINES, BoundedData, DataState
from intake.smtp_limits import Refusal, SessionGate, client_key

# RFC 5321 section 4.2 reply codes, with RFC 3463 enhanced status codes.
R421_BUSY = "421 4.3.2 {} too many connections; try again later"
R421_CLIENT_BUSY = "421 4.7.0 {} too many connections from your address; try again later"
R421_TOO_MANY_COMMANDS = "421 4.7.0 {} too many commands; closing connection"
R421_TOO_MANY_NOOPS = "421 4.7.0 {} too many NOOPs; closing connection"
R421_TOO_MANY_ERRORS = "421 4.7.0 {} too many errors; closing connection"
R421_IDLE = "421 4.4.2 {} idle for too long; closing connection"
R421_SESSION_TIME = "421 4.4.2 {} session time limit reached; closing connection"
R452_NO_MEMORY = "452 4.3.1 Insufficient system storage; try again later"
R500_LINE_TOO_LONG = "500 5.5.2 Line too long (RFC 5321 section 4.5.3.1.6)"
R501_CONTROL = "501 5.5.4 Syntax error in parameters: control characters in the address"
R552_TOO_BIG = "552 5.3.4 Message too big: the limit is {} bytes"

# C0 controls, DEL, C1 controls, and lone surrogates (what invalid UTF-8 decodes to under aiosmtpd's
# surrogateescape): none can be part of an address (RFC 5321 section 4.1.2, RFC 6531 section 3.3),
# and none may reach a database column or a header we write.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


class LimitedSMTP(SMTP):
    """aiosmtpd's SMTP session with every resource bounded (see this module's docstring).

    Every command line costs from the command budget (NOOP from its own as well); every 4xx/5xx
    reply, including those aiosmtpd gives to empty, unknown or overlong lines, costs from the error
    budget; a budget overdrawn ends the session with 421 (RFC 5321 section 3.8). A mail accepted
    renews the three budgets, as Postfix counts errors "without delivering mail": a client that
    delivers is doing work, and an MTA may send many mails over one connection. What bounds such
    a session is its total time.
    """

    def __init__(self, handler: Any, *, gate: SessionGate, limits: SessionLimits, **kwargs: Any) -> None:
        super().__init__(handler, timeout=limits.idle_timeout, **kwargs)
        self._gate = gate
        self._limits = limits
        self._client: str | None = None  # set while the gate counts this session
        self._closing = False
        self._commands = 0
        self._noops = 0
        self._errors = 0
        self._session_timer: asyncio.TimerHandle | None = None
        self._data_recipients = 0
        self._events = gate.events
        self._smtp_methods = {
            name: self._budgeted(name, method) for name, method in self._smtp_methods.items()
        }

    # -- the gate: counted from the TCP connection to its end, TLS handshake included -------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._client is not None:
            # The TLS layer after STARTTLS: the same session, already counted.
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        client = client_key(peer)
        refusal = self._gate.admit(client)
        if refusal is not None:
            self._closing = True
            busy = R421_BUSY if refusal is Refusal.FULL else R421_CLIENT_BUSY
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(busy.format(self.hostname).encode("utf-8") + b"\r\n")
            transport.close()  # aiosmtpd never sets this connection up: no banner, no task
            self._events.log(
                logging.WARNING,
                refusal.value,
                "SMTP REFUSED connection from %s: %s=%d reached (%d sessions open)",
                client,
                refusal.value,
                self._gate.max_sessions if refusal is Refusal.FULL else self._limits.max_sessions_per_client,
                self._gate.open_sessions,
            )
            return
        self._client = client
        super().connection_made(transport)
        self._session_timer = self.loop.call_later(self._limits.max_session_time, self._session_expired)

    def connection_lost(self, error: Exception | None) -> None:
        if self._client is None:
            return  # turned away at the gate (never set up), or already torn down
        self._gate.leave(self._client)
        self._client = None
        if self._session_timer is not None:
            self._session_timer.cancel()
        super().connection_lost(error)

    # -- budgets -----------------------------------------------------------------------------------

    def _budgeted(self, name: str, method: Callable[[str | None], Awaitable[None]]) -> Any:
        @functools.wraps(method)  # keeps aiosmtpd's HELP texts
        async def run(arg: str | None) -> None:
            if self._closing:
                return
            self._commands += 1
            if self._commands > self._limits.max_commands:
                await self._goodbye(R421_TOO_MANY_COMMANDS, "max_commands")
                return
            if name == "NOOP":
                self._noops += 1
                if self._noops > self._limits.max_noops:
                    await self._goodbye(R421_TOO_MANY_NOOPS, "max_noops")
                    return
            await method(arg)

        return run

    async def push(self, status: AnyStr) -> None:
        await super().push(status)
        if self._closing or not _is_error(status):
            return
        self._errors += 1
        if self._errors > self._limits.max_errors:
            await self._goodbye(R421_TOO_MANY_ERRORS, "max_errors")

    async def _goodbye(self, reply: str, condition: str) -> None:
        """Answer 421 and close: the session spent a budget."""
        self._closing = True
        self._events.log(
            logging.WARNING, condition, "SMTP CLOSED session of %s: %s spent", self._client, condition
        )
        try:
            await super().push(reply.format(self.hostname))
        finally:
            self._end()

    def _end(self) -> None:
        """Stop reading commands and close the connection, as aiosmtpd's QUIT does."""
        self._closing = True
        if self._handler_coroutine is not None:
            self._handler_coroutine.cancel()
        if self.transport is not None:
            self.transport.close()

    def _expire(self, reply: str, condition: str, what: str) -> None:
        """A timer ran out: 421 and close (RFC 5321 section 4.5.3.2 lets a server time out)."""
        if self._closing or self.transport is None:
            return
        self._events.log(logging.INFO, condition, "SMTP CLOSED session of %s: %s", self._client, what)
        self._closing = True
        if isinstance(self.transport, asyncio.WriteTransport):
            self.transport.write(reply.format(self.hostname).encode("utf-8") + b"\r\n")
        self._end()

    def _timeout_cb(self) -> None:  # aiosmtpd's idle timer (its `timeout`)
        self._expire(R421_IDLE, "idle_timeout", "idle for too long")

    def _session_expired(self) -> None:
        self._expire(R421_SESSION_TIME, "max_session_time", "session time limit reached")

    # -- commands ----------------------------------------------------------------------------------

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(self, arg: str | None) -> None:
        if arg is not None and _CONTROL.search(arg):
            await self.push(R501_CONTROL)
            return
        await super().smtp_MAIL(arg)

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg is not None and _CONTROL.search(arg):
            await self.push(R501_CONTROL)
            return
        await super().smtp_RCPT(arg)

    @syntax("STARTTLS", when="tls_context")
    async def smtp_STARTTLS(self, arg: str) -> None:
        """aiosmtpd's STARTTLS (RFC 3207) with a handshake deadline, and a failed handshake ending the
        session with one short log line instead of a traceback."""
        if arg:
            await self.push("501 Syntax: STARTTLS")
            return
        if not self.tls_context:
            await self.push("454 TLS not available")
            return
        await self.push("220 Ready to start TLS")
        waiter = self.loop.create_future()
        deadline: Any = self._limits.tls_handshake_timeout  # typeshed says int; asyncio takes seconds
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop,
            self,
            self.tls_context,
            waiter,
            server_side=True,
            ssl_handshake_timeout=deadline,
            ssl_shutdown_timeout=deadline,
        )
        plain = self.transport
        assert plain is not None
        self._original_transport = plain
        plain.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(plain)
        try:
            await waiter
        except asyncio.CancelledError:
            self._tls_failed()
            raise
        except Exception as exc:
            self._events.log(
                logging.WARNING,
                "tls_handshake",
                "SMTP TLS handshake with %s failed: %s",
                self._client,
                str(exc) or type(exc).__name__,
            )
            self._tls_failed()

    def _tls_failed(self) -> None:
        # Until the handshake completes asyncio never tells us the connection is gone: close the
        # socket ourselves and end the session here, so the gate counts it out.
        self._closing = True
        if isinstance(self._original_transport, asyncio.Transport):
            self._original_transport.abort()
        self.connection_lost(None)

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, holding the message in one buffer that never grows past the size limit.

        aiosmtpd keeps a list of every line until the final dot, whatever the limit. Here each line
        (dot-unstuffed, RFC 5321 section 4.5.2) is appended to one bytearray while the message fits
        `data_size_limit` and the shared memory budget; past either, nothing more is kept, the rest
        is read to the final dot (the client could not hear us before), and the answer is 552 or 452.
        """
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        self._data_recipients = len(self.envelope.rcpt_tos)  # the envelope is reset before the reply
        data = BoundedData(self._gate, self.data_size_limit or 0)
        in_long_line = False
        lines = 0
        next_idle_reset = self.loop.time() + DATA_IDLE_RESET
        try:
            while self.transport is not None:
                try:
                    line: bytes = await self._reader.readuntil(b"\r\n")
                except asyncio.LimitOverrunError as overrun:
                    # Longer than the stream's line limit: drain it, keep nothing (RFC 5321 4.5.3.1.6).
                    await self._reader.read(overrun.consumed)
                    data.refuse(DataState.TOO_LONG)
                    in_long_line = True
                    continue
                if in_long_line:  # the end of an overlong line
                    in_long_line = False
                    continue
                if line == b".\r\n":
                    break
                data.add(line)
                now = self.loop.time()
                if now >= next_idle_reset:
                    self._reset_timeout()  # bytes are flowing: the client is not idle
                    next_idle_reset = now + DATA_IDLE_RESET
                lines += 1
                if lines % DATA_YIELD_LINES == 0:
                    # A buffer full of short lines is read without ever waiting: let the other
                    # sessions (and the next client's banner) have the loop.
                    await asyncio.sleep(0)
            if data.state is not DataState.NOMINAL:
                await self._refuse_data(data.state, data.limit)
                return
            status = await self._deliver(data.take())
        finally:
            data.close()  # the memory is given back before the client hears the answer
        if status.startswith("2"):
            self._commands = self._noops = self._errors = 0  # a mail delivered: budgets renewed
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self._reply_to_data(status)

    async def _refuse_data(self, state: DataState, limit: int) -> None:
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        if state is DataState.TOO_LONG:
            await self._reply_to_data(R500_LINE_TOO_LONG)
        elif state is DataState.TOO_BIG:
            self._events.log(
                logging.INFO,
                "max_message_size",
                "SMTP REFUSED mail from %s: over %d bytes",
                self._client,
                limit,
            )
            await self._reply_to_data(R552_TOO_BIG.format(limit))
        else:
            self._events.log(
                logging.WARNING,
                "max_data_in_memory",
                "SMTP DEFERRED mail from %s: max_data_in_memory=%d spent",
                self._client,
                self._limits.max_data_in_memory,
            )
            await self._reply_to_data(R452_NO_MEMORY)

    async def _reply_to_data(self, status: str) -> None:
        """The answer to a DATA: one reply (an LMTP session gives one per recipient)."""
        await self.push(status)

    async def _deliver(self, original_content: bytes) -> str:
        """Hand the message to the handler's DATA hook, as aiosmtpd does; the reply to give."""
        assert self.envelope is not None
        content: str | bytes = original_content
        if self._decode_data:
            try:
                content = original_content.decode(
                    "utf-8" if self.enable_SMTPUTF8 else "ascii",
                    errors="surrogateescape" if self.enable_SMTPUTF8 else "strict",
                )
            except UnicodeDecodeError:
                return "500 Error: strict ASCII mode"
        self.envelope.content = content
        self.envelope.original_content = original_content
        status = await self._call_handler_hook("DATA")
        return "250 OK" if status is MISSING else str(status)


def _is_error(status: str | bytes) -> bool:
    """A final 4xx/5xx reply line (not a `NNN-` continuation), other than our own 421."""
    text = status.decode("ascii", "replace") if isinstance(status, bytes) else status
    return len(text) >= 3 and text[0] in "45" and text[3:4] in ("", " ") and not text.startswith("421")
