"""The pipeline one stored mail goes through, stage by stage, in one transaction.

The whole order is in `STAGES` below: a reader sees the pipeline in one place. A stage may end
the run early by raising `Finished` with the outcome (caught only by `Pipeline.run`); anything
else it raises rolls the transaction back and quarantines the mail with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NoReturn, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.authentication import NOT_CHECKED, SenderAuth, SenderAuthenticator, domain_of
from intake.config import IntakeConfig
from intake.conversation import ThreadMatch, bounce_ticket, find_ticket
from intake.delivery import DeliveryFailures
from intake.desk import Desk, StoredMessage
from intake.errors import PipelineError
from intake.loops import Automation, MailKind, classify
from intake.parse import Address, ParsedEmail, parse_email
from intake.roster import technician_by_email
from models.message import MessageKind
from models.outbox import OutboxMessage, OutboxStatus
from models.raw_message import RawMessage, RawOutcome
from models.ticket import Ticket, TicketEvent, TicketStatus
from routing.engine import DefaultRouter, Router
from routing.facts import AttachmentFacts, MailFacts, RoutingResult

log = logging.getLogger("helpdesk.pipeline")

STRANGER_NOTICE_INTERVAL = timedelta(hours=1)


class Finished(Exception):
    """Ends the pipeline early with an outcome; caught only by `Pipeline.run`."""

    def __init__(self, outcome: RawOutcome, detail: str = "") -> None:
        super().__init__(f"{outcome.value}: {detail}")
        self.outcome = outcome
        self.detail = detail


class Assigner(Protocol):
    """Gives a routed ticket to a technician (or tells the coordinators why nobody fits)."""

    def assign_new(self, session: Session, ticket: Ticket, *, now: datetime) -> None: ...

    def reopened(self, session: Session, ticket: Ticket, *, now: datetime) -> None: ...

    def tell_assignee(self, session: Session, ticket: Ticket, text: str, *, now: datetime) -> None: ...

    def tell_stranger(
        self, session: Session, ticket: Ticket, sender: str, name: str, text: str, *, now: datetime
    ) -> None: ...


class ReplyHandler(Protocol):
    """Handles a technician's reply (commands and the relayed answer); True when it did."""

    def handle(self, ctx: Context, services: Services) -> bool: ...


@dataclass
class Services:
    desk: Desk
    router: Router = field(default_factory=DefaultRouter)
    assigner: Assigner | None = None
    technician_replies: ReplyHandler | None = None
    delivery: DeliveryFailures | None = None  # tells staff when a mail of ours bounced
    authenticator: SenderAuthenticator | None = None

    @property
    def config(self) -> IntakeConfig:
        return self.desk.intake


@dataclass
class Context:
    session: Session
    raw: RawMessage
    now: datetime
    mail: ParsedEmail | None = None
    automation: Automation = field(default_factory=lambda: Automation(MailKind.NORMAL))
    auth: SenderAuth = NOT_CHECKED  # who the sender is proven to be
    match: ThreadMatch | None = None
    ticket: Ticket | None = None
    message: StoredMessage | None = None
    routing: RoutingResult | None = None
    new_ticket: bool = False

    @property
    def parsed(self) -> ParsedEmail:
        if self.mail is None:
            raise PipelineError("stage ran before the mail was parsed")
        return self.mail


# -- the stages ------------------------------------------------------------------------------


def parse(ctx: Context, services: Services) -> None:
    if ctx.mail is None:  # the worker parses ahead, in a child process within a time budget
        ctx.mail = parse_email(ctx.raw.data, services.config)
    if not ctx.mail.sender and ctx.raw.envelope_from:
        # No usable From: the envelope sender is the best we know of who wrote it.
        ctx.mail = replace(ctx.mail, from_=Address("", ctx.raw.envelope_from.lower()))


def classify_mail(ctx: Context, services: Services) -> None:
    mail = ctx.parsed
    own = False
    if mail.message_id and mail.message_id.lower().endswith("@" + services.desk.identity.domain):
        own = (
            ctx.session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_id == mail.message_id))
            is not None
        )
    ctx.automation = classify(mail, services.desk.identity, ctx.raw.envelope_from, own_message=own)
    if ctx.automation.kind in (MailKind.OWN, MailKind.LOOP):
        raise Finished(RawOutcome.AUTOMATIC, f"{ctx.automation.kind.value}: {ctx.automation.reason}")


