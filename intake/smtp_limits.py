"""Resource limits of the listeners' sessions, so that a few connections cannot exhaust the desk.

Left to itself aiosmtpd grants a client whatever it asks for: any number of sessions, one object per
line of DATA (24 MB of empty lines cost a gigabyte), NOOPs forever, a TLS handshake that may stall
for a minute, and a traceback in the log for each failure. Two modules bound all of that:

- here, `SessionGate`, the one place that counts: sessions open in total and per client address,
  and the message data that all sessions hold in memory; and `RateLimitedLog`, which writes a
  condition that repeats once per interval with the count of the lines it held back, so no client
  can fill the disk with our log (`quiet_loop_errors` and `install_log_limit` do the same for what
  asyncio and aiosmtpd themselves log);
- `intake.smtp_session.LimitedSMTP`, the session that passes the gate (past a cap: 421, closed at
  once, RFC 5321 section 3.8) and spends its budgets: commands, NOOPs, errors, idle and total time,
  the TLS handshake deadline, and message bytes held.

Nothing here is particular to SMTP: an LMTP listener counts its sessions with the same gate, or
its own.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import logging
import resource
import threading
import time
from collections.abc import Callable
from typing import Any

from intake.config import SessionLimits

log = logging.getLogger("helpdesk.smtp")

# One line per condition per interval; what repeats within it is counted and told with the next line.
LOG_INTERVAL = 60.0
# Descriptors the daemon needs besides one per session: the database pool (three files for each
# SQLite connection), IMAP and outgoing connections, log files, the event loops, the interpreter.
FDS_BESIDES_SESSIONS = 64


class RateLimitedLog:
    """Logs a condition at most once per `interval`; the next line says how many were held back.

    Conditions are a small fixed set of names (never a client's address), so memory stays bounded
    and a thousand attacking addresses cost as many lines as one.
    """

    def __init__(
        self,
        logger: logging.Logger,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def log(self, level: int, condition: str, message: str, *args: object) -> bool:
        """Log `message % args` unless `condition` was logged within the interval; True if logged."""
        if not self._logger.isEnabledFor(level):
            return False
        now = self._clock()
        with self._lock:
            last = self._last.get(condition)
            if last is not None and now - last < self._interval:
                self._held[condition] = self._held.get(condition, 0) + 1
                return False
            self._last[condition] = now
            held = self._held.pop(condition, 0)
        if held:
            message += " (and %d more like it in the last %.0f s)"
            args = (*args, held, now - (last or now))
        self._logger.log(level, message, *args)
        return True

    def flush(self) -> None:
        """Tell the counts still held back (when the listener stops)."""
        with self._lock:
            held, self._held = self._held, {}
        for condition, count in sorted(held.items()):
            self._logger.info("SMTP %d more lines of condition %s were not logged", count, condition)


class _LogLimitFilter(logging.Filter):
    """A logging filter that lets each message template through once per interval, on one line."""

    def __init__(self, interval: float = LOG_INTERVAL) -> None:
        super().__init__()
        self._interval = interval
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._held: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = str(record.msg)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                self._held[key] = self._held.get(key, 0) + 1
                return False
            if len(self._last) > 1000:  # templates are few; a flood of f-strings must not grow this
                self._last.clear()
                self._held.clear()
            self._last[key] = now
            held = self._held.pop(key, 0)
        if record.exc_info and record.exc_info[1] is not None:
            # One line, not a traceback: the exception's type and text are what an admin can use.
            error = record.exc_info[1]
            record.msg = f"{record.msg}: {type(error).__name__}: {error}"
            record.exc_info = None
            record.exc_text = None
        if held:
            record.msg = f"{record.msg} (and {held} more like it)"
        return True


_log_limit = _LogLimitFilter()


def install_log_limit(logger: logging.Logger) -> None:
    """Rate-limit what a library logs (aiosmtpd logs to `mail.log`), once per process."""
    if _log_limit not in logger.filters:
        logger.addFilter(_log_limit)


def quiet_loop_errors(events: RateLimitedLog) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """A listener loop's exception handler: one short, rate-limited line instead of a traceback.

    asyncio reports there what no coroutine caught: `accept()` failing for want of descriptors, a
    TLS handshake gone wrong, a transport's fatal error. A client can cause each at will.
    """

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", "unexpected error"))
        error = context.get("exception")
        detail = f"{type(error).__name__}: {error}" if error is not None else ""
        events.log(logging.WARNING, f"loop:{message[:80]}", "SMTP LOOP %s %s", message, detail)
        log.debug("SMTP LOOP context %r", context)

    return handle


class Refusal(enum.Enum):
    """Why the gate turned a connection away."""

    FULL = "max_sessions"
    CLIENT_FULL = "max_sessions_per_client"


def client_key(peer: object) -> str:
    """The address a client is counted under: its IPv4 address, or its IPv6 /64 (one host gets a
    whole /64, RFC 6177, so counting single IPv6 addresses would count nothing)."""
    host = peer[0] if isinstance(peer, tuple) and peer else None
    if not isinstance(host, str) or not host:
        return "local"  # a Unix socket: the MTA on this machine
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def sessions_within_fd_limit(wanted: int) -> int:
    """How many sessions fit under this process's descriptor limit (RLIMIT_NOFILE), after raising
    the soft limit towards the hard one if that is what it takes."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + FDS_BESIDES_SESSIONS
    if soft == resource.RLIM_INFINITY or soft >= need:
        return wanted
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return max(1, min(wanted, soft - FDS_BESIDES_SESSIONS))


class SessionGate:
    """Counts the sessions open, in total and per client address, and the message bytes held.

    Thread-safe: a listener runs its own event loop in its own thread, and several listeners (SMTP,
    LMTP) may share one gate.
    """

    def __init__(
        self, limits: SessionLimits, max_sessions: int | None = None, log_interval: float = LOG_INTERVAL
    ) -> None:
        self.limits = limits
        self.max_sessions = limits.max_sessions if max_sessions is None else max_sessions
        self.events = RateLimitedLog(log, log_interval)  # what the sessions behind this gate log
        self._lock = threading.Lock()
        self._open = 0
        self._per_client: dict[str, int] = {}
        self._data_held = 0

    @property
    def open_sessions(self) -> int:
        return self._open

    @property
    def data_held(self) -> int:
        return self._data_held

    def admit(self, client: str) -> Refusal | None:
        """Count a new session of `client`, or say why not."""
        with self._lock:
            if self._open >= self.max_sessions:
                return Refusal.FULL
            mine = self._per_client.get(client, 0)
            if mine >= self.limits.max_sessions_per_client:
                return Refusal.CLIENT_FULL
            self._open += 1
            self._per_client[client] = mine + 1
            return None

    def leave(self, client: str) -> None:
        with self._lock:
            self._open -= 1
            left = self._per_client.get(client, 1) - 1
            if left > 0:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)

    def hold(self, nbytes: int) -> bool:
        """Take `nbytes` from the memory budget for message data; False if it is spent."""
        with self._lock:
            if self._data_held + nbytes > self.limits.max_data_in_memory:
                return False
            self._data_held += nbytes
            return True

    def release(self, nbytes: int) -> None:
        with self._lock:
            self._data_held -= nbytes
