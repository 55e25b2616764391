"""Ticket operations shared by the pipeline, technician commands, the SLA timer and the CLI.

Every change to a ticket goes through here so that it is logged as an event with who and why,
and so that the mail it causes is written to the outbox in the same transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from intake.authentication import SenderAuth
from intake.config import IntakeConfig
from intake.parse import Address, ParsedEmail
from models import tables
from models.message import Message
from models.raw_message import RawMessage
from models.ticket import Participant, Priority, Ticket, TicketStatus
from notify.budget import Budgets, Decision, LogThrottle
from notify.compose import Draft, tagged_subject, thread_references
from notify.config import LimitsConfig, MailIdentity, OutgoingConfig
from notify.outbox import QueuedMail, enqueue
from notify.render import Renderer
from notify.tokens import ticket_token
from routing.facts import RoutingResult

log = logging.getLogger("helpdesk.desk")
_throttled = LogThrottle(log)

# Statements of the hot path, built once: each mail runs them, and building a statement costs
# more than running it on SQLite.
_INSERT_EVENT = insert(tables.ticket_events)
_INSERT_PARTICIPANT = insert(tables.participants)
_INSERT_MESSAGE = insert(tables.messages).returning(tables.messages.c.id)
_INSERT_ATTACHMENT = insert(tables.attachments)
_INSERT_REF = insert(tables.message_refs)
_FIND_PARTICIPANT = select(tables.participants.c.id, tables.participants.c.notify).where(
    tables.participants.c.ticket_id == bindparam("ticket_id"),
    tables.participants.c.address == bindparam("address"),
)
_FIND_MESSAGE_ID = select(tables.messages.c.id).where(tables.messages.c.message_id == bindparam("message_id"))
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


@dataclass(frozen=True)
class StoredMessage:
    """A message row as the rest of the pipeline needs it: to point events at it and to answer it."""

    id: int
    message_id: str
    references: tuple[str, ...]


SUBJECT_MAX = 500


@dataclass
class Desk:
    identity: MailIdentity
    intake: IntakeConfig
    outgoing: OutgoingConfig
    renderer: Renderer = field(default_factory=Renderer)
    on_outbox: Callable[[], None] | None = None  # wakes the sender after commit
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    budgets: Budgets = field(init=False)

    def __post_init__(self) -> None:
        self.budgets = Budgets(self.limits, self.outgoing.auto_reply_limit_per_hour)

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
        message: StoredMessage | None = None,
    ) -> None:
        session.execute(
            _INSERT_EVENT,
            {
                "ticket_id": ticket.id,
                "at": now,
                "actor": actor[:320],
                "kind": kind,
                "old": old,
                "new": new,
                "reason": reason,
                "data": data or {},
                "message_id": message.id if message is not None else None,
            },
        )

    def participant(
        self, session: Session, ticket: Ticket, address: str, name: str, role: str, *, notify: bool = True
    ) -> None:
        """Put `address` on the ticket (once); a later mail from a silent Cc makes them get status mail."""
        address = address.lower()
        found = (
            session.connection()
            .execute(_FIND_PARTICIPANT, {"ticket_id": ticket.id, "address": address})
            .first()
        )
        if found is not None:
            if notify and not found.notify:
                session.execute(update(Participant).where(Participant.id == found.id).values(notify=True))
            return
        session.execute(
            _INSERT_PARTICIPANT,
            [
                {
                    "ticket_id": ticket.id,
                    "address": address,
                    "name": name[:300],
                    "role": role,
                    "notify": notify,
                }
            ],
        )

    def is_participant(self, session: Session, ticket_id: int, address: str) -> bool:
        found = session.scalar(
            select(Participant.id).where(
                Participant.ticket_id == ticket_id, Participant.address == address.lower()
            )
        )
        return found is not None

    # -- inbound mail ------------------------------------------------------------------------

    def open_ticket(
        self,
        session: Session,
        mail: ParsedEmail,
        *,
        now: datetime,
        tags: list[str],
        routing: RoutingResult | None = None,
        follow_up_of: int | None = None,
    ) -> Ticket:
        """A new ticket for `mail`, already routed, with its requester and the people in Cc on it."""
        sender = mail.from_ or Address("", "")
        ticket = Ticket(
            subject=mail.subject[:SUBJECT_MAX],
            status=TicketStatus.NEW,
            requester=sender.addr,
            requester_name=sender.name[:300],
            language=mail.language,
            tags=sorted({*tags, *(routing.tags if routing else ())}),
            created_at=now,
            updated_at=now,
            follow_up_of=follow_up_of,
        )
        if routing is not None:
            ticket.category = routing.category.value
            ticket.priority = Priority(routing.priority.value)
            ticket.routing = routing.as_dict()
            ticket.assignee = routing.assignee
        session.add(ticket)
        session.flush()  # the ticket number: every other row points at it
        people = (
            {
                sender.addr: {
                    "ticket_id": ticket.id,
                    "address": sender.addr,
                    "name": sender.name[:300],
                    "role": "requester",
                    "notify": True,
                }
            }
            if sender.addr
            else {}
        )
        for cc in (*mail.to, *mail.cc):
            if cc.addr not in people and not self.identity.is_ours(cc.addr):
                people[cc.addr] = {
                    "ticket_id": ticket.id,
                    "address": cc.addr,
                    "name": cc.name[:300],
                    "role": "cc",
                    "notify": False,
                }
        if people:
            session.connection().execute(_INSERT_PARTICIPANT, list(people.values()))
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
    ) -> StoredMessage:
        """Store an inbound mail on `ticket`: the message, its attachments and its references."""
        message_id = mail.message_id or f"{raw.dedupe_key[:32]}@no-message-id.invalid"
        if session.connection().execute(_FIND_MESSAGE_ID, {"message_id": message_id}).first() is not None:
            # A different mail reusing a Message-ID (the raw queue kept both): store it under its own id.
            message_id = f"{message_id}#{raw.id}"
        references = list(mail.references)[-50:]
        row_id = session.execute(
            _INSERT_MESSAGE,
            {
                "ticket_id": ticket.id,
                "direction": "in",
                "kind": kind,
                "message_id": message_id[:998],
                "in_reply_to": mail.in_reply_to[0][:998] if mail.in_reply_to else None,
                "references": references,
                "from_addr": mail.sender,
                "from_name": mail.from_.name[:300] if mail.from_ else "",
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
                _INSERT_REF, [{"ticket_id": ticket.id, "ref": ref[:998]} for ref in refs]
            )
        if mail.omitted:
            # The parser's per-mail caps left these out; the counts say how much (the raw mail keeps all).
            counts = ", ".join(f"{count} {what}" for what, count in sorted(mail.omitted.items()))
            session.execute(
                _INSERT_EVENT,
                {
                    "ticket_id": ticket.id,
                    "at": now,
                    "actor": "system",
                    "kind": "omitted",
                    "old": None,
                    "new": None,
                    "reason": f"over the per-mail limits, not recorded: {counts}",
                    "data": dict(mail.omitted),
                    "message_id": row_id,
                },
            )
        if ticket.updated_at != now:  # a ticket opened this instant needs no UPDATE
            ticket.updated_at = now
        return StoredMessage(row_id, message_id, tuple(references))

    def internal_note(
        self, session: Session, ticket: Ticket, text: str, *, author: str, now: datetime
    ) -> None:
        """An internal note on the ticket: kept with its messages, never sent to the requester."""
        session.connection().execute(
            _INSERT_MESSAGE,
            {
                "ticket_id": ticket.id,
                "direction": "in",
                "kind": "note",
                "message_id": f"note.{uuid.uuid4().hex}@{self.identity.domain}",
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
        kind: str,
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
        kind: str,
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
                self.event(
                    session,
                    ticket,
                    "mail_suppressed",
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
