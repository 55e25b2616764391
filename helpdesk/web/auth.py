"""Sign-in by mail: one-time links, signed session cookies, and the rate limits on asking.

A link is `BASE/auth?t=TOKEN`: TOKEN signs (itsdangerous, HMAC-SHA256 with the desk's secret and a
salt of its own) the address it was made for, a random nonce and the time it was made. It opens a
session only within LINK_LIFETIME of that time, and only once: its first use records the nonce in
the database (tickets/sign_in.py), so a second use fails in any process. The session cookie signs
the same address and nonce with another salt, so a link cannot be used as a cookie nor a cookie
as a link; the session lasts `[web] session_lifetime` and ends at once when its row is signed out.
The person is looked up on the roster at every request: an address that was made inactive signs
nobody in. The link for one address cannot open anyone else's session: the address is signed.

Asking for a link gives the same answer for every address, known or not (an attacker learns
nothing of the roster), mails only known addresses, and is limited per address and per client
(in this process: a process that restarts forgets, which is acceptable for a limit on mail to
staff who are on the roster anyway).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeSerializer

from helpdesk.web.config import LINK_LIFETIME

LINK_SALT = "helpdesk.web.link"
SESSION_SALT = "helpdesk.web.session"
COOKIE = "helpdesk_session"
NONCE_BYTES = 24
# Links asked for: per address (mail to one person) and per client address (one machine asking
# for many people) within the window.
PER_ADDRESS = 3
PER_CLIENT = 10
WINDOW = 15 * 60.0


@dataclass(frozen=True)
class LinkClaim:
    email: str
    nonce: str
    issued: float  # seconds since the epoch


@dataclass(frozen=True)
class SessionClaim:
    email: str
    nonce: str
    issued: float


class Signer:
    """Signs and reads links and session cookies with the desk's secret."""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError("the dashboard needs [mail] secret to sign links and sessions")
        self._links = URLSafeSerializer(secret, salt=LINK_SALT)
        self._sessions = URLSafeSerializer(secret, salt=SESSION_SALT)

    def link_token(self, email: str, *, now: datetime) -> str:
        nonce = secrets.token_urlsafe(NONCE_BYTES)
        return str(self._links.dumps({"e": email.strip().lower(), "n": nonce, "t": now.timestamp()}))

    def read_link(self, token: str, *, now: datetime) -> LinkClaim | None:
        """The claim of a genuine link made less than LINK_LIFETIME ago, else None."""
        claim = _read(self._links, token)
        if claim is None or not 0 <= now.timestamp() - claim[2] <= LINK_LIFETIME:
            return None
        return LinkClaim(*claim)

    def session_cookie(self, email: str, nonce: str, *, now: datetime) -> str:
        return str(self._sessions.dumps({"e": email, "n": nonce, "t": now.timestamp()}))

    def read_session(self, value: str, *, now: datetime, lifetime: float) -> SessionClaim | None:
        claim = _read(self._sessions, value)
        if claim is None or not 0 <= now.timestamp() - claim[2] <= lifetime:
            return None
        return SessionClaim(*claim)


def _read(serializer: URLSafeSerializer, token: str) -> tuple[str, str, float] | None:
    try:
        data: Any = serializer.loads(token)
    except (BadSignature, ValueError, TypeError):
        return None
    if not isinstance(data, dict):
        return None
    email, nonce, issued = data.get("e"), data.get("n"), data.get("t")
    if not isinstance(email, str) or not isinstance(nonce, str) or not isinstance(issued, int | float):
        return None
    return email, nonce, float(issued)


def issued_at(claim: LinkClaim | SessionClaim) -> datetime:
    return datetime.fromtimestamp(claim.issued, UTC)


class RateLimit:
    """At most `limit` events per key within `window` seconds (a sliding window, in memory)."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str, *, now: float | None = None) -> bool:
        at = time.monotonic() if now is None else now
        with self._lock:
            if len(self._seen) > 10_000:  # forget idle keys rather than grow without bound
                self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > at - self.window}
            seen = self._seen.setdefault(key, deque())
            while seen and seen[0] <= at - self.window:
                seen.popleft()
            if len(seen) >= self.limit:
                return False
            seen.append(at)
            return True


def link_url(base_url: str, signer: Signer, email: str, *, now: datetime, next_path: str = "") -> str:
    """The sign-in link for `email`, opening `next_path` (a page of the dashboard) once signed in."""
    url = f"{base_url}/auth?t={signer.link_token(email, now=now)}"
    return f"{url}&next={quote(safe_next(next_path), safe='/')}" if next_path else url


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a path of this site only (no //host, no scheme)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/queue"
    return value