def bounce(ctx: Context, services: Services) -> None:
    """A delivery report attaches to its ticket; only one sent to the signed return address of a
    mail we sent (VERP) marks that mail bounced and tells the people working the ticket."""
    if ctx.automation.kind is not MailKind.BOUNCE:
        return
    mail = ctx.parsed
    target = bounce_ticket(ctx.session, services.desk.identity, mail, ctx.raw.envelope_to)
    ticket = ctx.session.get(Ticket, target.ticket_id) if target.ticket_id is not None else None
    if ticket is None:
        raise Finished(RawOutcome.AUTOMATIC, f"bounce for no known ticket: {ctx.automation.reason}")
    ctx.ticket = ticket
    message = services.desk.record_inbound(
        ctx.session, ticket, mail, ctx.raw, kind=MessageKind.BOUNCE, now=ctx.now, internal=True
    )
    report = mail.report
    detail = (
        f"{', '.join(report.recipients) or '?'}: {report.status} {report.diagnostic}".strip()
        if report
        else ctx.automation.reason
    )
    row = ctx.session.get(OutboxMessage, target.outbox_id) if target.outbox_id is not None else None
    final = report is None or report.action != "delayed"
    # A mail already failed (or bounced) was told about once; a report on it now is news only.
    bounced = row is not None and final and row.status not in (OutboxStatus.FAILED, OutboxStatus.BOUNCED)
    actor = mail.sender or "mailer-daemon"
    if row is not None and bounced:
        row.status = OutboxStatus.BOUNCED
        row.last_error = detail[:2000]
        services.desk.event(
            ctx.session,
            ticket,
            "delivery_failed",
            actor,
            now=ctx.now,
            new=OutboxStatus.BOUNCED.value,
            reason=f"{row.kind} mail to {row.recipient}: {detail}",
            data={"outbox_id": row.id, "recipient": row.recipient, "kind": row.kind, "error": detail},
            message=message,
        )
        if services.delivery is not None:
            services.delivery.tell(ctx.session, ticket, row, detail, now=ctx.now)
    else:
        # Information only: a report to the plain address (anyone can write one naming our
        # Message-IDs), a delay, or news about a mail whose failure is already recorded.
        why = (
            "a delay"
            if not final
            else "not sent to a signed return address"
            if row is None
            else "known already"
        )
        services.desk.event(
            ctx.session,
            ticket,
            "delivery_report",
            actor,
            now=ctx.now,
            reason=f"{detail} ({why}; no mail's status changed)",
            data={"outbox_id": target.outbox_id, "names_outbox": target.named},
            message=message,
        )
    log.info(
        "BOUNCE #%d outbox=%s %s %s",
        ticket.id,
        target.outbox_id or target.named,
        "bounced" if bounced else "noted",
        detail[:200],
    )
    raise Finished(RawOutcome.BOUNCE, detail)


def authenticate(ctx: Context, services: Services) -> None:
    """The sender authentication verdict, stored with the mail (see `intake.authentication`)."""
    if services.authenticator is None or not services.authenticator.active:
        return  # nothing can prove anyone: the verdict stays "not checked"
    ctx.auth = services.authenticator.check(ctx.raw.data, ctx.parsed.sender)
    ctx.raw.sender_auth = ctx.auth.as_dict()
    log.debug("AUTHENTICATED raw=%s from=%s %s", ctx.raw.id, ctx.parsed.sender, ctx.auth.describe())


def thread(ctx: Context, services: Services) -> None:
    ctx.match = find_ticket(ctx.session, services.desk.identity, ctx.parsed, ctx.raw.envelope_to)
    if ctx.match is not None:
        ticket = ctx.session.get(Ticket, ctx.match.ticket_id)
        if ctx.match.stranger:
            # Whatever its state: a stranger's mail is a note on it, never a follow-up or a reopening.
            ctx.ticket = ticket
            return
        staff_token = ctx.match.token is not None and ctx.match.token.kind in ("w", "c")
        if ticket is not None and ticket.status is TicketStatus.CLOSED and not staff_token:
            # A closed ticket stays closed for requesters: their new mail opens a follow-up that
            # points back at it. Staff replying with their token still reach it (and may reopen it).
            ctx.ticket = None
            ctx.match = ThreadMatch(ticket.id, f"follow-up ({ctx.match.by})")
            return
        ctx.ticket = ticket


