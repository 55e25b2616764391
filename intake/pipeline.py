"""The pipeline one stored mail goes through, stage by stage, in one transaction.

The whole order is in `STAGES` below: a reader sees the pipeline in one place. Intake's own
stages read the mail (parse, automatic, authenticate, thread); from there on each stage hands
the mail to `tickets`, which changes the ticket and writes the mail it causes. A stage may end
the run early by raising `Finished` with the outcome (caught only by `Pipeline.run`); anything
else it raises rolls the transaction back and quarantines the mail with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.addresses import normal_address
from intake.authentication import SenderAuthenticator, staff_refusal
from intake.automatic import Automation, MailKind, detect_automatic
from intake.config import IntakeConfig
from intake.errors import PipelineError
from intake.parse import parse_email
from intake.threads import ThreadMatch, bounce_ticket, find_ticket
from models.mail import Address, ParsedEmail
from models.outbox import OutboxMessage
from models.raw_message import RawMessage, RawOutcome
from models.sender_auth import NOT_CHECKED, SenderAuth
from models.ticket import EventKind, Ticket
from notify.config import MailIdentity
from routing.engine import DefaultRouter, Router
from routing.facts import AttachmentFacts, MailFacts, RoutingResult
from tickets.acknowledgment import acknowledge as acknowledge_ticket
from tickets.assignment import Assignment
from tickets.delivery import DeliveryFailures, record_delivery_report
from tickets.events import record_event
from tickets.feedback import rates_closed_ticket
from tickets.loop_config import KnowledgeConfig
from tickets.mailer import Mailer
from tickets.messages import StoredMessage
from tickets.opening import open_ticket
from tickets.replies import record_automatic, record_reply
from tickets.staff_replies import StaffMail, StaffReplies
from tickets.status import opens_follow_up
from tickets.strangers import keep_strangers_note

log = logging.getLogger("helpdesk.pipeline")


class Finished(Exception):
    """Ends the pipeline early with an outcome; caught only by `Pipeline.run`."""

    def __init__(self, outcome: RawOutcome, detail: str = "") -> None:
        super().__init__(f"{outcome.value}: {detail}")
        self.outcome = outcome
        self.detail = detail


@dataclass
class Services:
    config: IntakeConfig
    mailer: Mailer
    router: Router = field(default_factory=DefaultRouter)
    assigner: Assignment | None = None
    staff_replies: StaffReplies | None = None
    delivery: DeliveryFailures | None = None  # tells staff when a mail of ours bounced
    authenticator: SenderAuthenticator | None = None
    knowledge: KnowledgeConfig | None = None  # articles offered in acknowledgments

    @property
    def identity(self) -> MailIdentity:
        return self.mailer.identity


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

    @property
    def by(self) -> str:
        """How the mail found its ticket."""
        return self.match.by if self.match else "?"


# -- intake's stages: what is this mail, and which ticket is it about? ------------------------


def parse(ctx: Context, services: Services) -> None:
    if ctx.mail is None:  # the worker parses ahead, in a child process within a time budget
        ctx.mail = parse_email(ctx.raw.data, services.config)
    if not ctx.mail.sender:
        # No usable From, Reply-To or Sender: the envelope sender, or for mail fetched over IMAP
        # the Return-Path its delivering MTA recorded (RFC 5321 section 4.4).
        envelope = ctx.raw.envelope_from
        if envelope is None:
            envelope = normal_address(ctx.mail.header("return-path"))
        if envelope:
            ctx.mail = replace(ctx.mail, from_=Address("", envelope.lower()))


def automatic(ctx: Context, services: Services) -> None:
    mail = ctx.parsed
    own = False
    if mail.message_id and mail.message_id.lower().endswith("@" + services.identity.domain):
        own = (
            ctx.session.scalar(select(OutboxMessage.id).where(OutboxMessage.message_id == mail.message_id))
            is not None
        )
    ctx.automation = detect_automatic(mail, services.identity, ctx.raw.envelope_from, own_message=own)
    if ctx.automation.kind in (MailKind.OWN, MailKind.LOOP):
        raise Finished(RawOutcome.AUTOMATIC, f"{ctx.automation.kind.value}: {ctx.automation.reason}")


def bounce(ctx: Context, services: Services) -> None:
    if ctx.automation.kind is not MailKind.BOUNCE:
        return
    target = bounce_ticket(ctx.session, services.identity, ctx.parsed, ctx.raw.envelope_to)
    ticket = ctx.session.get(Ticket, target.ticket_id) if target.ticket_id is not None else None
    if ticket is None:
        raise Finished(RawOutcome.AUTOMATIC, f"bounce for no known ticket: {ctx.automation.reason}")
    ctx.ticket = ticket
    detail = record_delivery_report(
        ctx.session,
        ticket,
        ctx.parsed,
        ctx.raw,
        now=ctx.now,
        outbox_id=target.outbox_id,
        named=target.named,
        reason=ctx.automation.reason,
        failures=services.delivery,
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
    ctx.match = find_ticket(ctx.session, services.identity, ctx.parsed, ctx.raw.envelope_to)
    if ctx.match is None:
        return
    ticket = ctx.session.get(Ticket, ctx.match.ticket_id)
    # Whatever its state: a stranger's mail is a note on it, never a follow-up or a reopening. A
    # requester's late rating of a ticket that closed meanwhile is a rating of it, not a new ticket.
    staff = ctx.match.token is not None and ctx.match.token.kind.staff
    rating = ctx.automation.kind.answerable and rates_closed_ticket(ticket, ctx.parsed)
    if not ctx.match.stranger and opens_follow_up(ticket, staff=staff) and not rating:
        assert ticket is not None
        ctx.ticket = None
        ctx.match = ThreadMatch(ticket.id, f"follow-up ({ctx.match.by})")
        return
    ctx.ticket = ticket


# -- the ticket's stages: what the mail changes (each hands it to `tickets`) ------------------


def staff_reply(ctx: Context, services: Services) -> None:
    """Mail from staff on a ticket: verified, then its commands applied and its text relayed (or refused)."""
    replies, ticket = services.staff_replies, ctx.ticket
    # Automatic mail (a technician's out-of-office answering a notice) is never worked or relayed.
    if replies is None or ticket is None or not ctx.automation.kind.answerable:
        return
    mail = ctx.parsed
    authenticator = services.authenticator
    # [security] require_authenticated_staff: a From can be forged, a DKIM-signed one cannot.
    unproven = staff_refusal(authenticator.config, ctx.auth, mail.sender) if authenticator else ""
    token = ctx.match.token if ctx.match is not None else None
    if replies.handle(ctx.session, ticket, StaffMail(mail, ctx.raw, token, unproven), now=ctx.now):
        raise Finished(RawOutcome.REPLY, f"technician reply on #{ticket.id} ({ctx.match and ctx.match.by})")


def stranger(ctx: Context, services: Services) -> None:
    """Mail from someone not on the ticket it reached: a note for staff, nothing else changes."""
    if ctx.ticket is None or ctx.match is None or not ctx.match.stranger:
        return
    ctx.message = keep_strangers_note(
        ctx.session,
        ctx.ticket,
        ctx.parsed,
        ctx.raw,
        now=ctx.now,
        by=ctx.match.by,
        automatic=None if ctx.automation.kind.answerable else ctx.automation.reason,
        assignment=services.assigner,
    )
    sender = ctx.parsed.sender or "?"
    raise Finished(RawOutcome.STRANGER, f"note on #{ctx.ticket.id} from {sender}, who is not on it")


def append(ctx: Context, services: Services) -> None:
    """A mail on an existing ticket: stored; a requester's reply reopens a resolved ticket."""
    ticket = ctx.ticket
    if ticket is None:
        return
    if not ctx.automation.kind.answerable:
        reason = ctx.automation.reason
        ctx.message = record_automatic(ctx.session, ticket, ctx.parsed, ctx.raw, now=ctx.now, reason=reason)
        raise Finished(RawOutcome.AUTOMATIC, f"joined #{ticket.id}: {reason}")
    ctx.message = record_reply(
        ctx.session,
        ticket,
        ctx.parsed,
        ctx.raw,
        now=ctx.now,
        by=ctx.by,
        mailer=services.mailer,
        assignment=services.assigner,
    )
    raise Finished(RawOutcome.REPLY, f"#{ticket.id} by {ctx.by}")


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


