"""The commands staff put on lines of their own at the top of a reply: one small class each, one table.

    #status open|in_progress|waiting    #priority low|normal|high|urgent    #category NAME
    #assign EMAIL    #escalate REASON    #note TEXT    #resolve RESOLUTION    #close
    #add EMAIL       (someone not on the ticket joins it and gets its mail, as the requester does)
    #publish TITLE   (the resolution becomes a knowledge-base article; beside #resolve, or later)

Each command has a `name`, a `help` line (the command_error mail lists them), `check`, which says
what is wrong with its argument before anything is applied, and `apply`. `COMMANDS` lists them in
the order the help shows them: a new command is one class here and one entry in that table.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.message import Message
from models.outbox import OutboxKind
from models.ticket import DONE_STATUSES, EventKind, Priority, Ticket, TicketStatus
from routing.shifts import is_on_shift
from tickets.assignment import Assignment
from tickets.errors import KnowledgeError
from tickets.events import record_event
from tickets.knowledge import publish
from tickets.messages import internal_note
from tickets.participants import add_participant
from tickets.roster import technician_by_email
from tickets.status import SETTABLE_STATUSES, set_status

log = logging.getLogger("helpdesk.commands")

# One address, bare or in angle brackets: no display name, no list, nothing that is not an address.
_ADDRESS = re.compile(r"^<?([^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+)>?$")


@dataclass(frozen=True)
class Checks:
    """What checking a command line may consult: the desk's categories, technicians, own addresses."""

    categories: Collection[str]
    technicians: set[str] | None = None  # active technicians' addresses; None: not checked
    is_ours: Callable[[str], bool] = lambda address: False


@dataclass
class Work:
    """One staff reply being applied: the ticket, who acts, and the status news for the requester."""

    session: Session
    ticket: Ticket
    actor: str  # the acting technician's or coordinator's address
    now: datetime
    domain: str  # of the desk, for the Message-IDs of internal notes
    assignment: Assignment
    line: str = ""  # the command line being applied, as written
    # Status changes the requester is told of: in the relayed reply, or a short mail each.
    notices: list[OutboxKind] = field(default_factory=list)
    # What runs once every command of the reply is applied (#publish needs the #resolve beside it).
    after: list[Callable[[], None]] = field(default_factory=list)


class Command:
    name: ClassVar[str]
    help: ClassVar[str]

    def check(self, arg: str, checks: Checks) -> str:
        """Why `arg` will not do; empty when it will."""
        return ""

    def apply(self, arg: str, work: Work) -> None:
        raise NotImplementedError


def added_address(arg: str) -> str | None:
    """The address of `#add EMAIL`, lower-cased; None when the argument is not one address."""
    match = _ADDRESS.match(arg.strip())
    return match.group(1).lower() if match else None


class SetStatus(Command):
    name, help = "status", "#status open|in_progress|waiting"

    def check(self, arg: str, checks: Checks) -> str:
        if arg.lower() not in SETTABLE_STATUSES:
            return f"#status takes one of {', '.join(SETTABLE_STATUSES)} (resolve with #resolve, close with #close)"
        return ""

    def apply(self, arg: str, work: Work) -> None:
        new = TicketStatus(arg.lower())
        was_done = work.ticket.status in DONE_STATUSES
        if set_status(work.session, work.ticket, new, work.actor, now=work.now, reason=work.line):
            if new is TicketStatus.WAITING:
                work.notices.append(OutboxKind.WAITING)
            elif was_done:
                work.notices.append(OutboxKind.REOPENED)


class SetPriority(Command):
    name, help = "priority", "#priority low|normal|high|urgent"

    def check(self, arg: str, checks: Checks) -> str:
        if arg.lower() not in {p.value for p in Priority}:
            return f"#priority takes one of {', '.join(p.value for p in Priority)}"
        return ""

    def apply(self, arg: str, work: Work) -> None:
        ticket = work.ticket
        old = ticket.priority
        ticket.priority = Priority(arg.lower())
        record_event(
            work.session,
            ticket,
            EventKind.PRIORITY,
            work.actor,
            now=work.now,
            old=old.value,
            new=ticket.priority.value,
            reason="set by hand",
        )


class SetCategory(Command):
    name, help = "category", "#category CATEGORY"

    def check(self, arg: str, checks: Checks) -> str:
        if arg.lower() not in checks.categories:
            return f"unknown category {arg!r}; known: {', '.join(sorted(checks.categories))}"
        return ""

    def apply(self, arg: str, work: Work) -> None:
        ticket = work.ticket
        old = ticket.category
        ticket.category = arg.lower()
        # A correction: the label the next retrain learns from.
        record_event(
            work.session,
            ticket,
            EventKind.CATEGORY,
            work.actor,
            now=work.now,
            old=old,
            new=ticket.category,
            reason="corrected by hand",
        )