def append(ctx: Context, services: Services) -> None:
    """A mail on an existing ticket: store it; a requester's reply reopens a resolved ticket."""
    if ctx.ticket is None:
        return
    replies = services.technician_replies
    # Automatic mail (a technician's out-of-office answering a notice) is never worked or relayed.
    if replies is not None and ctx.automation.kind.answerable and replies.handle(ctx, services):
        raise Finished(
            RawOutcome.REPLY, f"technician reply on #{ctx.ticket.id} ({ctx.match and ctx.match.by})"
        )
    if ctx.match is not None and ctx.match.stranger:
        keep_strangers_note(ctx, services)
    mail, ticket, desk = ctx.parsed, ctx.ticket, services.desk
    automatic = not ctx.automation.kind.answerable
    kind = MessageKind.AUTOMATIC if automatic else MessageKind.REQUESTER
    ctx.message = desk.record_inbound(ctx.session, ticket, mail, ctx.raw, kind=kind, now=ctx.now)
    by = ctx.match.by if ctx.match else "?"
    if automatic:
        desk.event(
            ctx.session,
            ticket,
            "automatic_mail",
            mail.sender,
            now=ctx.now,
            reason=ctx.automation.reason,
            message=ctx.message,
        )
        log.info("AUTOMATIC #%d from=%s %s (not answered)", ticket.id, mail.sender, ctx.automation.reason)
        raise Finished(RawOutcome.AUTOMATIC, f"joined #{ticket.id}: {ctx.automation.reason}")
    desk.participant(ctx.session, ticket, mail.sender, mail.from_.name if mail.from_ else "", "cc")
    desk.event(
        ctx.session,
        ticket,
        "reply",
        mail.sender,
        now=ctx.now,
        reason=f"threaded by {by}",
        message=ctx.message,
    )
    if ticket.status is TicketStatus.RESOLVED:
        desk.set_status(
            ctx.session, ticket, TicketStatus.OPEN, mail.sender, now=ctx.now, reason="reply after resolution"
        )
        desk.event(ctx.session, ticket, "reopened", mail.sender, now=ctx.now, reason="requester replied")
        desk.mail_requester(
            ctx.session, ticket, "requester_reopened", now=ctx.now, kind="reopened", automatic=True
        )
        if services.assigner is not None:
            services.assigner.reopened(ctx.session, ticket, now=ctx.now)
    elif ticket.status is TicketStatus.WAITING:
        desk.set_status(
            ctx.session, ticket, TicketStatus.OPEN, mail.sender, now=ctx.now, reason="requester replied"
        )
    if services.assigner is not None and ticket.assignee:
        services.assigner.tell_assignee(ctx.session, ticket, mail.new_text or mail.text, now=ctx.now)
    log.info("REPLY #%d from=%s by=%s", ticket.id, mail.sender, by)
    raise Finished(RawOutcome.REPLY, f"#{ticket.id} by {by}")


def keep_strangers_note(ctx: Context, services: Services) -> NoReturn:
    """Mail from someone not on the ticket: kept as an internal note and staff are told, nothing else.

    They do not become a participant, the ticket's state does not change and they are sent
    nothing: a Message-ID or reply address of ours is all it takes to write this. Staff let them
    in with `#add EMAIL`. Staff hear of strangers on a ticket at most once per
    STRANGER_NOTICE_INTERVAL, so a flood of them costs a note each and one mail.
    """
    mail, ticket, desk, session = ctx.parsed, ctx.ticket, services.desk, ctx.session
    assert ticket is not None and ctx.match is not None
    sender = mail.sender or "?"
    ctx.message = desk.record_inbound(
        session, ticket, mail, ctx.raw, kind=MessageKind.STRANGER, now=ctx.now, internal=True
    )
    automatic = not ctx.automation.kind.answerable
    since = ctx.now - STRANGER_NOTICE_INTERVAL
    told_lately = session.scalar(
        select(TicketEvent.id)
        .where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "stranger_mail", TicketEvent.at > since
        )
        .where(TicketEvent.new == "staff told")
        .limit(1)
    )
    # Nobody to add without an address; automatic mail (an out-of-office) is kept, not announced.
    tell = bool(mail.sender) and not automatic and told_lately is None and services.assigner is not None
    desk.event(
        session,
        ticket,
        "stranger_mail",
        sender,
        now=ctx.now,
        new="staff told" if tell else "kept",
        reason=f"from someone not on the ticket (threaded by {ctx.match.by}); kept as a note, nothing changed"
        + (f"; automatic mail: {ctx.automation.reason}" if automatic else ""),
        message=ctx.message,
    )
    if tell and services.assigner is not None:
        name = mail.from_.name if mail.from_ else ""
        services.assigner.tell_stranger(
            session, ticket, sender, name, mail.new_text or mail.text, now=ctx.now
        )
    log.info(
        "STRANGER #%d from=%s by=%s kept as a note%s",
        ticket.id,
        sender,
        ctx.match.by,
        "" if tell else " (staff not told again)",
    )
    raise Finished(RawOutcome.STRANGER, f"note on #{ticket.id} from {sender}, who is not on it")


