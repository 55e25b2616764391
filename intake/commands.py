"""Technicians work tickets by replying to mail: commands at the top, the rest goes to the requester.

A reply is accepted only when it carries a valid staff token (the Reply-To of a mail the desk
sent about the ticket) and its From is the person that token was made for: a technician with a
"w" token naming them, a coordinator with a "c" token naming them (never with a technician's).
The roster is read on every use, so a technician or coordinator set inactive is refused at once,
and a token older than `[security] token_lifetime` is refused with a mail that carries a fresh
one. Anything else from staff is logged, answered with one polite refusal (automatic mail, so
within the hourly limit), and changes nothing: a forged From with a real token, a real From
without one, an inactive person's or an expired token.

Commands are lines of their own at the top of the reply (blank lines between them are fine):

    #status open|in_progress|waiting    #priority low|normal|high|urgent    #category NAME
    #assign EMAIL    #escalate REASON    #note TEXT    #resolve RESOLUTION    #close
    #add EMAIL       (someone not on the ticket joins it and gets its mail, as the requester does)

They are all checked before any is applied: one unknown or malformed line and nothing changes;
the technician gets a reply that says which line and why. The rest of the reply, quotes and
signature removed, goes to the requester in their thread, signed with the technician's name;
`#note` stays internal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select

from intake.authentication import staff_refusal
from intake.errors import CommandError
from intake.roster import (
    coordinator_by_email,
    coordinator_by_id,
    staff,
    technician_by_email,
    technician_by_id,
)
from models.message import Message, MessageKind
from models.outbox import OutboxMessage
from models.ticket import Priority, Ticket, TicketStatus
from notify.config import TokenConfig
from notify.tokens import Token
from routing.shifts import is_on_shift

if TYPE_CHECKING:
    from intake.assignment import Assignment
    from intake.pipeline import Context, Services

log = logging.getLogger("helpdesk.commands")

_COMMAND = re.compile(r"^#([A-Za-z_]+)(?:[ \t]+(.*))?$")
SETTABLE_STATUSES = ("open", "in_progress", "waiting")
COMMAND_HELP = (
    "#status open|in_progress|waiting",
    "#priority low|normal|high|urgent",
    "#category CATEGORY",
    "#assign EMAIL",
    "#escalate REASON",
    "#note TEXT          (internal, never sent to the requester)",
    "#resolve RESOLUTION (a resolution note is required)",
    "#close",
    "#add EMAIL          (that address joins the ticket and gets its mail, as the requester does)",
)
# One address, bare or in angle brackets: no display name, no list, nothing that is not an address.
_ADDRESS = re.compile(r"^<?([^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+)>?$")


@dataclass(frozen=True)
class Command:
    name: str
    arg: str
    line_number: int
    line: str


@dataclass(frozen=True)
class ParsedReply:
    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    public_text: str  # what goes to the requester


def parse_reply(
    text: str,
    *,
    categories: Collection[str],
    is_technician: set[str] | None = None,
    is_ours: Callable[[str], bool] = lambda address: False,
) -> ParsedReply:
    """Split a technician's reply into its commands (checked) and the text for the requester."""
    lines = text.replace("\r\n", "\n").split("\n")
    commands: list[Command] = []
    errors: list[CommandError] = []
    body_from = len(lines)
    for index, raw_line in enumerate(lines):
        line = raw_line.strip()
        if not line:
            continue
        match = _COMMAND.match(line)
        if match is None:
            body_from = index
            break
        name, arg = match.group(1).lower(), (match.group(2) or "").strip()
        command = Command(name, arg, index + 1, line)
        why = _check(command, categories, is_technician, is_ours)
        if why:
            errors.append(CommandError(index + 1, line, why))
        else:
            commands.append(command)
    public = "\n".join(lines[body_from:]).strip()
    return ParsedReply(tuple(commands), tuple(errors), public)


def added_address(arg: str) -> str | None:
    """The address of `#add EMAIL`, lower-cased; None when the argument is not one address."""
    match = _ADDRESS.match(arg.strip())
    return match.group(1).lower() if match else None


