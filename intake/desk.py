"""Ticket operations shared by the pipeline, technician commands, the SLA timer and the CLI.

Every change to a ticket goes through here so that it is logged as an event with who and why,
and so that the mail it causes is written to the outbox in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.config import IntakeConfig
from intake.parse import Address, ParsedEmail
from models.message import Attachment, Message, MessageRef
from models.outbox import OutboxMessage
from models.raw_message import RawMessage
from models.ticket import Participant, Ticket, TicketEvent, TicketStatus
from notify.compose import Draft, tagged_subject, thread_references
from notify.config import MailIdentity, OutgoingConfig
from notify.outbox import automatic_allowed, enqueue
from notify.render import Renderer
from notify.tokens import ticket_token

log = logging.getLogger("helpdesk.desk")

SUBJECT_MAX = 500


@dataclass
class Desk:
    identity: MailIdentity
    intake: IntakeConfig
    outgoing: OutgoingConfig
    renderer: Renderer = field(default_factory=Renderer)
    on_outbox: Callable[[], None] | None = None  # wakes the sender after commit

    # -- events and participants -------------------------------------------------------------

    def event(
        self,
        session: Session,
        ticket: Ticket,
        kind: str,
        actor: str,
        *,
        now: datetime,
        old: str | None = None,
        new: str | None = None,
        reason: str = "",
        data: dict[str, Any] | None = None,
        message: Message | None = None,
    ) -> TicketEvent:
        event = TicketEvent(
            ticket_id=ticket.id,
            at=now,
            actor=actor,
            kind=kind,
            old=old,
            new=new,
            reason=reason,
            data=data or {},
            message_id=message.id if message is not None else None,
        )
        session.add(event)
        return event

    def participant(
        self, session: Session, ticket: Ticket, address: str, name: str, role: str, *, notify: bool = True
    ) -> Participant:
        address = address.lower()
        found = session.scalar(
            select(Participant).where(Participant.ticket_id == ticket.id, Participant.address == address)
        )
        if found is not None:
            if notify and not found.notify:
                found.notify = True
            return found
        row = Participant(ticket_id=ticket.id, address=address, name=name[:300], role=role, notify=notify)
        session.add(row)
        return row

    def is_participant(self, session: Session, ticket_id: int, address: str) -> bool:
        found = session.scalar(
            select(Participant.id).where(
                Participant.ticket_id == ticket_id, Participant.address == address.lower()
            )
        )
        return found is not None

    # -- inbound mail ------------------------------------------------------------------------

    def open_ticket(self, session: Session, mail: ParsedEmail, *, now: datetime, tags: list[str]) -> Ticket:
        sender = mail.from_ or Address("", "")
        ticket = Ticket(
            subject=mail.subject[:SUBJECT_MAX],
            status=TicketStatus.NEW,
            requester=sender.addr,
            requester_name=sender.name[:300],
            language=mail.language,
            tags=tags,
            created_at=now,
            updated_at=now,
        )
        session.add(ticket)
        session.flush()
        self.participant(session, ticket, sender.addr, sender.name, "requester")
        for cc in (*mail.to, *mail.cc):
            if not self.identity.is_ours(cc.addr) and cc.addr != sender.addr:
                self.participant(session, ticket, cc.addr, cc.name, "cc", notify=False)
        return ticket

    def record_inbound(
        self,
        session: Session,
        ticket: Ticket,
        mail: ParsedEmail,
        raw: RawMessage,
        *,
        kind: str,
        now: datetime,
        internal: bool = False,
    ) -> Message:
        """Store an inbound mail on `ticket`: the message, its attachments and its references."""
        message_id = mail.message_id or f"{raw.dedupe_key[:32]}@no-message-id.invalid"
        if session.scalar(select(Message.id).where(Message.message_id == message_id)) is not None:
            # A different mail reusing a Message-ID (the raw queue kept both): store it under its own id.
            message_id = f"{message_id}#{raw.id}"
        message = Message(
            ticket_id=ticket.id,
            direction="in",
            kind=kind,
            message_id=message_id[:998],
            in_reply_to=mail.in_reply_to[0][:998] if mail.in_reply_to else None,
            references=list(mail.references)[-50:],
            from_addr=mail.sender,
            from_name=mail.from_.name[:300] if mail.from_ else "",
            to_addrs=[a.addr for a in mail.to],
            cc_addrs=[a.addr for a in mail.cc],
            subject=mail.subject,
            text=mail.text,
            new_text=mail.new_text,
            internal=internal,
            language=mail.language,
            sent_at=mail.date,
            created_at=now,
            raw_id=raw.id,
        )
        session.add(message)
        session.flush()
        for att in mail.attachments:
            session.add(
                Attachment(
                    message_id=message.id,
                    filename=att.filename,
                    content_type=att.content_type,
                    size=att.size,
                    sha256=att.sha256,
                    content=att.content,
                    omitted=att.omitted,
                )
            )
        for ref in dict.fromkeys(mail.references_all):
            session.add(MessageRef(ticket_id=ticket.id, ref=ref[:998]))
        ticket.updated_at = now
        return message

    # -- status ------------------------------------------------------------------------------

    def set_status(
        self,
        session: Session,
        ticket: Ticket,
        new: TicketStatus,
        actor: str,
        *,
        now: datetime,
        reason: str = "",
    ) -> bool:
        old = ticket.status
        if old is new:
            return False
        ticket.status = new
        ticket.updated_at = now
        if new is TicketStatus.RESOLVED:
            ticket.resolved_at = now
        elif new is TicketStatus.CLOSED:
            ticket.closed_at = now
        elif old in (TicketStatus.RESOLVED, TicketStatus.CLOSED):
            ticket.resolved_at = None
            ticket.closed_at = None
        self.event(session, ticket, "status", actor, now=now, old=old.value, new=new.value, reason=reason)
        log.info("STATUS #%d %s -> %s by=%s %s", ticket.id, old.value, new.value, actor, reason)
        return True

    # -- mail to the requester -----------------------------------------------------------------

    def requester_thread(self, session: Session, ticket: Ticket) -> tuple[str | None, tuple[str, ...]]:
        """(In-Reply-To, References) for a mail into the requester's thread: after its newest mail."""
        last = session.scalars(
            select(Message)
            .where(Message.ticket_id == ticket.id, Message.internal.is_(False))
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
        if last is None:
            return None, ()
        return last.message_id, tuple(thread_references(last.references, last.message_id))

    def mail_requester(
        self,
        session: Session,
        ticket: Ticket,
        template: str,
        *,
        now: datetime,
        kind: str,
        automatic: bool,
        context: dict[str, Any] | None = None,
        reply_to_message: Message | None = None,
        to: tuple[str, str] | None = None,
        from_name: str | None = None,
    ) -> OutboxMessage | None:
        """Write a templated mail into the requester's thread; None when the automatic limit says no."""
        recipient = to or (ticket.requester_name, ticket.requester)
        if not recipient[1]:
            return None
        if automatic and not automatic_allowed(session, recipient[1], now, self.outgoing):
            self.event(
                session,
                ticket,
                "mail_suppressed",
                "system",
                now=now,
                reason=f"{kind} to {recipient[1]} not sent: more than "
                f"{self.outgoing.auto_reply_limit_per_hour} automatic mails to that address in the last hour",
            )
            log.info("SUPPRESSED %s #%d to=%s (hourly automatic-mail limit)", kind, ticket.id, recipient[1])
            return None
        if reply_to_message is not None:
            in_reply_to: str | None = reply_to_message.message_id
            references = tuple(thread_references(reply_to_message.references, reply_to_message.message_id))
        else:
            in_reply_to, references = self.requester_thread(session, ticket)
        body = self.renderer.render(
            template,
            ticket.language,
            ticket=_TicketView.of(ticket),
            requester_name=ticket.requester_name,
            helpdesk_name=self.identity.name,
            **(context or {}),
        )
        draft = Draft(
            to=(recipient,),
            subject=tagged_subject(ticket.id, ticket.subject),
            body=body,
            language=self.renderer.language_for(ticket.language),
            reply_to=self.identity.plus_address(ticket_token(self.identity.secret, ticket.id)),
            in_reply_to=in_reply_to,
            references=references,
            automatic=automatic,
            ticket=ticket.id,
            from_name=from_name,
        )
        row = enqueue(session, self.identity, self.outgoing, draft, kind=kind, now=now)
        log.info("QUEUED %s #%d to=%s outbox=%d", kind, ticket.id, recipient[1], row.id)
        return row


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