def route(ctx: Context, services: Services) -> None:
    """Decide category and priority of the ticket this mail is about to open."""
    mail = ctx.parsed
    if not ctx.automation.kind.opens_ticket:
        raise Finished(RawOutcome.AUTOMATIC, f"{ctx.automation.kind.value}: {ctx.automation.reason}")
    facts = MailFacts(
        sender=mail.sender,
        sender_name=mail.from_.name if mail.from_ else "",
        subject=mail.subject,
        body=mail.new_text or mail.text,
        language=mail.language,
        recipients=tuple(dict.fromkeys([*ctx.raw.envelope_to, *(a.addr for a in (*mail.to, *mail.cc))])),
        headers=mail.headers,
        attachments=tuple(AttachmentFacts(a.filename, a.content_type, a.size) for a in mail.attachments),
    )
    ctx.routing = services.router.route(facts)


def open_ticket(ctx: Context, services: Services) -> None:
    mail, result = ctx.parsed, ctx.routing
    tags = [] if ctx.automation.kind is MailKind.NORMAL else [ctx.automation.kind.value]
    if not mail.sender:
        if not (mail.subject.strip() or mail.text.strip() or mail.attachments):
            raise PipelineError("the message is empty: no sender, no subject, no text, no attachment")
        # Nobody to answer, but somebody wrote it: the coordinator reads it in triage.
        tags.append("no-sender")
    follow_up_of = ctx.match.ticket_id if ctx.match is not None else None  # a closed ticket's follow-up
    desk = services.desk
    ticket = desk.open_ticket(
        ctx.session, mail, now=ctx.now, tags=tags, routing=result, follow_up_of=follow_up_of
    )
    ctx.ticket, ctx.new_ticket = ticket, True
    ctx.message = desk.record_inbound(
        ctx.session, ticket, mail, ctx.raw, kind=MessageKind.REQUESTER, now=ctx.now
    )
    follow_up = f", follow-up of #{follow_up_of}" if follow_up_of else ""
    desk.event(
        ctx.session,
        ticket,
        "created",
        mail.sender,
        now=ctx.now,
        reason=f"mail via {ctx.raw.source}{follow_up}",
        message=ctx.message,
    )
    if result is not None:
        desk.event(
            ctx.session,
            ticket,
            "routed",
            "routing",
            now=ctx.now,
            new=f"category={ticket.category} priority={ticket.priority.value}",
            reason=f"category by {result.category.reason}; priority by {result.priority.reason}",
            data=result.as_dict(),
        )
        log.info(
            "ROUTED #%d category=%s by=%s priority=%s by=%s",
            ticket.id,
            ticket.category,
            result.category.reason,
            ticket.priority.value,
            result.priority.reason,
        )


def assign(ctx: Context, services: Services) -> None:
    if ctx.ticket is None or services.assigner is None:
        return
    if ctx.automation.kind is MailKind.SPAM:
        # Nobody is mailed about spam: it waits, unassigned, for the coordinator to look at.
        services.desk.event(
            ctx.session,
            ctx.ticket,
            "assignment_skipped",
            "system",
            now=ctx.now,
            reason=f"marked as spam upstream ({ctx.automation.reason}): left for the coordinator",
        )
        return
    services.assigner.assign_new(ctx.session, ctx.ticket, now=ctx.now)