def open_new(ctx: Context, services: Services) -> None:
    mail = ctx.parsed
    tags = [] if ctx.automation.kind is MailKind.NORMAL else [ctx.automation.kind.value]
    if not mail.sender:
        if not (mail.subject.strip() or mail.text.strip() or mail.attachments):
            raise PipelineError("the message is empty: no sender, no subject, no text, no attachment")
        # Nobody to answer, but somebody wrote it: the coordinator reads it in triage.
        tags.append("no-sender")
    follow_up_of = ctx.match.ticket_id if ctx.match is not None else None  # a closed ticket's follow-up
    ctx.ticket, ctx.message = open_ticket(
        ctx.session,
        services.identity,
        mail,
        ctx.raw,
        now=ctx.now,
        tags=tags,
        routing=ctx.routing,
        follow_up_of=follow_up_of,
    )
    ctx.new_ticket = True


def assign(ctx: Context, services: Services) -> None:
    if ctx.ticket is None or services.assigner is None:
        return
    if ctx.automation.kind is MailKind.SPAM:
        # Nobody is mailed about spam: it waits, unassigned, for the coordinator to look at.
        reason = f"marked as spam upstream ({ctx.automation.reason}): left for the coordinator"
        record_event(
            ctx.session, ctx.ticket, EventKind.ASSIGNMENT_SKIPPED, "system", now=ctx.now, reason=reason
        )
        return
    services.assigner.assign_new(ctx.session, ctx.ticket, now=ctx.now)


