"""Which ticket a mail belongs to, and whether its sender may join it.

In order of trust:
1. In-Reply-To / References (RFC 5322 section 3.6.4) against every Message-ID we stored, ours and
   theirs; then against the ids earlier mails referenced, so a mail that arrives after a reply
   to it (out of order) still joins that reply's ticket;
2. the signed token in one of our plus-addresses (Reply-To of our mail), which survives clients
   and ticket systems that strip threading headers;
3. the "[#N]" tag in the subject, only when the sender is already on ticket N: a stranger who
   quotes a ticket number gets a ticket of their own, not a look into someone else's.

Message-IDs are no secret: ours travel in every forwarded mail, list archive and quote. So a mail
joins a ticket by its headers only through a message we sent to its sender, one its sender sent
(and that was taken as theirs), or when its sender is already on the ticket. A reference that
reaches one of our messages otherwise is a stranger's mail on that ticket (`stranger=True`): the
pipeline keeps it as a note for staff and lets the stranger in only when staff add them. A mail
whose references reach only other people's mail, not ours, is about something else and opens its
own ticket (two people answering the same newsletter do not share one). The out-of-order path
likewise counts only earlier mail of the same sender, so naming a Message-ID that someone else
will use later captures nothing.

Reply addresses get forwarded too: a requester's "t" token names the thread, not who may join it,
so the sender must be on the ticket or someone we mailed about it; otherwise the mail is a
stranger's. Staff "w" and "c" tokens are checked against the roster and the From by the handler
of staff replies (tickets.staff_replies).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from models import tables
from models.mail import ParsedEmail
from models.message import MessageKind
from models.outbox import OutboxKind, OutboxMessage
from models.ticket import Ticket
from notify.config import MailIdentity
from notify.tokens import Token, TokenKind, verify
from tickets.participants import is_participant

_SUBJECT_TAG = re.compile(r"\[#(\d{1,18})\]")
# Mail of ours whose recipient is nobody we trust: answering it makes nobody a participant.
UNTRUSTED_OUTGOING = (OutboxKind.REFUSAL.value,)
# Tickets the out-of-order path looks at, newest first: one sender's references seldom reach more.
REFERENCED_TICKETS = 5


@dataclass(frozen=True)
class ThreadMatch:
    ticket_id: int
    by: str  # "in-reply-to", "references", "referenced-by", "token", "subject-tag"
    token: Token | None = None  # the verified token, when it decided or was present
    # The sender is not on the ticket and reached it through one of our Message-IDs or a
    # forwarded reply address: their mail is a note for staff, never a participant's.
    stranger: bool = False


def recipients_of(mail: ParsedEmail, envelope_to: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for addr in (*envelope_to, *(a.addr for a in mail.to), *(a.addr for a in mail.cc)):
        seen.setdefault(addr.lower(), None)
    return list(seen)


def find_tokens(identity: MailIdentity, addresses: Iterable[str]) -> list[Token]:
    tokens: list[Token] = []
    for address in addresses:
        tag = identity.tag_of(address)
        if tag:
            token = verify(identity.secret, tag)
            if token is not None:
                tokens.append(token)
    return tokens


# Built once: these run for every mail.
_m = tables.messages.c
_BY_MESSAGE_ID = select(
    _m.message_id, _m.ticket_id, _m.direction, _m.kind, _m.from_addr, _m.to_addrs, _m.cc_addrs
).where(_m.message_id.in_(bindparam("ids", expanding=True)))
_r = tables.message_refs.c
# The tickets, newest first, whose stored references name one of the ids and on which the sender
# has mail of their own (not a stranger's note): nobody else's reference can pull a mail in.
_BY_REFERENCED = (
    select(_r.ticket_id)
    .join(tables.messages, _m.ticket_id == _r.ticket_id)
    .where(
        _r.ref.in_(bindparam("ids", expanding=True)),
        _m.from_addr == bindparam("address"),
        _m.direction == "in",
        _m.kind != MessageKind.STRANGER.value,
    )
    .group_by(_r.ticket_id)
    .order_by(func.max(_r.id).desc())
    .limit(REFERENCED_TICKETS)
)
_OWN_MAIL_ON = select(_m.message_id, _m.in_reply_to, _m.references).where(
    _m.ticket_id == bindparam("ticket_id"),
    _m.from_addr == bindparam("address"),
    _m.direction == "in",
    _m.kind != MessageKind.STRANGER.value,
)
_MAILED = (
    select(tables.outbox.c.id)
    .where(
        tables.outbox.c.recipient == bindparam("address"),
        tables.outbox.c.ticket_id == bindparam("ticket_id"),
        tables.outbox.c.kind.not_in(UNTRUSTED_OUTGOING),
    )
    .limit(1)
)


def _mailed(session: Session, ticket_id: int, address: str) -> bool:
    """True when we sent `address` mail about the ticket (other than a refusal)."""
    found = session.connection().execute(_MAILED, {"ticket_id": ticket_id, "address": address})
    return found.first() is not None


@dataclass(frozen=True)
class _Stored:
    """A stored message a mail's headers reached, as far as trust needs it."""

    ticket_id: int
    ours: bool  # a mail we sent
    kind: str
    from_addr: str
    recipients: tuple[str, ...]

    def vouches_for(self, sender: str) -> bool:
        """It lets `sender` in: ours to them, or theirs that was taken as theirs."""
        if not sender:
            return False
        if self.ours:
            return self.kind not in UNTRUSTED_OUTGOING and sender in self.recipients
        return self.from_addr == sender and self.kind != MessageKind.STRANGER

    def strangers_own(self, sender: str) -> bool:
        """A stranger's earlier note on its ticket, from this very sender."""
        return bool(sender) and self.kind == MessageKind.STRANGER and self.from_addr == sender