def acknowledge(ctx: Context, services: Services) -> None:
    """The acknowledgment, RFC 3834-style: never to automatic mail or spam, never to a forged From,
    to a Reply-To only in the From's domain or when the From is authenticated, within the budgets."""
    ticket, mail, desk = ctx.ticket, ctx.parsed, services.desk
    if ticket is None:
        return
    if ctx.automation.kind is MailKind.SPAM:
        skipped = f"marked as spam upstream ({ctx.automation.reason})"
        desk.event(ctx.session, ticket, "ack_skipped", "system", now=ctx.now, reason=skipped)
        return
    if not ctx.automation.kind.answerable:
        services.desk.event(
            ctx.session,
            ticket,
            "ack_skipped",
            "system",
            now=ctx.now,
            reason=f"automatic mail is never answered ({ctx.automation.reason})",
        )
        return
    if ctx.raw.backfill:
        services.desk.event(
            ctx.session, ticket, "ack_skipped", "system", now=ctx.now, reason="imported from history"
        )
        return
    if not ticket.requester:
        services.desk.event(
            ctx.session, ticket, "ack_skipped", "system", now=ctx.now, reason="the mail has no sender address"
        )
        return
    if ctx.auth.failed:
        # The From domain's own checks say this mail is not from it: answering would mail a stranger.
        skipped = f"sender authentication failed ({ctx.auth.describe()})"
        desk.event(ctx.session, ticket, "ack_skipped", "system", now=ctx.now, reason=skipped)
        return
    to = None
    for addr in mail.reply_to:
        if desk.identity.is_ours(addr.addr):
            continue
        if domain_of(addr.addr) == domain_of(mail.sender) or ctx.auth.authenticates(mail.sender):
            to = (addr.name or ticket.requester_name, addr.addr)
            break
        # Anyone can name anyone in Reply-To: a stranger's address there would get our answer.
        desk.event(
            ctx.session,
            ticket,
            "reply_to_ignored",
            "system",
            now=ctx.now,
            reason=f"Reply-To {addr.addr} is in another domain than the unauthenticated From "
            f"{mail.sender}: the acknowledgment goes to the From",
        )
    assignee = technician_by_email(ctx.session, ticket.assignee) if ticket.assignee else None
    services.desk.mail_requester(
        ctx.session,
        ticket,
        "ack",
        now=ctx.now,
        kind="ack",
        automatic=True,
        reply_to_message=ctx.message,
        to=to,
        context={"assignee_name": assignee.technician.name if assignee else None},
        answering=ctx.auth,
    )


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[Context, Services], None]


STAGES: tuple[Stage, ...] = (
    Stage("parse", "bytes to a ParsedEmail: addresses, text, new part, attachments, language", parse),
    Stage(
        "classify",
        "auto-reply, bulk, bounce, our own mail, loop (own mail and loops stop here)",
        classify_mail,
    ),
    Stage(
        "bounce",
        "a delivery report attaches to its ticket; only our signed return address marks a mail bounced",
        bounce,
    ),
    Stage(
        "authenticate",
        "who the sender is proven to be: trusted Authentication-Results, optionally DKIM checked here",
        authenticate,
    ),
    Stage(
        "thread",
        "find the ticket: In-Reply-To/References, token, subject tag; may its sender join it?",
        thread,
    ),
    Stage(
        "append",
        "staff replies; a stranger's mail is a note for staff; a reply reopens a resolved ticket",
        append,
    ),
    Stage(
        "route", "category and priority from rules, the classifier or the defaults (no auto-replies)", route
    ),
    Stage("open", "a mail that belongs to no ticket opens one, routed", open_ticket),
    Stage(
        "assign",
        "the best-skilled technician on shift, or the coordinators are told (never for spam)",
        assign,
    ),
    Stage(
        "acknowledge",
        "an acknowledgment into the requester's thread (RFC 3834: never to automatic mail, spam or a "
        "forged sender; within the hourly budgets)",
        acknowledge,
    ),
)


@dataclass(frozen=True)
class Result:
    outcome: RawOutcome
    detail: str
    ticket_id: int | None


class Pipeline:
    def __init__(self, services: Services, stages: tuple[Stage, ...] = STAGES) -> None:
        self.services = services
        self.stages = stages

    def run(
        self, session: Session, raw: RawMessage, now: datetime, mail: ParsedEmail | None = None
    ) -> Result:
        """Run every stage on `raw` inside the caller's transaction (`mail`: its bytes parsed already)."""
        ctx = Context(session=session, raw=raw, now=now, mail=mail)
        try:
            for stage in self.stages:
                stage.run(ctx, self.services)
        except Finished as done:
            return Result(done.outcome, done.detail, ctx.ticket.id if ctx.ticket else None)
        if ctx.ticket is None:
            raise PipelineError("the pipeline ended without an outcome")
        return Result(RawOutcome.TICKET, f"#{ctx.ticket.id}", ctx.ticket.id)
