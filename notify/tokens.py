"""Signed reply tokens carried in our plus-addresses: support+t42-<sig>@example.test.

Outlook, ServiceNow and many ticket systems drop In-Reply-To/References when people reply, but
they keep the Reply-To address. The token in it names the ticket (and, for technicians, who may
act on it), signed with HMAC-SHA256 so nobody can forge a reply into another ticket. Local parts
are compared case-insensitively by many MTAs, so tokens are lower-case only.

    t<ticket>-<sig>            the requester's thread of ticket <ticket>
    w<ticket>.<who>-<sig>      a technician's work thread (<who>: technician id)
    c<ticket>.<who>-<sig>      a coordinator's thread about a ticket (<who>: coordinator id)
    b<outbox>-<sig>            the envelope sender of one outgoing mail (VERP): bounces name it
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

SIG_LEN = 12  # hex digits: 48 bits, enough against guessing, short enough for any MTA
_TOKEN = re.compile(r"^([twbc])(\d{1,18})(?:\.(\d{1,18}))?-([0-9a-f]{" + str(SIG_LEN) + r"})$")


@dataclass(frozen=True)
class Token:
    kind: str  # "t" requester thread, "w" technician work, "c" coordinator, "b" bounce
    number: int  # the ticket, or the outbox row for "b"
    who: int | None = None

    def text(self, secret: str) -> str:
        body = f"{self.kind}{self.number}" + (f".{self.who}" if self.who is not None else "")
        return f"{body}-{_sign(secret, body)}"


def _sign(secret: str, body: str) -> str:
    if not secret:
        raise ValueError("the reply-token secret is empty; set mail.secret in helpdesk.toml")
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:SIG_LEN]


def ticket_token(secret: str, ticket: int) -> str:
    return Token("t", ticket).text(secret)


def work_token(secret: str, ticket: int, technician: int) -> str:
    return Token("w", ticket, technician).text(secret)


def coordinator_token(secret: str, ticket: int, coordinator: int) -> str:
    return Token("c", ticket, coordinator).text(secret)


def bounce_token(secret: str, outbox_id: int) -> str:
    return Token("b", outbox_id).text(secret)


def verify(secret: str, text: str) -> Token | None:
    """The token in `text` if its signature is right; None for anything else."""
    match = _TOKEN.match(text.strip().lower())
    if not match:
        return None
    kind, number, who, sig = match.groups()
    token = Token(kind, int(number), int(who) if who is not None else None)
    body = text.strip().lower().rpartition("-")[0]
    if not hmac.compare_digest(_sign(secret, body), sig):
        return None
    return token
