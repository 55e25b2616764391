"""Signed reply tokens carried in our plus-addresses: support+t42-<sig>@example.test.

Outlook, ServiceNow and many ticket systems drop In-Reply-To/References when people reply, but
they keep the Reply-To address. The token in it names the ticket (and, for staff, who may act on
it), signed with HMAC-SHA256 so nobody can forge a reply into another ticket. Local parts are
compared case-insensitively by many MTAs, so tokens are lower-case only.

    t<ticket>-<sig>               the requester's thread of ticket <ticket>
    w<ticket>.<who>-<day>-<sig>   a technician's work thread (<who>: technician id)
    c<ticket>.<who>-<day>-<sig>   a coordinator's thread about a ticket (<who>: coordinator id)
    b<outbox>-<sig>               the envelope sender of one outgoing mail (VERP): bounces name it

<day> is the day the token was made, in days since 1970-01-01 written in base 36 ("g19" is
2026-11-24): three characters until the year 2097, inside the signed body so it cannot be moved.
A staff token acts on a ticket, so it carries its day and expires (`[security] token_lifetime`);
the roster is checked on every use besides. Staff tokens made before tokens carried a day are
still read (`issued` is None): the caller dates them by the newest mail that carried them.

A requester's "t" token carries no day and never expires: it only says which thread a mail
belongs to, never who may join it (the sender must already be on the ticket, see
intake.threads), and a requester answering months later must still reach their ticket, or
its follow-up when it is closed. It also stays the same in every mail of the thread.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from notify.errors import TokenError

SIG_LEN = 12  # hex digits: 48 bits, enough against guessing, short enough for any MTA
EPOCH = date(1970, 1, 1)
_DIGITS36 = "0123456789abcdefghijklmnopqrstuvwxyz"
_TOKEN = re.compile(
    r"^([twbc])(\d{1,18})(?:\.(\d{1,18}))?(?:-([0-9a-z]{1,6}))?-([0-9a-f]{" + str(SIG_LEN) + r"})$"
)


class TokenKind(enum.StrEnum):
    """The first letter of a token: whose thread it names."""

    THREAD = "t"  # the requester's thread of a ticket
    WORK = "w"  # a technician's work thread
    COORDINATOR = "c"  # a coordinator's thread about a ticket
    BOUNCE = "b"  # the envelope sender of one outgoing mail (VERP)

    @property
    def staff(self) -> bool:
        """A token that lets its verified holder act on the ticket."""
        return self in (TokenKind.WORK, TokenKind.COORDINATOR)


@dataclass(frozen=True)
class Token:
    kind: TokenKind
    number: int  # the ticket, or the outbox row for "b"
    who: int | None = None
    issued: date | None = None  # the day a staff token was made; None: no day in it

    def text(self, secret: str) -> str:
        body = f"{self.kind}{self.number}" + (f".{self.who}" if self.who is not None else "")
        if self.issued is not None:
            body += f"-{day_code(self.issued)}"
        return f"{body}-{_sign(secret, body)}"

    def renewed(self, now: datetime) -> Token:
        """The same token made today: for mail that goes to its verified holder."""
        return replace(self, issued=utc_day(now))

    def expired(self, now: datetime, lifetime: float) -> bool:
        """True when more than `lifetime` seconds passed since the end of the issue day (UTC), so a
        token lives at least the lifetime whatever the hour it was made. Without a day: False here,
        the caller dates it otherwise."""
        if self.issued is None:
            return False
        end_of_day = datetime.combine(self.issued + timedelta(days=1), time(), UTC)
        return _aware(now) - end_of_day > timedelta(seconds=lifetime)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utc_day(now: datetime) -> date:
    return _aware(now).astimezone(UTC).date()


def day_code(day: date) -> str:
    """Days since 1970-01-01 in base 36, lower-case."""
    n = (day - EPOCH).days
    if n < 0:
        raise TokenError(f"a token day before 1970: {day}")
    digits = ""
    while True:
        n, rest = divmod(n, 36)
        digits = _DIGITS36[rest] + digits
        if n == 0:
            return digits


def _sign(secret: str, body: str) -> str:
    if not secret:
        raise TokenError("the reply-token secret is empty; set mail.secret in helpdesk.toml")
    return hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()[:SIG_LEN]


def ticket_token(secret: str, ticket: int) -> str:
    return Token(TokenKind.THREAD, ticket).text(secret)


def work_token(secret: str, ticket: int, technician: int, *, now: datetime) -> str:
    return Token(TokenKind.WORK, ticket, technician, utc_day(now)).text(secret)


def coordinator_token(secret: str, ticket: int, coordinator: int, *, now: datetime) -> str:
    return Token(TokenKind.COORDINATOR, ticket, coordinator, utc_day(now)).text(secret)


def bounce_token(secret: str, outbox_id: int) -> str:
    return Token(TokenKind.BOUNCE, outbox_id).text(secret)


def verify(secret: str, text: str) -> Token | None:
    """The token in `text` if its signature is right; None for anything else."""
    match = _TOKEN.match(text.strip().lower())
    if not match:
        return None
    kind, number, who, day, sig = match.groups()
    body = text.strip().lower().rpartition("-")[0]
    if not hmac.compare_digest(_sign(secret, body), sig):
        return None
    issued = EPOCH + timedelta(days=int(day, 36)) if day is not None else None
    return Token(TokenKind(kind), int(number), int(who) if who is not None else None, issued)
