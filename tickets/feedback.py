"""What a requester's reply may say besides a new problem: a rating, or "solved".

* **A rating** of a resolved ticket (or one closed since): the resolved mail asks for one by reply, a digit 1-5 or a
  word in the requester's language ("good", "dobrze", "gut", ...) at the start of the reply, and
  any comment after it. It is recorded (a later rating replaces it), never reopens the ticket,
  and a low one (LOW_RATING or less) with a comment tells the coordinators. Nothing is counted
  unless a person wrote back: automatic mail never reaches here (`intake.automatic`), and a
  scanner that follows links has no link to follow.
* **Solved**: "solved", "rozwiązane", "gelöst" (or a `#solved` line) at the start of a reply to an
  open ticket resolves it as self-service: the articles its acknowledgment offered are named in
  the resolution, the technician is told, the report counts it. To a resolved ticket it is a
  thank-you and reopens nothing.

Anything else is a reply like any other: it reopens a resolved ticket (`tickets.status`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.loop import Satisfaction
from models.mail import ParsedEmail
from models.outbox import OutboxKind
from models.ticket import DONE_STATUSES, EventKind, Ticket, TicketEvent, TicketStatus
from tickets.events import record_event
from tickets.mailer import Mailer
from tickets.roster import technician_by_email
from tickets.staff_notices import StaffNotices
from tickets.status import set_status

log = logging.getLogger("helpdesk.feedback")

LOW_RATING = 2
COMMENT_MAX = 2000
# Words that rate, in every language we write (a requester may answer a Polish mail in English).
# The longer phrase first: "sehr gut" before "gut".
RATING_WORDS: dict[str, int] = {
    "excellent": 5, "great": 5, "very good": 4, "good": 4, "okay": 3, "ok": 3, "fine": 3,
    "average": 3, "poor": 2, "bad": 1, "terrible": 1, "very bad": 1,
    "świetnie": 5, "doskonale": 5, "bardzo dobrze": 5, "dobrze": 4, "średnio": 3, "słabo": 2,
    "źle": 1, "bardzo źle": 1,
    "ausgezeichnet": 5, "sehr gut": 5, "gut": 4, "befriedigend": 3, "mittel": 3, "schlecht": 2,
    "sehr schlecht": 1, "mangelhaft": 1,
}  # fmt: skip
SOLVED_WORDS = ("solved", "rozwiązane", "rozwiązany", "rozwiązana", "gelöst", "erledigt")
_AFTER = r"(?=$|[\s,.;:!)\-–—/])"
_DIGIT = re.compile(r"^([1-5])(?:\s*(?:/|of|z|von)\s*5)?" + _AFTER, re.IGNORECASE)
_WORDS = re.compile(
    r"^("
    + "|".join(re.escape(w) for w in sorted(RATING_WORDS, key=len, reverse=True))
    + r")(?=\s*(?:$|[,.;:!\-–—]))",  # "good, thanks" rates; "good morning, ..." does not
    re.IGNORECASE,
)
_SOLVED = re.compile(
    r"^(?:#solved|(?:" + "|".join(SOLVED_WORDS) + r"))" + r"(?=$|[\s,.;:!\-–—])", re.IGNORECASE
)


@dataclass(frozen=True)
class Rating:
    rating: int
    comment: str


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace("\r\n", "\n").split("\n")]


def _first_line(text: str) -> tuple[str, str]:
    """The first non-empty line, and what follows it."""
    lines = _lines(text)
    for index, line in enumerate(lines):
        if line:
            return line, "\n".join(lines[index + 1 :]).strip()
    return "", ""


def read_rating(text: str) -> Rating | None:
    """The rating a reply starts with, and its comment; None when it does not start with one."""
    first, rest = _first_line(text)
    match = _DIGIT.match(first) or _WORDS.match(first)
    if match is None:
        return None
    value = int(match.group(1)) if match.group(1).isdigit() else RATING_WORDS[match.group(1).lower()]
    said = first[match.end() :].lstrip(" \t,.;:!-–—").rstrip()
    comment = "\n".join(part for part in (said, rest) if part).strip()[:COMMENT_MAX]
    return Rating(value, comment)


def says_solved(text: str) -> bool:
    """Whether a reply starts with "solved" in one of our languages, or has a `#solved` line of its own."""
    first, _ = _first_line(text)
    return bool(_SOLVED.match(first)) or any(line.lower() == "#solved" for line in _lines(text))


def rates_closed_ticket(ticket: Ticket | None, mail: ParsedEmail) -> bool:
    """Whether `mail` is the requester's rating of `ticket`, which closed before they rated it."""
    return (
        ticket is not None
        and ticket.status is TicketStatus.CLOSED
        and mail.sender == ticket.requester
        and read_rating(mail.new_text or mail.text) is not None
    )