def acknowledge(ctx: Context, services: Services) -> None:
    """The acknowledgment (RFC 3834: never to automatic mail, spam or a forged sender)."""
    if ctx.ticket is None:
        return
    kind, reason = ctx.automation.kind, ctx.automation.reason
    if kind is MailKind.SPAM:
        skip = f"marked as spam upstream ({reason})"
    elif not kind.answerable:
        skip = f"automatic mail is never answered ({reason})"
    elif ctx.raw.backfill:
        skip = "imported from history"
    else:
        skip = ""
    acknowledge_ticket(
        ctx.session,
        services.mailer,
        ctx.ticket,
        ctx.parsed,
        now=ctx.now,
        message=ctx.message,
        auth=ctx.auth,
        skip=skip,
        knowledge=services.knowledge,
    )


@dataclass(frozen=True)
class Stage:
    name: str
    description: str
    run: Callable[[Context, Services], None]


STAGES: tuple[Stage, ...] = (
    Stage("parse", "bytes to a ParsedEmail: addresses, text, new part, attachments, language", parse),
    Stage(
        "automatic",
        "auto-reply, bulk, bounce, spam, our own mail, loop (own mail and loops stop here)",
        automatic,
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
        "staff_reply",
        "a technician's or coordinator's reply: verified, commands applied, the rest relayed (or refused)",
        staff_reply,
    ),
    Stage(
        "stranger",
        "mail from someone not on the ticket: kept as a note for staff, nothing changes",
        stranger,
    ),
    Stage("append", "a reply is stored on its ticket; it reopens a resolved ticket", append),
    Stage(
        "route", "category and priority from rules, the classifier or the defaults (no auto-replies)", route
    ),
    Stage("open", "a mail that belongs to no ticket opens one, routed", open_new),
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
