"""Staff replies: technicians and coordinators work tickets by mail, commands at the top, the rest relayed.

A reply is accepted only when it carries a valid staff token (the Reply-To of a mail the desk
sent about the ticket) and its From is the person that token was made for: a technician with a
"w" token naming them, a coordinator with a "c" token naming them (never with a technician's).
The roster is read on every use, so a technician or coordinator set inactive is refused at once,
and a token older than `[security] token_lifetime` is refused with a mail that carries a fresh
one. Anything else from staff is logged, answered with one polite refusal (automatic mail, so
within the hourly limit), and changes nothing: a forged From with a real token, a real From
without one, an inactive person's or an expired token.

The commands (`tickets.commands`, parsed by `tickets.reply_parsing`) are all checked before any
is applied: one unknown or malformed line and nothing changes; the technician gets a reply that
says which line and why. The rest of the reply, quotes and signature removed, goes to the
requester in their thread, signed with the technician's name; `#note` stays internal.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.mail import ParsedEmail
from models.message import MessageKind
from models.outbox import OutboxKind, OutboxMessage
from models.raw_message import RawMessage
from models.ticket import EventKind, Ticket
from notify.config import TokenConfig
from notify.tokens import Token, TokenKind
from tickets.assignment import Assignment
from tickets.commands import BY_NAME, COMMAND_HELP, Checks, Work
from tickets.events import record_event
from tickets.messages import record_inbound
from tickets.reply_parsing import parse_reply
from tickets.roster import (
    coordinator_by_email,
    coordinator_by_id,
    staff,
    technician_by_email,
    technician_by_id,
)

log = logging.getLogger("helpdesk.commands")

MISMATCH = "its sender does not match the person the reply address was made for"
# Staff tokens made before tokens carried a day are dated by the newest mail of ours that carried
# them; this many of our newest mails to that person about the ticket are looked through.
LEGACY_TOKEN_SCAN = 50
# The mail that tells the requester of a status change a reply did not carry.
NOTICE_TEMPLATES = {
    OutboxKind.WAITING: "requester_waiting",
    OutboxKind.RESOLVED: "requester_resolved",
    OutboxKind.REOPENED: "requester_reopened",
}


@dataclass(frozen=True)
class StaffMail:
    """A person's mail on a ticket, as the pipeline hands it over: perhaps from staff."""

    mail: ParsedEmail
    raw: RawMessage
    token: Token | None  # the verified token of ours it came through, if any
    # Why `[security] require_authenticated_staff` refuses its sender; empty when it does not.
    unproven: str = ""


@dataclass(frozen=True)
class Actor:
    email: str
    name: str
    language: str
    technician_id: int | None
    coordinator: bool


@dataclass(frozen=True)
class Refusal:
    """Why a staff mail changes nothing, and what its refusal mail says."""

    why: str
    inactive: bool = False
    renew: Token | None = None  # a fresh token for the verified holder of an expired one