class Assign(Command):
    name, help = "assign", "#assign EMAIL"

    def check(self, arg: str, checks: Checks) -> str:
        if "@" not in arg:
            return "#assign takes a technician's email address"
        if checks.technicians is not None and arg.lower() not in checks.technicians:
            return f"{arg} is not an active technician"
        return ""

    def apply(self, arg: str, work: Work) -> None:
        member = technician_by_email(work.session, arg)
        assert member is not None  # checked before anything was applied
        if not is_on_shift(member.technician, work.now):
            record_event(
                work.session,
                work.ticket,
                EventKind.ASSIGNMENT_NOTE,
                work.actor,
                now=work.now,
                reason=f"{member.email} is off shift now; assigned as asked",
            )
        work.assignment.give_to(
            work.session,
            work.ticket,
            member,
            now=work.now,
            actor=work.actor,
            reason=f"#assign by {work.actor}",
        )


class Escalate(Command):
    name, help = "escalate", "#escalate REASON"

    def check(self, arg: str, checks: Checks) -> str:
        return "" if arg else "#escalate needs a reason, e.g. #escalate needs a network specialist"

    def apply(self, arg: str, work: Work) -> None:
        work.assignment.escalate(work.session, work.ticket, now=work.now, actor=work.actor, reason=arg)


class Note(Command):
    name, help = "note", "#note TEXT          (internal, never sent to the requester)"

    def check(self, arg: str, checks: Checks) -> str:
        return "" if arg else "#note needs the text of the note on the same line"

    def apply(self, arg: str, work: Work) -> None:
        record_event(work.session, work.ticket, EventKind.NOTE, work.actor, now=work.now, reason=arg)
        internal_note(work.session, work.ticket, arg, author=work.actor, domain=work.domain, now=work.now)


class Resolve(Command):
    name, help = "resolve", "#resolve RESOLUTION (a resolution note is required)"

    def check(self, arg: str, checks: Checks) -> str:
        return "" if arg else "#resolve needs a resolution note, e.g. #resolve replaced the toner cartridge"

    def apply(self, arg: str, work: Work) -> None:
        work.ticket.resolution = arg
        if set_status(work.session, work.ticket, TicketStatus.RESOLVED, work.actor, now=work.now, reason=arg):
            work.notices.append(OutboxKind.RESOLVED)


class Close(Command):
    name, help = "close", "#close"

    def check(self, arg: str, checks: Checks) -> str:
        return "#close takes nothing after it" if arg else ""

    def apply(self, arg: str, work: Work) -> None:
        set_status(work.session, work.ticket, TicketStatus.CLOSED, work.actor, now=work.now, reason="#close")


class Add(Command):
    name, help = (
        "add",
        "#add EMAIL          (that address joins the ticket and gets its mail, as the requester does)",
    )

    def check(self, arg: str, checks: Checks) -> str:
        address = added_address(arg)
        if address is None:
            return "#add takes one email address, e.g. #add colleague@example.com"
        if checks.is_ours(address):
            return f"{address} is the helpdesk's own address"
        return ""

    def apply(self, arg: str, work: Work) -> None:
        # A participant gets the ticket's mail from now on; being added tells them nothing.
        address = added_address(arg)
        assert address is not None  # checked before anything was applied
        ticket = work.ticket
        known_as = work.session.scalar(
            select(Message.from_name)
            .where(Message.ticket_id == ticket.id, Message.from_addr == address)
            .order_by(Message.id.desc())
            .limit(1)
        )
        add_participant(work.session, ticket, address, known_as or "", "cc", notify=True)
        record_event(
            work.session,
            ticket,
            EventKind.PARTICIPANT_ADDED,
            work.actor,
            now=work.now,
            new=address,
            reason=work.line,
        )
        log.info("ADDED #%d %s by=%s", ticket.id, address, work.actor)


class Publish(Command):
    name, help = "publish", "#publish TITLE      (the resolution becomes a knowledge-base article)"

    def check(self, arg: str, checks: Checks) -> str:
        return (
            ""
            if arg.strip()
            else "#publish needs the article's title, e.g. #publish Printer offline after update"
        )

    def apply(self, arg: str, work: Work) -> None:
        session, ticket, line = work.session, work.ticket, work.line

        def publish_resolution() -> None:
            try:
                publish(session, ticket, arg, actor=work.actor, now=work.now)
            except KnowledgeError as exc:
                reason = f"{line}: {exc} (resolve it with #resolve RESOLUTION in the same reply)"
                record_event(
                    session, ticket, EventKind.COMMANDS_REFUSED, work.actor, now=work.now, reason=reason
                )
                log.info("NOT PUBLISHED #%d: %s", ticket.id, exc)

        work.after.append(publish_resolution)


# The table: every command, in the order the help lists them.
COMMANDS: tuple[Command, ...] = (
    SetStatus(),
    SetPriority(),
    SetCategory(),
    Assign(),
    Escalate(),
    Note(),
    Resolve(),
    Close(),
    Add(),
    Publish(),
)
BY_NAME = {command.name: command for command in COMMANDS}
COMMAND_HELP = tuple(command.help for command in COMMANDS)
