"""Writing outgoing mail into the outbox, in the caller's transaction, and counting automatic mail.

The caller's transaction also holds the ticket change that caused the mail: either both are
committed or neither is, so no acknowledgment is sent for a ticket that was rolled back and no
ticket change goes unannounced. The sender delivers the rows later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, insert, select
from sqlalchemy.orm import Session

from models import tables
from models.outbox import OutboxKind, OutboxStatus
from notify.compose import Draft, as_bytes, compose, new_message_id
from notify.config import MailIdentity, OutgoingConfig

_INSERT_OUTBOX = insert(tables.outbox).returning(tables.outbox.c.id)
_INSERT_MESSAGE = insert(tables.messages)
_COUNT_AUTOMATIC = (
    select(func.count())
    .select_from(tables.outbox)
    .where(
        tables.outbox.c.recipient == bindparam("recipient"),
        tables.outbox.c.automatic.is_(True),
        tables.outbox.c.created_at > bindparam("since"),
    )
)


def automatic_sent_recently(session: Session, recipient: str, now: datetime) -> int:
    """How many automatic mails went to `recipient` in the hour before `now` (RFC 3834 section 2:
    the per-address limit that keeps two responders from looping; see `notify.budget`)."""
    count = session.execute(
        _COUNT_AUTOMATIC, {"recipient": recipient.lower(), "since": now - timedelta(hours=1)}
    ).scalar()
    return int(count or 0)


def enqueue(
    session: Session,
    identity: MailIdentity,
    config: OutgoingConfig,
    draft: Draft,
    *,
    kind: OutboxKind,
    now: datetime,
    message_kind: str | None = None,
    internal: bool = False,
) -> QueuedMail:
    """Compose `draft` and add it to the outbox (and to its ticket's messages) in `session`.

    The envelope sender becomes a signed plus-address naming the outbox row when the sender
    delivers it (VERP), so a bounce that comes back tells us exactly which mail failed.
    """
    message_id = new_message_id(identity, draft.ticket)
    mail = compose(identity, draft, message_id=message_id, now=now)
    recipients = [addr.lower() for _, addr in (*draft.to, *draft.cc)]
    outbox_id = session.execute(
        _INSERT_OUTBOX,
        {
            "created_at": now,
            "ticket_id": draft.ticket,
            "kind": kind,
            "automatic": draft.automatic,
            "recipient": recipients[0] if recipients else "",
            "envelope_from": identity.address,
            "envelope_to": recipients,
            "message_id": message_id,
            "data": as_bytes(mail),
            "status": OutboxStatus.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "deadline": now + timedelta(seconds=config.retry_for),
        },
    ).scalar_one()
    if draft.ticket is not None:
        session.execute(
            _INSERT_MESSAGE,
            {
                "ticket_id": draft.ticket,
                "direction": "out",
                "kind": message_kind or kind,
                "message_id": message_id,
                "in_reply_to": draft.in_reply_to,
                "references": list(draft.references),
                "from_addr": identity.address,
                "from_name": draft.from_name or identity.name,
                "to_addrs": [addr.lower() for _, addr in draft.to],
                "cc_addrs": [addr.lower() for _, addr in draft.cc],
                "subject": draft.subject,
                "text": draft.body,
                "new_text": draft.body,
                "internal": internal,
                "language": draft.language,
                "sent_at": now,
                "created_at": now,
                "raw_id": None,
                "outbox_id": outbox_id,
            },
        )
    return QueuedMail(outbox_id, message_id, recipients[0] if recipients else "")


@dataclass(frozen=True)
class QueuedMail:
    id: int  # the outbox row
    message_id: str
    recipient: str
