"""Mail about a ticket: into the requester's thread, or to staff, written to the outbox.

Every mail the desk writes about a ticket goes through `Mailer`: it renders the template in the
recipient's language, threads it (In-Reply-To/References after the thread's newest mail, the
signed reply address), holds automatic mail (RFC 3834) to the hourly budgets, and enqueues it in
the caller's transaction, so the mail commits with the change that caused it or not at all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from models import tables
from models.message import Message
from models.outbox import OutboxKind
from models.sender_auth import SenderAuth
from models.ticket import EventKind, Ticket
from notify.budget import Budgets, Decision, LogThrottle
from notify.compose import Draft, tagged_subject, thread_references
from notify.config import LimitsConfig, MailIdentity, OutgoingConfig
from notify.outbox import QueuedMail, enqueue
from notify.render import Renderer
from notify.tokens import ticket_token
from tickets.events import record_event
from tickets.messages import StoredMessage

log = logging.getLogger("helpdesk.desk")
_throttled = LogThrottle(log)

# Built once: these run for every mail.
_THREAD_CC = (
    select(tables.participants.c.name, tables.participants.c.address)
    .where(
        tables.participants.c.ticket_id == bindparam("ticket_id"),
        tables.participants.c.notify.is_(True),
        tables.participants.c.role != "technician",
    )
    .order_by(tables.participants.c.id)
)
# The verdict on the newest mail an address wrote on a ticket.
_SENDER_AUTH = (
    select(tables.raw_messages.c.sender_auth)
    .join(tables.messages, tables.messages.c.raw_id == tables.raw_messages.c.id)
    .where(
        tables.messages.c.ticket_id == bindparam("ticket_id"),
        tables.messages.c.from_addr == bindparam("address"),
        tables.messages.c.direction == "in",
    )
    .order_by(tables.messages.c.id.desc())
    .limit(1)
)


@dataclass
class Mailer:
    """Writes templated mail about tickets into the outbox, within the automatic-mail budgets."""

    identity: MailIdentity
    outgoing: OutgoingConfig
    renderer: Renderer = field(default_factory=Renderer)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    budgets: Budgets = field(init=False)

    def __post_init__(self) -> None:
        self.budgets = Budgets(self.limits, self.outgoing.auto_reply_limit_per_hour)

    def requester_thread(self, session: Session, ticket: Ticket) -> tuple[str | None, tuple[str, ...]]:
        """(In-Reply-To, References) for a mail into the requester's thread: after its newest mail."""
        last = session.execute(
            select(Message.message_id, Message.references)
            .where(Message.ticket_id == ticket.id, Message.internal.is_(False))
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        if last is None:
            return None, ()
        return last.message_id, tuple(thread_references(last.references, last.message_id))

    def thread_cc(self, session: Session, ticket: Ticket) -> tuple[tuple[str, str], ...]:
        """Who besides the requester gets the requester's thread: participants who wrote to us (and
        were taken as on the ticket) or whom staff added with `#add`; never staff, never a stranger."""
        rows = session.connection().execute(_THREAD_CC, {"ticket_id": ticket.id})
        return tuple(
            (row.name, row.address)
            for row in rows
            if row.address != ticket.requester and not self.identity.is_ours(row.address)
        )

    def mail_requester(
        self,
        session: Session,
        ticket: Ticket,
        template: str,
        *,
        now: datetime,
        kind: OutboxKind,
        automatic: bool,
        context: dict[str, Any] | None = None,
        reply_to_message: StoredMessage | None = None,
        to: tuple[str, str] | None = None,
        from_name: str | None = None,
        answering: SenderAuth | None = None,
    ) -> QueuedMail | None:
        """Write a templated mail into the requester's thread; None when the automatic limit says no."""
        recipient = to or (ticket.requester_name, ticket.requester)
        if reply_to_message is not None:
            in_reply_to: str | None = reply_to_message.message_id
            references = tuple(thread_references(reply_to_message.references, reply_to_message.message_id))
        else:
            in_reply_to, references = self.requester_thread(session, ticket)
        return self.mail(
            session,
            ticket,
            template,
            to=recipient,
            cc=self.thread_cc(session, ticket) if to is None else (),
            language=ticket.language,
            reply_to=self.identity.plus_address(ticket_token(self.identity.secret, ticket.id)),
            now=now,
            kind=kind,
            automatic=automatic,
            context={"requester_name": ticket.requester_name, **(context or {})},
            in_reply_to=in_reply_to,
            references=references,
            from_name=from_name,
            internal=False,
            answering=answering,
        )

    def mail(
        self,
        session: Session,
        ticket: Ticket,
        template: str,
        *,
        to: tuple[str, str],
        language: str,
        reply_to: str,
        now: datetime,
        kind: OutboxKind,
        automatic: bool,
        context: dict[str, Any] | None = None,
        in_reply_to: str | None = None,
        references: tuple[str, ...] = (),
        from_name: str | None = None,
        internal: bool = True,
        cc: tuple[tuple[str, str], ...] = (),
        answering: SenderAuth | None = None,
    ) -> QueuedMail | None:
        """Write a templated mail about `ticket` to anyone; internal mail stays out of the requester's thread.

        Automatic mail (RFC 3834) is held to the hourly budgets (`notify.budget`): the per-address
        limit, and the global and per-domain ones unless the mail it answers (`answering`, or else
        the recipient's own newest mail on the ticket) was authenticated. Over a budget, the mail
        is not written and an event says why.
        """
        if not to[1]:
            return None
        if automatic:
            decision = self._automatic_allowed(session, ticket, to[1], now, answering)
            if not decision.allowed:
                record_event(
                    session,
                    ticket,
                    EventKind.MAIL_SUPPRESSED,
                    "system",
                    now=now,
                    reason=f"{kind} to {to[1]} not sent: {decision.reason}",
                    data={"limit": decision.limit, "kind": kind, "to": to[1]},
                )
                _throttled(
                    f"suppressed:{decision.limit}",
                    logging.INFO,
                    "SUPPRESSED %s #%d to=%s (%s)",
                    kind,
                    ticket.id,
                    to[1],
                    decision.reason,
                )
                return None
        body = self.renderer.render(
            template,
            language,
            ticket=_TicketView.of(ticket),
            helpdesk_name=self.identity.name,
            **(context or {}),
        )
        draft = Draft(
            to=(to,),
            subject=tagged_subject(ticket.id, ticket.subject, reply=in_reply_to is not None),
            body=body,
            language=self.renderer.language_for(language),
            reply_to=reply_to,
            in_reply_to=in_reply_to,
            references=references,
            automatic=automatic,
            ticket=ticket.id,
            from_name=from_name,
            cc=cc,
            # Notices to staff are machine-made too (RFC 3834 section 5): their responders stay quiet.
            generated=internal and not automatic,
        )
        queued = enqueue(session, self.identity, self.outgoing, draft, kind=kind, now=now, internal=internal)
        log.info("QUEUED %s #%d to=%s outbox=%d", kind, ticket.id, to[1], queued.id)
        return queued

    def _automatic_allowed(
        self, session: Session, ticket: Ticket, recipient: str, now: datetime, answering: SenderAuth | None
    ) -> Decision:
        auth = answering if answering is not None else self.sender_auth(session, ticket.id, recipient)
        return self.budgets.automatic(session, recipient, now, authenticated=auth is not None and auth.passed)

    def sender_auth(self, session: Session, ticket_id: int, address: str) -> SenderAuth | None:
        """The verdict on the newest mail `address` wrote on the ticket (None: never wrote, or unchecked)."""
        data = (
            session.connection()
            .execute(_SENDER_AUTH, {"ticket_id": ticket_id, "address": address.lower()})
            .scalar()
        )
        return SenderAuth.from_dict(data)


@dataclass(frozen=True)
class _TicketView:
    """What templates may read of a ticket."""

    number: int
    subject: str
    status: str
    category: str
    priority: str
    requester: str
    assignee: str | None

    @classmethod
    def of(cls, ticket: Ticket) -> _TicketView:
        return cls(
            number=ticket.id,
            subject=ticket.subject,
            status=ticket.status.value,
            category=ticket.category,
            priority=ticket.priority.value,
            requester=ticket.requester,
            assignee=ticket.assignee,
        )