def by_headers(session: Session, mail: ParsedEmail) -> ThreadMatch | None:
    """The ticket the mail's In-Reply-To/References reach, and whether its sender may join it.

    In-Reply-To first, then the newest reference. A message that vouches for the sender, or a
    ticket the sender is on, decides; else the first of our own messages makes it a stranger's
    mail on that ticket; references only to other people's mail find nothing.
    """
    refs = list(mail.references_all)
    if not refs:
        return None
    rows = session.connection().execute(_BY_MESSAGE_ID, {"ids": refs}).all()
    if not rows:
        return None
    found = {
        row.message_id: _Stored(
            row.ticket_id,
            row.direction == "out",
            row.kind,
            row.from_addr,
            (*(row.to_addrs or ()), *(row.cc_addrs or ())),
        )
        for row in rows
    }
    sender = mail.sender
    on_ticket: dict[int, bool] = {}
    stranger: ThreadMatch | None = None
    for ref in refs:
        stored = found.get(ref)
        if stored is None:
            continue
        by = "in-reply-to" if ref in mail.in_reply_to else "references"
        if stored.vouches_for(sender):
            return ThreadMatch(stored.ticket_id, by)
        if stored.ticket_id not in on_ticket:
            on_ticket[stored.ticket_id] = is_participant(session, stored.ticket_id, sender)
        if on_ticket[stored.ticket_id]:
            return ThreadMatch(stored.ticket_id, by)
        if stranger is None and (stored.ours or stored.strangers_own(sender)):
            stranger = ThreadMatch(stored.ticket_id, by, stranger=True)
    return stranger


def by_referenced(session: Session, mail: ParsedEmail) -> ThreadMatch | None:
    """A mail that an earlier-stored mail of the same sender referenced, or that shares a reference
    with one: the out-of-order path. Someone else's reference to it counts for nothing."""
    sender = mail.sender
    candidates = [*mail.references_all]
    if mail.message_id:
        candidates.insert(0, mail.message_id)
    if not candidates or not sender:
        return None
    wanted = set(candidates)
    tickets = session.connection().execute(_BY_REFERENCED, {"ids": candidates, "address": sender}).scalars()
    for ticket_id in list(tickets):
        own = session.connection().execute(_OWN_MAIL_ON, {"ticket_id": ticket_id, "address": sender})
        for row in own:
            if wanted.intersection((row.in_reply_to, *(row.references or ()))):
                return ThreadMatch(ticket_id, "referenced-by")
    return None