class StaffReplies:
    """Mail from technicians and coordinators on an existing ticket: verified, then worked or refused."""

    def __init__(
        self, assignment: Assignment, categories: Collection[str], tokens: TokenConfig | None = None
    ) -> None:
        self.assignment = assignment
        self.mailer = assignment.mailer
        self.categories = frozenset(categories)
        self.tokens = tokens or TokenConfig()

    def handle(self, session: Session, ticket: Ticket, staff_mail: StaffMail, *, now: datetime) -> bool:
        """Work or refuse `staff_mail` when it is staff's; False when it is someone else's to handle."""
        token, sender = staff_mail.token, staff_mail.mail.sender
        if token is None or not token.kind.staff:
            staff_member = technician_by_email(session, sender) if sender else None
            coordinator = coordinator_by_email(session, sender) if sender else None
            if (staff_member is not None or coordinator is not None) and sender != ticket.requester:
                why = "it does not come through the reply address of your assignment mail"
                self._refuse(session, ticket, staff_mail.mail, Refusal(why), now=now)
                return True
            return False
        verdict = self._verify(session, staff_mail.mail, token, now=now)
        if isinstance(verdict, Refusal):
            self._refuse(session, ticket, staff_mail.mail, verdict, now=now)
            return True
        # [security] require_authenticated_staff: a From can be forged, a DKIM-signed one cannot.
        if staff_mail.unproven:
            self._refuse(session, ticket, staff_mail.mail, Refusal(staff_mail.unproven), now=now)
            return True
        self._work(session, ticket, staff_mail, verdict, token, now=now)
        return True

    def _verify(self, session: Session, mail: ParsedEmail, token: Token, *, now: datetime) -> Actor | Refusal:
        """The person `token` was made for, if they sent this mail and the desk trusts them now."""
        sender = mail.sender
        if token.who is None or not sender:
            return Refusal(MISMATCH)
        if token.kind is TokenKind.COORDINATOR:
            found = coordinator_by_id(session, token.who)
            if found is None or found[0].email.lower() != sender:
                return Refusal(MISMATCH)
            coord, active = found
            if not active:
                return Refusal("you are not an active coordinator of this desk any more", inactive=True)
            actor = Actor(coord.email, coord.name, coord.language, None, True)
        else:
            member = technician_by_id(session, token.who)
            if member is None or member.email != sender:
                return Refusal(MISMATCH)
            tech = member.technician
            if not tech.active:
                return Refusal("you are not an active technician of this desk any more", inactive=True)
            actor = Actor(
                tech.email, tech.name, tech.languages[0] if tech.languages else "en", member.id, False
            )
        if self._expired(session, token, actor.email, now=now):
            days = self.tokens.lifetime / 86400
            return Refusal(
                f"the reply address it was sent to has expired (staff reply addresses last {days:g} days; "
                "use the newest mail about the ticket)",
                renew=token.renewed(now),
            )
        return actor

    def _expired(self, session: Session, token: Token, email: str, *, now: datetime) -> bool:
        if token.issued is not None:
            return token.expired(now, self.tokens.lifetime)
        # Made before tokens carried a day: as old as the newest mail of ours that carried it in its
        # Reply-To (refusals carry none). Not found among our recent mail to them: too old to tell.
        address = f"+{token.text(self.mailer.identity.secret)}@".encode()
        rows = session.execute(
            select(OutboxMessage.created_at, OutboxMessage.data)
            .where(OutboxMessage.ticket_id == token.number, OutboxMessage.recipient == email)
            .order_by(OutboxMessage.id.desc())
            .limit(LEGACY_TOKEN_SCAN)
        )
        for created_at, data in rows:
            if address in bytes(data):
                return (now - created_at).total_seconds() > self.tokens.lifetime
        return True

    def _refuse(
        self, session: Session, ticket: Ticket, mail: ParsedEmail, refusal: Refusal, *, now: datetime
    ) -> None:
        why, identity = refusal.why, self.mailer.identity
        log.warning("REFUSED #%d mail from %s: %s", ticket.id, mail.sender or "?", why)
        record_event(
            session,
            ticket,
            EventKind.REFUSED,
            mail.sender or "?",
            now=now,
            reason=f"staff mail refused: {why}",
        )
        if mail.sender:
            # Only a refusal to the verified holder of an expired token carries a fresh one: it goes
            # to the roster address the token was made for, which nobody else reads.
            renew = refusal.renew
            self.mailer.mail(
                session,
                ticket,
                "refusal",
                to=(mail.from_.name if mail.from_ else "", mail.sender),
                language=mail.language,
                reply_to=identity.plus_address(renew.text(identity.secret))
                if renew is not None
                else identity.address,
                now=now,
                kind=OutboxKind.REFUSAL,
                automatic=True,
                context={"why": why, "renew": renew is not None, "inactive": refusal.inactive},
                in_reply_to=mail.message_id,
            )

    def _work(
        self,
        session: Session,
        ticket: Ticket,
        staff_mail: StaffMail,
        actor: Actor,
        token: Token,
        *,
        now: datetime,
    ) -> None:
        mail, mailer, identity = staff_mail.mail, self.mailer, self.mailer.identity
        technicians = {m.email for m in staff(session) if m.technician.active}
        parsed = parse_reply(mail.new_text, Checks(self.categories, technicians, identity.is_ours))
        stored = record_inbound(
            session, ticket, mail, staff_mail.raw, kind=MessageKind.TECHNICIAN, now=now, internal=True
        )
        if parsed.errors:
            errors = "; ".join(str(e) for e in parsed.errors)
            record_event(
                session,
                ticket,
                EventKind.COMMANDS_REFUSED,
                actor.email,
                now=now,
                reason=errors,
                message_id=stored.id,
            )
            log.info("COMMANDS REFUSED #%d from %s: %s", ticket.id, actor.email, errors)
            mailer.mail(
                session,
                ticket,
                "command_error",
                to=(actor.name, actor.email),
                language=actor.language,
                reply_to=identity.plus_address(token.renewed(now).text(identity.secret)),
                now=now,
                kind=OutboxKind.COMMAND_ERROR,
                automatic=False,
                context={"errors": parsed.errors, "help": COMMAND_HELP},
                in_reply_to=stored.message_id,
            )
            return
        work = Work(session, ticket, actor.email, now, identity.domain, self.assignment)
        for command in parsed.commands:
            work.line = command.line
            BY_NAME[command.name].apply(command.arg, work)
        for step in work.after:
            step()
        if parsed.public_text:
            mailer.mail_requester(
                session,
                ticket,
                "relay",
                now=now,
                kind=OutboxKind.RELAY,
                automatic=False,
                context={
                    "text": parsed.public_text,
                    "technician_name": actor.name,
                    "notices": work.notices,
                    "ticket_resolution": ticket.resolution or "",
                },
                from_name=f"{actor.name} ({identity.name})",
            )
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            record_event(
                session,
                ticket,
                EventKind.REPLIED,
                actor.email,
                now=now,
                reason="reply relayed to the requester",
                message_id=stored.id,
            )
            work.notices.clear()
        for notice in work.notices:  # status changes without a reply of their own get a short mail each
            mailer.mail_requester(
                session,
                ticket,
                NOTICE_TEMPLATES[notice],
                now=now,
                kind=notice,
                automatic=True,
                context={"resolution": ticket.resolution or ""},
            )
        log.info(
            "WORKED #%d by %s: %s%s",
            ticket.id,
            actor.email,
            " ".join(c.line for c in parsed.commands) or "-",
            " + reply" if parsed.public_text else "",
        )