class Feedback:
    """Ratings and self-service resolutions, read from requesters' replies."""

    def __init__(self, mailer: Mailer, notices: StaffNotices | None) -> None:
        self.mailer = mailer
        self.notices = notices

    def handle(
        self, session: Session, ticket: Ticket, text: str, sender: str, *, now: datetime, message_id: int
    ) -> bool:
        """Whether the reply was a rating or "solved" (True: it must not reopen the ticket)."""
        if sender != ticket.requester:
            return False  # a colleague in Cc neither rates nor closes the requester's ticket
        if ticket.status in DONE_STATUSES:
            rating = read_rating(text)
            if rating is not None:
                self.rate(session, ticket, rating, now=now, message_id=message_id)
                return True
            return says_solved(text)
        if ticket.status is not TicketStatus.CLOSED and says_solved(text):
            self.self_service(session, ticket, sender, now=now, message_id=message_id)
            return True
        return False

    def rate(
        self, session: Session, ticket: Ticket, rating: Rating, *, now: datetime, message_id: int
    ) -> None:
        row = session.scalar(select(Satisfaction).where(Satisfaction.ticket_id == ticket.id))
        if row is None:
            row = Satisfaction(ticket_id=ticket.id)
            session.add(row)
        row.rating, row.comment, row.at, row.message_id = rating.rating, rating.comment, now, message_id
        row.technician, row.category = ticket.assignee, ticket.category
        record_event(
            session,
            ticket,
            EventKind.SATISFACTION,
            ticket.requester,
            now=now,
            new=str(rating.rating),
            reason=f"rated {rating.rating}/5" + (" with a comment" if rating.comment else ""),
            message_id=message_id,
        )
        log.info("RATED #%d %d/5 technician=%s", ticket.id, rating.rating, ticket.assignee or "-")
        if rating.rating <= LOW_RATING and rating.comment and self.notices is not None:
            self.notices.tell_coordinators(
                session,
                ticket,
                "coordinator_low_rating",
                now=now,
                kind=OutboxKind.LOW_RATING,
                context={"rating": rating.rating, "comment": rating.comment},
            )

    def self_service(
        self, session: Session, ticket: Ticket, sender: str, *, now: datetime, message_id: int
    ) -> None:
        articles = suggested_articles(session, ticket.id)
        named = ", ".join(f"KB-{a}" for a in articles)
        ticket.resolution = "Solved by the requester" + (f" with article {named}." if articles else ".")
        set_status(session, ticket, TicketStatus.RESOLVED, sender, now=now, reason="solved by the requester")
        record_event(
            session,
            ticket,
            EventKind.SELF_SERVICE,
            sender,
            now=now,
            reason=ticket.resolution,
            data={"articles": articles},
            message_id=message_id,
        )
        log.info("SELF-SERVICE #%d articles=%s", ticket.id, named or "-")
        self.mailer.mail_requester(
            session,
            ticket,
            "requester_resolved",
            now=now,
            kind=OutboxKind.RESOLVED,
            automatic=True,
            context={"resolution": ticket.resolution, "self_service": True},
        )
        if self.notices is not None and ticket.assignee:
            member = technician_by_email(session, ticket.assignee)
            if member is not None:
                self.notices.mail_technician(
                    session,
                    ticket,
                    member,
                    "technician_self_service",
                    now=now,
                    kind=OutboxKind.SELF_SERVICE,
                    context={"articles": articles},
                )


def suggested_articles(session: Session, ticket_id: int) -> list[int]:
    """The articles offered on the ticket's acknowledgment."""
    data = session.scalar(
        select(TicketEvent.data)
        .where(TicketEvent.ticket_id == ticket_id, TicketEvent.kind == EventKind.KB_SUGGESTED.value)
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )
    return [int(s["article"]) for s in (data or {}).get("suggestions", [])]
