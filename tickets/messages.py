"""The mail stored on a ticket: an inbound mail with its attachments and references, or a staff note.

Outgoing mail is stored by `notify.outbox` with its outbox row. Every Message-ID stored here (and
every id an inbound mail referenced, in `message_refs`) is what later mail threads by.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from models import tables
from models.mail import ParsedEmail
from models.message import MessageKind
from models.raw_message import RawMessage
from models.ticket import EventKind, Ticket
from tickets.events import record_event
from tickets.participants import NAME_MAX

MESSAGE_ID_MAX = 998  # RFC 5322 section 2.1.1: a line is at most 998 characters
REFERENCES_KEPT = 50  # of a mail's References, the newest; `message_refs` keeps every id

# Built once: these run for every mail.
_INSERT_MESSAGE = insert(tables.messages).returning(tables.messages.c.id)
_INSERT_ATTACHMENT = insert(tables.attachments)
_INSERT_REF = insert(tables.message_refs)
_FIND_MESSAGE_ID = select(tables.messages.c.id).where(tables.messages.c.message_id == bindparam("message_id"))


@dataclass(frozen=True)
class StoredMessage:
    """A message row as the rest needs it: to point events at it and to answer it."""

    id: int
    message_id: str
    references: tuple[str, ...]


def record_inbound(
    session: Session,
    ticket: Ticket,
    mail: ParsedEmail,
    raw: RawMessage,
    *,
    kind: MessageKind,
    now: datetime,
    internal: bool = False,
) -> StoredMessage:
    """Store an inbound mail on `ticket`: the message, its attachments and its references."""
    message_id = mail.message_id or f"{raw.dedupe_key[:32]}@no-message-id.invalid"
    if session.connection().execute(_FIND_MESSAGE_ID, {"message_id": message_id}).first() is not None:
        # A different mail reusing a Message-ID (the raw queue kept both): store it under its own id.
        message_id = f"{message_id}#{raw.id}"
    references = list(mail.references)[-REFERENCES_KEPT:]
    row_id = session.execute(
        _INSERT_MESSAGE,
        {
            "ticket_id": ticket.id,
            "direction": "in",
            "kind": kind.value,
            "message_id": message_id[:MESSAGE_ID_MAX],
            "in_reply_to": mail.in_reply_to[0][:MESSAGE_ID_MAX] if mail.in_reply_to else None,
            "references": references,
            "from_addr": mail.sender,
            "from_name": mail.from_.name[:NAME_MAX] if mail.from_ else "",
            "to_addrs": [a.addr for a in mail.to],
            "cc_addrs": [a.addr for a in mail.cc],
            "subject": mail.subject,
            "text": mail.text,
            "new_text": mail.new_text,
            "internal": internal,
            "language": mail.language,
            "sent_at": mail.date,
            "created_at": now,
            "raw_id": raw.id,
            "outbox_id": None,
        },
    ).scalar_one()
    if mail.attachments:
        session.execute(
            _INSERT_ATTACHMENT,
            [
                {
                    "message_id": row_id,
                    "filename": att.filename,
                    "content_type": att.content_type,
                    "size": att.size,
                    "sha256": att.sha256,
                    "content": att.content,
                    "omitted": att.omitted,
                }
                for att in mail.attachments
            ],
        )
    refs = list(dict.fromkeys(mail.references_all))
    if refs:
        session.connection().execute(
            _INSERT_REF, [{"ticket_id": ticket.id, "ref": ref[:MESSAGE_ID_MAX]} for ref in refs]
        )
    if mail.omitted:
        # The parser's per-mail caps left these out; the counts say how much (the raw mail keeps all).
        counts = ", ".join(f"{count} {what}" for what, count in sorted(mail.omitted.items()))
        record_event(
            session,
            ticket,
            EventKind.OMITTED,
            "system",
            now=now,
            reason=f"over the per-mail limits, not recorded: {counts}",
            data=dict(mail.omitted),
            message_id=row_id,
        )
    if ticket.updated_at != now:  # a ticket opened this instant needs no UPDATE
        ticket.updated_at = now
    return StoredMessage(row_id, message_id, tuple(references))


def internal_note(
    session: Session, ticket: Ticket, text: str, *, author: str, domain: str, now: datetime
) -> None:
    """An internal note on the ticket: kept with its messages, never sent to the requester."""
    session.connection().execute(
        _INSERT_MESSAGE,
        {
            "ticket_id": ticket.id,
            "direction": "in",
            "kind": MessageKind.NOTE.value,
            "message_id": f"note.{uuid.uuid4().hex}@{domain}",
            "in_reply_to": None,
            "references": [],
            "from_addr": author,
            "from_name": "",
            "to_addrs": [],
            "cc_addrs": [],
            "subject": "",
            "text": text,
            "new_text": text,
            "internal": True,
            "language": None,
            "sent_at": now,
            "created_at": now,
            "raw_id": None,
            "outbox_id": None,
        },
    )
