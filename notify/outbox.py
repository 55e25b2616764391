"""Writing outgoing mail into the outbox, in the caller's transaction, and the automatic-mail limit.

The caller's transaction also holds the ticket change that caused the mail: either both are
committed or neither is, so no acknowledgment is sent for a ticket that was rolled back and no
ticket change goes unannounced. The sender delivers the rows later.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.message import Message
from models.outbox import OutboxMessage, OutboxStatus
from notify.compose import Draft, compose, new_message_id
from notify.config import MailIdentity, OutgoingConfig
from notify.tokens import bounce_token


def automatic_sent_recently(session: Session, recipient: str, now: datetime) -> int:
    """How many automatic mails went to `recipient` in the hour before `now`."""
    since = now - timedelta(hours=1)
    count = session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.recipient == recipient.lower(),
            OutboxMessage.automatic.is_(True),
            OutboxMessage.created_at > since,
        )
    )
    return int(count or 0)


def automatic_allowed(session: Session, recipient: str, now: datetime, config: OutgoingConfig) -> bool:
    """RFC 3834 section 2: limit automatic answers to one address, so two responders cannot loop."""
    return automatic_sent_recently(session, recipient, now) < config.auto_reply_limit_per_hour


def enqueue(
    session: Session,
    identity: MailIdentity,
    config: OutgoingConfig,
    draft: Draft,
    *,
    kind: str,
    now: datetime,
    message_kind: str | None = None,
    internal: bool = False,
) -> OutboxMessage:
    """Compose `draft` and add it to the outbox (and to its ticket's messages) in `session`.

    The envelope sender is a signed plus-address naming the outbox row (VERP), so a bounce
    that comes back tells us exactly which mail failed.
    """
    message_id = new_message_id(identity, draft.ticket)
    mail = compose(identity, draft, message_id=message_id, now=now)
    recipients = [addr.lower() for _, addr in (*draft.to, *draft.cc)]
    row = OutboxMessage(
        created_at=now,
        ticket_id=draft.ticket,
        kind=kind,
        automatic=draft.automatic,
        recipient=recipients[0] if recipients else "",
        envelope_from=identity.address,
        envelope_to=recipients,
        message_id=message_id,
        data=mail.as_bytes(),
        status=OutboxStatus.PENDING,
        next_attempt_at=now,
        deadline=now + timedelta(seconds=config.retry_for),
    )
    session.add(row)
    session.flush()
    row.envelope_from = identity.plus_address(bounce_token(identity.secret, row.id))
    if draft.ticket is not None:
        session.add(
            Message(
                ticket_id=draft.ticket,
                direction="out",
                kind=message_kind or kind,
                message_id=message_id,
                in_reply_to=draft.in_reply_to,
                references=list(draft.references),
                from_addr=identity.address,
                from_name=draft.from_name or identity.name,
                to_addrs=[addr.lower() for _, addr in draft.to],
                cc_addrs=[addr.lower() for _, addr in draft.cc],
                subject=draft.subject,
                text=draft.body,
                new_text=draft.body,
                internal=internal,
                language=draft.language,
                sent_at=now,
                created_at=now,
                outbox_id=row.id,
            )
        )
    return row
