"""The LMTP listener (RFC 2033, aiosmtpd's LMTP): how an MTA on this machine hands mail over.

LMTP is SMTP without a queue of its own at the receiving end: after the final dot of DATA the
server gives one reply for each recipient it accepted, in RCPT order (RFC 2033 section 4.2), so
the MTA knows the fate of each. Here every reply comes only after the mail is stored and
committed, once, with all its recipients: the same 250, 451 or 552 for each, which keeps the
guarantee of the SMTP listener (RFC 5321 section 6.1: a 250 means the mail is ours to keep).

It listens on a TCP address (`[lmtp] listen = "127.0.0.1:2424"`) or a Unix socket (`"unix:PATH"`),
with the handler, the size limit and every session limit of the SMTP listener behind a gate of
its own. A Unix socket is made reachable to every local user, as a loopback port is; the
directory it lies in decides who may reach it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiosmtpd.controller import UnixSocketController
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP

from intake.config import LmtpListenConfig, SessionLimits
from intake.raw_queue import RawStore
from intake.smtp_limits import (
    SessionGate,
    quiet_loop_errors,
)
from intake.smtp_listener import IntakeHandler, LimitedController, open_gate, session_options
from intake.smtp_session import LimitedSMTP
from notify.config import MailIdentity

log = logging.getLogger("helpdesk.lmtp")

SOCKET_MODE = 0o666  # as reachable as a loopback port; the socket's directory narrows it


class LimitedLMTP(LimitedSMTP, LMTP):
    """aiosmtpd's LMTP session (LHLO, no HELO or EHLO) within every limit of `LimitedSMTP`,
    answering a DATA once per accepted recipient (RFC 2033 section 4.2)."""

    async def _reply_to_data(self, status: str) -> None:
        # One answer to one DATA: a refusal costs one error from the budget, however many
        # recipients hear it (50 recipients of a mail too big are not 50 errors, and must not
        # end the session with 421 halfway through the replies).
        await self.push(status)
        for _ in range(self._data_recipients - 1):
            await SMTP.push(self, status)


class LmtpController(LimitedController):
    """The TCP listener, serving each connection with a `LimitedLMTP`."""

    def factory(self) -> LimitedLMTP:
        return LimitedLMTP(self.handler, gate=self.gate, limits=self.limits, **self.SMTP_kwargs)


class LmtpUnixController(UnixSocketController):
    """The Unix socket listener, serving each connection with a `LimitedLMTP`."""

    def __init__(self, handler: Any, *, gate: SessionGate, limits: SessionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.gate = gate
        self.limits = limits
        self.loop.set_exception_handler(quiet_loop_errors(gate.events))

    def factory(self) -> LimitedLMTP:
        return LimitedLMTP(self.handler, gate=self.gate, limits=self.limits, **self.SMTP_kwargs)


class LmtpListener:
    """Runs the LMTP listener in its own thread and event loop, like `SmtpListener`."""

    def __init__(self, config: LmtpListenConfig, store: RawStore, identity: MailIdentity) -> None:
        self.config = config
        limits = config.limits
        self.gate = open_gate(limits, "LMTP")
        handler = IntakeHandler(store, identity, config.max_message_size, self.gate.events, protocol="LMTP")
        kwargs = session_options(config.hostname, config.max_message_size, "Helpdesk LMTP")
        self._controller: LimitedController | LmtpUnixController
        if config.socket is not None:
            config.socket.parent.mkdir(parents=True, exist_ok=True)
            self._controller = LmtpUnixController(
                handler, gate=self.gate, limits=limits, unix_socket=config.socket, **kwargs
            )
        else:
            self._controller = LmtpController(
                handler, gate=self.gate, limits=limits, hostname=config.host, port=config.port, **kwargs
            )

    @property
    def where(self) -> str:
        if self.config.socket is not None:
            return f"unix:{self.config.socket}"
        return f"{self.config.host}:{self.config.port}"

    def start(self) -> None:
        self._controller.start()
        if self.config.socket is not None:
            self.config.socket.chmod(SOCKET_MODE)
        log.info(
            "LMTP LISTENING on %s (max %d bytes, %d sessions, %d per client)",
            self.where,
            self.config.max_message_size,
            self.gate.max_sessions,
            self.config.limits.max_sessions_per_client,
        )

    def stop(self) -> None:
        self._controller.stop()
        self.gate.events.flush()
        if self.config.socket is not None:
            Path(self.config.socket).unlink(missing_ok=True)
        log.info("LMTP STOPPED")
