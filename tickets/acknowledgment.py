"""The acknowledgment of a new ticket, RFC 3834-style, into the requester's thread.

Never to automatic mail or spam (the pipeline says why not), never to mail whose From domain's own
checks failed, to a Reply-To only when it is in the From's domain or the From is authenticated
(anyone can name anyone in Reply-To), and within the hourly budgets (`tickets.mailer`). Each
acknowledgment not sent is an event on the ticket that says why. When published articles match
the request (`tickets.suggestions`), the acknowledgment offers them, and an event names them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models.mail import ParsedEmail
from models.outbox import OutboxKind
from models.sender_auth import SenderAuth, domain_of
from models.ticket import EventKind, Ticket
from routing.facts import DEFAULT_CATEGORY
from tickets.events import record_event
from tickets.loop_config import KnowledgeConfig
from tickets.mailer import Mailer
from tickets.messages import StoredMessage
from tickets.roster import technician_by_email
from tickets.suggestions import suggest


def acknowledge(
    session: Session,
    mailer: Mailer,
    ticket: Ticket,
    mail: ParsedEmail,
    *,
    now: datetime,
    message: StoredMessage | None,
    auth: SenderAuth,
    skip: str = "",
    knowledge: KnowledgeConfig | None = None,
) -> None:
    """Acknowledge `ticket` to whoever may be answered; `skip`: why it must not be (empty: it may)."""
    if not skip and not ticket.requester:
        skip = "the mail has no sender address"
    if not skip and auth.failed:
        # The From domain's own checks say this mail is not from it: answering would mail a stranger.
        skip = f"sender authentication failed ({auth.describe()})"
    if skip:
        record_event(session, ticket, EventKind.ACK_SKIPPED, "system", now=now, reason=skip)
        return
    to = None
    for addr in mail.reply_to:
        if mailer.identity.is_ours(addr.addr):
            continue
        if domain_of(addr.addr) == domain_of(mail.sender) or auth.authenticates(mail.sender):
            to = (addr.name or ticket.requester_name, addr.addr)
            break
        # Anyone can name anyone in Reply-To: a stranger's address there would get our answer.
        record_event(
            session,
            ticket,
            EventKind.REPLY_TO_IGNORED,
            "system",
            now=now,
            reason=f"Reply-To {addr.addr} is in another domain than the unauthenticated From "
            f"{mail.sender}: the acknowledgment goes to the From",
        )
    assignee = technician_by_email(session, ticket.assignee) if ticket.assignee else None
    request = f"{ticket.subject}\n{mail.new_text or mail.text}"
    # Routed by a rule or a confident model: only articles of its category (see tickets.suggestions).
    routed = ticket.category if ticket.category != DEFAULT_CATEGORY else None
    articles = (
        suggest(session, ticket.language, request, knowledge, category=routed, exclude_ticket=ticket.id)
        if knowledge
        else []
    )
    queued = mailer.mail_requester(
        session,
        ticket,
        "ack",
        now=now,
        kind=OutboxKind.ACK,
        automatic=True,
        reply_to_message=message,
        to=to,
        context={"assignee_name": assignee.technician.name if assignee else None, "articles": articles},
        answering=auth,
    )
    if queued is not None and articles:
        record_event(
            session,
            ticket,
            EventKind.KB_SUGGESTED,
            "system",
            now=now,
            reason="offered " + ", ".join(f"KB-{a.article} ({a.score:.2f})" for a in articles),
            data={"suggestions": [a.as_dict() for a in articles]},
        )
