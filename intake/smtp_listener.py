"""The SMTP listener (aiosmtpd): accepts mail for the helpdesk address, durably, and nothing else.

A mail is stored in the raw queue and committed before we answer 250 (RFC 5321 section 6.1:
once we say 250 the mail is ours to keep). When the store fails the client gets 451 and retries
later; over `max_message_size` it gets 552; a recipient that is not the helpdesk address or one
of its plus-addresses gets 550, so the listener can never be used as an open relay.

Each session runs within its limits (`intake.smtp_limits`, `intake.smtp_session`): sessions in
total and per client, commands, NOOPs, errors, idle and total time, the TLS handshake deadline,
message bytes held.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from intake.config import SessionLimits, SmtpListenConfig
from intake.errors import StoreError
from intake.raw_queue import RawStore
from intake.smtp_limits import (
    FDS_BESIDES_SESSIONS,
    RateLimitedLog,
    SessionGate,
    install_log_limit,
    quiet_loop_errors,
    sessions_within_fd_limit,
)
from intake.smtp_session import R552_TOO_BIG, LimitedSMTP
from notify.config import MailIdentity

log = logging.getLogger("helpdesk.smtp")

# RFC 5321 section 4.2 reply codes, with RFC 3463 enhanced status codes.
R250_QUEUED = "250 2.0.0 OK: queued as {}"
R250_DUPLICATE = "250 2.0.0 OK: already received (duplicate of {})"
R250_RCPT_OK = "250 2.1.5 OK"
R451_TRY_LATER = "451 4.3.0 Cannot store the message right now; try again later"
R550_NOT_HERE = "550 5.1.1 <{}>: no such mailbox here (this helpdesk does not relay)"
NULL_PATH = "<>"  # RFC 5321 section 4.5.5: the reverse-path of a bounce


class IntakeHandler:
    """aiosmtpd handler: RCPT checks the address, DATA stores and commits before answering."""

    def __init__(
        self,
        store: RawStore,
        identity: MailIdentity,
        max_message_size: int,
        events: RateLimitedLog | None = None,
        protocol: str = "SMTP",
    ) -> None:
        self._protocol = protocol  # names the listener in the log and in the raw queue's source
        self._store = store
        self._identity = identity
        self._max = max_message_size
        # What a client can repeat at will is logged once a minute, with a count.
        self._events = events or RateLimitedLog(log)

    async def handle_EHLO(
        self, server: SMTPServer, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        # The desk has no accounts, so every AUTH would fail: advertise none (RFC 4954 section 3
        # lists AUTH only for mechanisms a client can use). aiosmtpd offers it after STARTTLS.
        session.host_name = hostname
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if not self._identity.is_ours(address):
            self._events.log(
                logging.INFO,
                "rcpt_refused",
                "%s REFUSED rcpt=%s from %s (not our address)",
                self._protocol,
                address,
                session.peer,
            )
            return R550_NOT_HERE.format(address)
        envelope.rcpt_tos.append(address)
        return R250_RCPT_OK

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        if len(data) > self._max:
            return R552_TOO_BIG.format(self._max)
        mail_from = envelope.mail_from or ""
        if mail_from == NULL_PATH:
            # aiosmtpd keeps `MAIL FROM:<>` as "<>"; stored as the empty sender it is, a bounce.
            mail_from = ""
        loop = asyncio.get_running_loop()
        try:
            # The commit blocks on disk; run it off the event loop so other sessions carry on.
            result = await loop.run_in_executor(
                None,
                lambda: self._store.store(
                    data,
                    source=self._protocol.lower(),
                    envelope_from=mail_from,
                    envelope_to=list(envelope.rcpt_tos),
                ),
            )
        except StoreError as exc:
            self._events.log(
                logging.ERROR,
                "tempfail",
                "%s TEMPFAIL from=%s size=%d: %s",
                self._protocol,
                mail_from,
                len(data),
                exc,
            )
            return R451_TRY_LATER
        except Exception:
            log.exception(
                "%s TEMPFAIL from=%s size=%d: unexpected error", self._protocol, mail_from, len(data)
            )
            return R451_TRY_LATER
        if result.duplicate:
            log.info("%s DUPLICATE from=%s raw=%s", self._protocol, mail_from, result.raw_id)
            return R250_DUPLICATE.format(result.raw_id)
        log.info("%s ACCEPTED raw=%s from=%s size=%d", self._protocol, result.raw_id, mail_from, len(data))
        return R250_QUEUED.format(result.raw_id)


def tls_context(config: SmtpListenConfig) -> ssl.SSLContext | None:
    if config.tls_cert is None or config.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    return context


def open_gate(limits: SessionLimits, protocol: str) -> SessionGate:
    """A listener's session gate, its cap lowered to what the process's file limit allows."""
    fitting = sessions_within_fd_limit(limits.max_sessions)
    if fitting < limits.max_sessions:
        log.warning(
            "%s LIMIT max_sessions=%d lowered to %d: the process may open only %d files",
            protocol,
            limits.max_sessions,
            fitting,
            fitting + FDS_BESIDES_SESSIONS,
        )
    # aiosmtpd's own log lines (mail.log) are rate-limited too, tracebacks cut to one line.
    install_log_limit(logging.getLogger("mail.log"))
    return SessionGate(limits, max_sessions=fitting)


def session_options(hostname: str | None, max_message_size: int, ident: str) -> dict[str, Any]:
    """What every session of a listener (SMTP or LMTP) is created with."""
    return {
        # Without a name aiosmtpd asks DNS for our FQDN, which hangs on machines without DNS.
        "server_hostname": hostname or socket.gethostname(),
        "data_size_limit": max_message_size,
        "enable_SMTPUTF8": True,
        "decode_data": False,
        "ident": ident,
        # No accounts, so no mechanism could ever succeed (see handle_EHLO).
        "auth_exclude_mechanism": ["LOGIN", "PLAIN"],
    }


class LimitedController(Controller):
    """aiosmtpd's Controller, serving each connection with a `LimitedSMTP` behind one gate."""

    def __init__(self, handler: Any, *, gate: SessionGate, limits: SessionLimits, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.gate = gate
        self.limits = limits
        # asyncio's own reports (accept() out of descriptors, broken TLS) as one short line each.
        self.loop.set_exception_handler(quiet_loop_errors(gate.events))

    def factory(self) -> LimitedSMTP:
        return LimitedSMTP(self.handler, gate=self.gate, limits=self.limits, **self.SMTP_kwargs)


class SmtpListener:
    """Runs the listener in its own thread and event loop (aiosmtpd's Controller)."""

    def __init__(self, config: SmtpListenConfig, store: RawStore, identity: MailIdentity) -> None:
        self.config = config
        limits = config.limits
        self.gate = open_gate(limits, "SMTP")
        handler = IntakeHandler(store, identity, config.max_message_size, self.gate.events)
        kwargs: dict[str, Any] = {
            "hostname": config.host,
            "port": config.port,
            **session_options(config.hostname, config.max_message_size, "Helpdesk ESMTP"),
        }
        context = tls_context(config)
        if context is not None:
            kwargs["tls_context"] = context
            kwargs["require_starttls"] = config.require_tls
        self._controller = LimitedController(handler, gate=self.gate, limits=limits, **kwargs)

    @property
    def port(self) -> int:
        return self.config.port

    def start(self) -> None:
        self._controller.start()
        log.info(
            "SMTP LISTENING on %s:%d (max %d bytes, %d sessions, %d per client)",
            self.config.host,
            self.port,
            self.config.max_message_size,
            self.gate.max_sessions,
            self.config.limits.max_sessions_per_client,
        )

    def stop(self) -> None:
        self._controller.stop()
        self.gate.events.flush()
        log.info("SMTP STOPPED")