def by_token(session: Session, tokens: list[Token], sender: str) -> ThreadMatch | None:
    """The ticket a token of ours names. A requester's "t" token lets in only someone on the
    ticket or someone we mailed about it; anyone else it brings is a stranger."""
    stranger: ThreadMatch | None = None
    for token in tokens:
        if token.kind is TokenKind.BOUNCE or session.get(Ticket, token.number) is None:
            continue
        if token.kind.staff:  # the From is checked against the roster by the staff handler
            return ThreadMatch(token.number, "token", token)
        if sender and (
            is_participant(session, token.number, sender) or _mailed(session, token.number, sender)
        ):
            return ThreadMatch(token.number, "token", token)
        stranger = stranger or ThreadMatch(token.number, "token", token, stranger=True)
    return stranger


def by_subject_tag(session: Session, mail: ParsedEmail) -> ThreadMatch | None:
    if not mail.sender:
        return None
    for match in _SUBJECT_TAG.finditer(mail.subject):
        number = int(match.group(1))
        if is_participant(session, number, mail.sender):
            return ThreadMatch(number, "subject-tag")
    return None


def find_ticket(
    session: Session, identity: MailIdentity, mail: ParsedEmail, envelope_to: Iterable[str]
) -> ThreadMatch | None:
    """The ticket of `mail`: the first path that lets its sender in, else a stranger's match (the
    first of headers and token that reached a ticket), else None (a ticket of its own)."""
    tokens = find_tokens(identity, recipients_of(mail, envelope_to))
    headers = by_headers(session, mail)
    if headers is not None and not headers.stranger:
        return _with_staff_token(headers, tokens)
    referenced = by_referenced(session, mail)
    if referenced is not None:
        return _with_staff_token(referenced, tokens)
    token = by_token(session, tokens, mail.sender)
    if token is not None and not token.stranger:
        return token
    tag = by_subject_tag(session, mail)
    if tag is not None:
        return _with_staff_token(tag, tokens)
    return headers or token


def _with_staff_token(match: ThreadMatch, tokens: list[Token]) -> ThreadMatch:
    """Keep a staff work token even when headers found the ticket: it says who is acting."""
    token = next((t for t in tokens if t.kind.staff and t.number == match.ticket_id), None)
    return replace(match, token=token) if token is not None else match


@dataclass(frozen=True)
class BounceTarget:
    """What a delivery report (RFC 3464) is about.

    Only the signed per-mail return address (VERP: the "b" token in the envelope sender of our
    mail, where reports are sent) says for sure which mail failed: `outbox_id`. Anybody can write
    a report naming one of our Message-IDs, so a mail it names (`named`) is information only.
    """

    ticket_id: int | None
    outbox_id: int | None = None  # by the signed return address: its status may change
    named: int | None = None  # by a Message-ID in the report: information only


def bounce_ticket(
    session: Session, identity: MailIdentity, mail: ParsedEmail, envelope_to: Iterable[str]
) -> BounceTarget:
    """The ticket and mail a delivery report is about: by VERP token, else by the original Message-ID."""
    tokens = find_tokens(identity, recipients_of(mail, envelope_to))
    for token in tokens:
        if token.kind is TokenKind.BOUNCE:
            row = session.get(OutboxMessage, token.number)
            if row is not None:
                return BounceTarget(row.ticket_id, outbox_id=row.id)
    original = mail.report.original_message_id if mail.report else None
    refs = [r for r in (original, *mail.references_all) if r]
    if refs:
        found = session.execute(
            select(OutboxMessage.ticket_id, OutboxMessage.id)
            .where(OutboxMessage.message_id.in_(refs))
            .limit(1)
        ).first()
        if found:
            return BounceTarget(found[0], named=found[1])
        match = by_headers(session, mail)
        if match:
            return BounceTarget(match.ticket_id)
    return BounceTarget(None)