def _check(
    command: Command,
    categories: Collection[str],
    technicians: set[str] | None,
    is_ours: Callable[[str], bool],
) -> str:
    name, arg = command.name, command.arg
    if name == "status":
        if arg.lower() not in SETTABLE_STATUSES:
            return f"#status takes one of {', '.join(SETTABLE_STATUSES)} (resolve with #resolve, close with #close)"
    elif name == "priority":
        if arg.lower() not in {p.value for p in Priority}:
            return f"#priority takes one of {', '.join(p.value for p in Priority)}"
    elif name == "category":
        if arg.lower() not in categories:
            return f"unknown category {arg!r}; known: {', '.join(sorted(categories))}"
    elif name == "assign":
        if "@" not in arg:
            return "#assign takes a technician's email address"
        if technicians is not None and arg.lower() not in technicians:
            return f"{arg} is not an active technician"
    elif name == "escalate":
        if not arg:
            return "#escalate needs a reason, e.g. #escalate needs a network specialist"
    elif name == "note":
        if not arg:
            return "#note needs the text of the note on the same line"
    elif name == "resolve":
        if not arg:
            return "#resolve needs a resolution note, e.g. #resolve replaced the toner cartridge"
    elif name == "close":
        if arg:
            return "#close takes nothing after it"
    elif name == "add":
        address = added_address(arg)
        if address is None:
            return "#add takes one email address, e.g. #add colleague@example.com"
        if is_ours(address):
            return f"{address} is the helpdesk's own address"
    else:
        return f"unknown command #{name}; the commands are: {', '.join(c.split()[0] for c in COMMAND_HELP)}"
    return ""


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


MISMATCH = "its sender does not match the person the reply address was made for"
# Staff tokens made before tokens carried a day are dated by the newest mail of ours that carried
# them; this many of our newest mails to that person about the ticket are looked through.
LEGACY_TOKEN_SCAN = 50


