"""Which ticket a mail belongs to.

In order of trust:
1. In-Reply-To / References (RFC 5322 section 3.6.4) against every Message-ID we stored, ours and
   theirs; then against the ids earlier mails referenced, so a mail that arrives after a reply
   to it (out of order) still joins that reply's ticket;
2. the signed token in one of our plus-addresses (Reply-To of our mail), which survives clients
   and ticket systems that strip threading headers;
3. the "[#N]" tag in the subject, only when the sender is already on ticket N: a stranger who
   quotes a ticket number gets a ticket of their own, not a look into someone else's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from intake.parse import ParsedEmail
from models import tables
from models.outbox import OutboxMessage
from models.ticket import Ticket
from notify.config import MailIdentity
from notify.tokens import Token, verify

_SUBJECT_TAG = re.compile(r"\[#(\d{1,18})\]")


@dataclass(frozen=True)
class ThreadMatch:
    ticket_id: int
    by: str  # "in-reply-to", "references", "referenced-by", "token", "subject-tag"
    token: Token | None = None  # the verified token, when it decided or was present


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
_BY_MESSAGE_ID = select(tables.messages.c.message_id, tables.messages.c.ticket_id).where(
    tables.messages.c.message_id.in_(bindparam("ids", expanding=True))
)
_BY_REFERENCED = (
    select(tables.message_refs.c.ticket_id)
    .where(tables.message_refs.c.ref.in_(bindparam("ids", expanding=True)))
    .order_by(tables.message_refs.c.id.desc())
    .limit(1)
)
_PARTICIPANT = select(tables.participants.c.id).where(
    tables.participants.c.ticket_id == bindparam("ticket_id"),
    tables.participants.c.address == bindparam("address"),
)


def by_headers(session: Session, mail: ParsedEmail) -> ThreadMatch | None:
    refs = list(mail.references_all)
    if not refs:
        return None
    rows = session.connection().execute(_BY_MESSAGE_ID, {"ids": refs}).all()
    if rows:
        found = {row.message_id: row.ticket_id for row in rows}
        for ref in refs:  # In-Reply-To first, then the newest reference
            if ref in found:
                by = "in-reply-to" if ref in mail.in_reply_to else "references"
                return ThreadMatch(found[ref], by)
    return None


def by_referenced(session: Session, mail: ParsedEmail) -> ThreadMatch | None:
    """A mail that an earlier-stored mail referenced, or that shares a reference with one."""
    candidates = [*mail.references_all]
    if mail.message_id:
        candidates.insert(0, mail.message_id)
    if not candidates:
        return None
    row = session.connection().execute(_BY_REFERENCED, {"ids": candidates}).first()
    return ThreadMatch(row[0], "referenced-by") if row else None


def by_token(session: Session, tokens: list[Token]) -> ThreadMatch | None:
    for token in tokens:
        if token.kind in ("t", "w", "c") and session.get(Ticket, token.number) is not None:
            return ThreadMatch(token.number, "token", token)
    return None


def by_subject_tag(session: Session, mail: ParsedEmail) -> ThreadMatch | None:
    if not mail.sender:
        return None
    for match in _SUBJECT_TAG.finditer(mail.subject):
        number = int(match.group(1))
        participant = (
            session.connection().execute(_PARTICIPANT, {"ticket_id": number, "address": mail.sender}).first()
        )
        if participant is not None:
            return ThreadMatch(number, "subject-tag")
    return None


def find_ticket(
    session: Session, identity: MailIdentity, mail: ParsedEmail, envelope_to: Iterable[str]
) -> ThreadMatch | None:
    tokens = find_tokens(identity, recipients_of(mail, envelope_to))
    match = by_headers(session, mail) or by_referenced(session, mail) or by_token(session, tokens)
    match = match or by_subject_tag(session, mail)
    if match is not None and match.token is None:
        # Keep a technician's work token even when headers found the ticket: it says who is acting.
        token = next((t for t in tokens if t.kind in ("w", "c") and t.number == match.ticket_id), None)
        if token is not None:
            match = ThreadMatch(match.ticket_id, match.by, token)
    return match


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
        if token.kind == "b":
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
