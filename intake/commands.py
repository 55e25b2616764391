"""Technicians work tickets by replying to mail: commands at the top, the rest goes to the requester.

A reply is accepted only when it carries a valid work token (the Reply-To of the technician's
assignment mail) and its From is that technician or a coordinator. Anything else from staff is
logged, answered with one polite refusal, and changes nothing: a forged From with a real token,
or a real From without one.

Commands are lines of their own at the top of the reply (blank lines between them are fine):

    #status open|in_progress|waiting    #priority low|normal|high|urgent    #category NAME
    #assign EMAIL    #escalate REASON    #note TEXT    #resolve RESOLUTION    #close

They are all checked before any is applied: one unknown or malformed line and nothing changes;
the technician gets a reply that says which line and why. The rest of the reply, quotes and
signature removed, goes to the requester in their thread, signed with the technician's name;
`#note` stays internal.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from intake.authentication import staff_refusal
from intake.errors import CommandError
from intake.roster import coordinator_by_email, staff, technician_by_email, technician_by_id
from models.message import MessageKind
from models.ticket import Priority, Ticket, TicketStatus
from notify.tokens import Token
from routing.people import Coordinator
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
)


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
    text: str, *, categories: Collection[str], is_technician: set[str] | None = None
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
        why = _check(command, categories, is_technician)
        if why:
            errors.append(CommandError(index + 1, line, why))
        else:
            commands.append(command)
    public = "\n".join(lines[body_from:]).strip()
    return ParsedReply(tuple(commands), tuple(errors), public)


def _check(command: Command, categories: Collection[str], technicians: set[str] | None) -> str:
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


class TechnicianReplies:
    """The pipeline's handler for mail from staff on an existing ticket."""

    def __init__(self, assignment: Assignment, categories: Collection[str]) -> None:
        self.assignment = assignment
        self.categories = frozenset(categories)

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
                self._refuse(
                    ctx, services, "it does not come through the reply address of your assignment mail"
                )
                return True
            return False
        actor = self._verify(ctx, token.kind, token.who, coordinator)
        if actor is None:
            self._refuse(ctx, services, "its sender does not match the person the reply address was made for")
            return True
        # [security] require_authenticated_staff: a From can be forged, a DKIM-signed one cannot.
        unproven = (
            staff_refusal(services.authenticator.config, ctx.auth, sender) if services.authenticator else ""
        )
        if unproven:
            self._refuse(ctx, services, unproven)
            return True
        self._work(ctx, services, ticket, actor, token)
        return True

    def _verify(
        self, ctx: Context, kind: str, who: int | None, coordinator: tuple[int, Coordinator] | None
    ) -> Actor | None:
        sender = ctx.parsed.sender
        if coordinator is not None:
            coord = coordinator[1]
            return Actor(coord.email, coord.name, coord.language, None, True)
        if kind == "w" and who is not None:
            member = technician_by_id(ctx.session, who)
            if member is not None and member.email == sender:
                tech = member.technician
                return Actor(
                    tech.email, tech.name, tech.languages[0] if tech.languages else "en", member.id, False
                )
        return None

    def _refuse(self, ctx: Context, services: Services, why: str) -> None:
        ticket, mail, desk = ctx.ticket, ctx.parsed, services.desk
        assert ticket is not None
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
            desk.mail(
                ctx.session,
                ticket,
                "refusal",
                to=(mail.from_.name if mail.from_ else "", mail.sender),
                language=mail.language,
                reply_to=desk.identity.address,
                now=ctx.now,
                kind="refusal",
                automatic=True,
                context={"why": why},
                in_reply_to=mail.message_id,
            )

    def _work(self, ctx: Context, services: Services, ticket: Ticket, actor: Actor, token: Token) -> None:
        desk, mail, session, now = services.desk, ctx.parsed, ctx.session, ctx.now
        technicians = {m.email for m in staff(session) if m.technician.active}
        parsed = parse_reply(mail.new_text, categories=self.categories, is_technician=technicians)
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
                reply_to=desk.identity.plus_address(token.text(desk.identity.secret)),
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