class TechnicianReplies:
    """The pipeline's handler for mail from staff on an existing ticket."""

    def __init__(
        self, assignment: Assignment, categories: Collection[str], tokens: TokenConfig | None = None
    ) -> None:
        self.assignment = assignment
        self.categories = frozenset(categories)
        self.tokens = tokens or TokenConfig()

    def handle(self, ctx: Context, services: Services) -> bool:
        ticket, mail = ctx.ticket, ctx.parsed
        if ticket is None:
            return False
        token = ctx.match.token if ctx.match is not None else None
        sender = mail.sender
        staff_member = technician_by_email(ctx.session, sender) if sender else None
        coordinator = coordinator_by_email(ctx.session, sender) if sender else None
        if token is None or token.kind not in ("w", "c"):
            if (staff_member is not None or coordinator is not None) and sender != ticket.requester:
                why = "it does not come through the reply address of your assignment mail"
                self._refuse(ctx, services, Refusal(why))
                return True
            return False
        verdict = self._verify(ctx, services, token)
        if isinstance(verdict, Refusal):
            self._refuse(ctx, services, verdict)
            return True
        # [security] require_authenticated_staff: a From can be forged, a DKIM-signed one cannot.
        unproven = (
            staff_refusal(services.authenticator.config, ctx.auth, sender) if services.authenticator else ""
        )
        if unproven:
            self._refuse(ctx, services, Refusal(unproven))
            return True
        self._work(ctx, services, ticket, verdict, token)
        return True

    def _verify(self, ctx: Context, services: Services, token: Token) -> Actor | Refusal:
        """The person `token` was made for, if they sent this mail and the desk trusts them now."""
        sender = ctx.parsed.sender
        if token.who is None or not sender:
            return Refusal(MISMATCH)
        if token.kind == "c":
            found = coordinator_by_id(ctx.session, token.who)
            if found is None or found[0].email.lower() != sender:
                return Refusal(MISMATCH)
            coord, active = found
            if not active:
                return Refusal("you are not an active coordinator of this desk any more", inactive=True)
            actor = Actor(coord.email, coord.name, coord.language, None, True)
        else:
            member = technician_by_id(ctx.session, token.who)
            if member is None or member.email != sender:
                return Refusal(MISMATCH)
            tech = member.technician
            if not tech.active:
                return Refusal("you are not an active technician of this desk any more", inactive=True)
            actor = Actor(
                tech.email, tech.name, tech.languages[0] if tech.languages else "en", member.id, False
            )
        if self._expired(ctx, token, actor.email, services.desk.identity.secret):
            days = self.tokens.lifetime / 86400
            return Refusal(
                f"the reply address it was sent to has expired (staff reply addresses last {days:g} days; "
                "use the newest mail about the ticket)",
                renew=token.renewed(ctx.now),
            )
        return actor

    def _expired(self, ctx: Context, token: Token, email: str, secret: str) -> bool:
        if token.issued is not None:
            return token.expired(ctx.now, self.tokens.lifetime)
        # Made before tokens carried a day: as old as the newest mail of ours that carried it in its
        # Reply-To (refusals carry none). Not found among our recent mail to them: too old to tell.
        address = f"+{token.text(secret)}@".encode()
        rows = ctx.session.execute(
            select(OutboxMessage.created_at, OutboxMessage.data)
            .where(OutboxMessage.ticket_id == token.number, OutboxMessage.recipient == email)
            .order_by(OutboxMessage.id.desc())
            .limit(LEGACY_TOKEN_SCAN)
        )
        for created_at, data in rows:
            if address in bytes(data):
                return (ctx.now - created_at).total_seconds() > self.tokens.lifetime
        return True

    def _refuse(self, ctx: Context, services: Services, refusal: Refusal) -> None:
        ticket, mail, desk = ctx.ticket, ctx.parsed, services.desk
        assert ticket is not None
        why = refusal.why
        log.warning("REFUSED #%d mail from %s: %s", ticket.id, mail.sender or "?", why)
        desk.event(
            ctx.session,
            ticket,
            "refused",
            mail.sender or "?",
            now=ctx.now,
            reason=f"staff mail refused: {why}",
        )
        if mail.sender and ctx.automation.kind.answerable:
            # Only a refusal to the verified holder of an expired token carries a fresh one: it goes
            # to the roster address the token was made for, which nobody else reads.
            renew = refusal.renew
            desk.mail(
                ctx.session,
                ticket,
                "refusal",
                to=(mail.from_.name if mail.from_ else "", mail.sender),
                language=mail.language,
                reply_to=desk.identity.plus_address(renew.text(desk.identity.secret))
                if renew is not None
                else desk.identity.address,
                now=ctx.now,
                kind="refusal",
                automatic=True,
                context={"why": why, "renew": renew is not None, "inactive": refusal.inactive},
                in_reply_to=mail.message_id,
            )

    def _work(self, ctx: Context, services: Services, ticket: Ticket, actor: Actor, token: Token) -> None:
        desk, mail, session, now = services.desk, ctx.parsed, ctx.session, ctx.now
        technicians = {m.email for m in staff(session) if m.technician.active}
        parsed = parse_reply(
            mail.new_text,
            categories=self.categories,
            is_technician=technicians,
            is_ours=desk.identity.is_ours,
        )
        stored = desk.record_inbound(
            session, ticket, mail, ctx.raw, kind=MessageKind.TECHNICIAN, now=now, internal=True
        )
        if parsed.errors:
            desk.event(
                session,
                ticket,
                "commands_refused",
                actor.email,
                now=now,
                reason="; ".join(str(e) for e in parsed.errors),
                message=stored,
            )
            log.info(
                "COMMANDS REFUSED #%d from %s: %s", ticket.id, actor.email, "; ".join(map(str, parsed.errors))
            )
            desk.mail(
                session,
                ticket,
                "command_error",
                to=(actor.name, actor.email),
                language=actor.language,
                reply_to=desk.identity.plus_address(token.renewed(now).text(desk.identity.secret)),
                now=now,
                kind="command_error",
                automatic=False,
                context={"errors": parsed.errors, "help": COMMAND_HELP},
                in_reply_to=stored.message_id,
            )
            return
        notices: list[str] = []
        for command in parsed.commands:
            self._apply(ctx, services, ticket, actor, command, notices)
        if parsed.public_text:
            desk.mail_requester(
                session,
                ticket,
                "relay",
                now=now,
                kind="relay",
                automatic=False,
                context={
                    "text": parsed.public_text,
                    "technician_name": actor.name,
                    "notices": notices,
                    "ticket_resolution": ticket.resolution or "",
                },
                from_name=f"{actor.name} ({desk.identity.name})",
            )
            if ticket.first_response_at is None:
                ticket.first_response_at = now
            desk.event(
                session,
                ticket,
                "replied",
                actor.email,
                now=now,
                reason="reply relayed to the requester",
                message=stored,
            )
            notices.clear()
        for notice in notices:  # status changes without a reply of their own get a short mail each
            self._notify(ctx, services, ticket, notice)
        log.info(
            "WORKED #%d by %s: %s%s",
            ticket.id,
            actor.email,
            " ".join(c.line for c in parsed.commands) or "-",
            " + reply" if parsed.public_text else "",
        )

    def _apply(
        self,
        ctx: Context,
        services: Services,
        ticket: Ticket,
        actor: Actor,
        command: Command,
        notices: list[str],
    ) -> None:
        desk, session, now = services.desk, ctx.session, ctx.now
        name, arg = command.name, command.arg
        if name == "status":
            new = TicketStatus(arg.lower())
            was_done = ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
            if desk.set_status(session, ticket, new, actor.email, now=now, reason=command.line):
                if new is TicketStatus.WAITING:
                    notices.append("waiting")
                elif was_done:
                    notices.append("reopened")
        elif name == "priority":
            old = ticket.priority
            ticket.priority = Priority(arg.lower())
            desk.event(
                session,
                ticket,
                "priority",
                actor.email,
                now=now,
                old=old.value,
                new=ticket.priority.value,
                reason="set by hand",
            )
        elif name == "category":
            old_category = ticket.category
            ticket.category = arg.lower()
            # A correction: the label the next retrain learns from.
            desk.event(
                session,
                ticket,
                "category",
                actor.email,
                now=now,
                old=old_category,
                new=ticket.category,
                reason="corrected by hand",
            )
        elif name == "assign":
            member = technician_by_email(session, arg)
            assert member is not None  # checked before anything was applied
            if not is_on_shift(member.technician, now):
                desk.event(
                    session,
                    ticket,
                    "assignment_note",
                    actor.email,
                    now=now,
                    reason=f"{member.email} is off shift now; assigned as asked",
                )
            self.assignment.give_to(
                session, ticket, member, now=now, actor=actor.email, reason=f"#assign by {actor.email}"
            )
        elif name == "escalate":
            self.assignment.escalate(session, ticket, now=now, actor=actor.email, reason=arg)
        elif name == "note":
            desk.event(session, ticket, "note", actor.email, now=now, reason=arg)
            desk.internal_note(session, ticket, arg, author=actor.email, now=now)
        elif name == "resolve":
            ticket.resolution = arg
            if desk.set_status(session, ticket, TicketStatus.RESOLVED, actor.email, now=now, reason=arg):
                notices.append("resolved")
        elif name == "close":
            desk.set_status(session, ticket, TicketStatus.CLOSED, actor.email, now=now, reason="#close")
        elif name == "add":
            # A participant gets the ticket's mail from now on; being added tells them nothing.
            address = added_address(arg)
            assert address is not None  # checked before anything was applied
            known_as = session.scalar(
                select(Message.from_name)
                .where(Message.ticket_id == ticket.id, Message.from_addr == address)
                .order_by(Message.id.desc())
                .limit(1)
            )
            desk.participant(session, ticket, address, known_as or "", "cc", notify=True)
            desk.event(
                session, ticket, "participant_added", actor.email, now=now, new=address, reason=command.line
            )
            log.info("ADDED #%d %s by=%s", ticket.id, address, actor.email)

    def _notify(self, ctx: Context, services: Services, ticket: Ticket, notice: str) -> None:
        template = {
            "waiting": "requester_waiting",
            "resolved": "requester_resolved",
            "reopened": "requester_reopened",
        }
        services.desk.mail_requester(
            ctx.session,
            ticket,
            template[notice],
            now=ctx.now,
            kind=notice,
            automatic=True,
            context={"resolution": ticket.resolution or ""},
        )
