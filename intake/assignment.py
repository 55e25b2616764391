"""Giving tickets to technicians: the best-skilled one on shift, escalation, and the mail it causes.

`routing.assign` scores the candidates (skill, language, tier, load, shift); this module feeds it
from the database, records the decision as an event with the score and its parts, and writes the
mail in the same transaction: the assignment notice to the technician (with the requester's text,
why it was routed so, the most similar resolved tickets and the command help), a short notice to
the requester, or, when nobody fits, one mail to each coordinator saying why.

A flood of tickets (a thousand forged senders in an hour) must not become a thousand mails to one
technician. Every notice the desk sends a technician or coordinator on its own draws on their
hourly budget (`[limits] staff_notices_per_hour`); past it the ticket is still assigned and in
their queue, but the notice is held and folded, with everything else held for them, into one
digest mail, sent a few minutes after the first was held and at most once an hour. The digest
lists each ticket with its signed reply address, so each can still be worked by mail. Tickets are
not held back from assignment instead: a real surge (an outage, hundreds of colleagues writing
at once) must reach the technicians without waiting for a coordinator to release it.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from intake.desk import Desk
from intake.roster import StaffMember, coordinators, staff, technician_by_email
from models.budget import HeldNotice
from models.message import Message
from models.people import TechnicianRow
from models.ticket import Priority, Ticket, TicketStatus
from notify.budget import LogThrottle
from notify.compose import Draft
from notify.outbox import enqueue
from notify.tokens import coordinator_token, work_token
from routing.assign import AssignmentDecision, TicketNeeds, choose_technician, escalate

log = logging.getLogger("helpdesk.assign")
_throttled = LogThrottle(log)

ACTIVE_STATUSES = (TicketStatus.NEW, TicketStatus.OPEN, TicketStatus.IN_PROGRESS)
SIMILAR_CANDIDATES = 300  # resolved tickets compared, newest first
STRANGER_TEXT_MAX = 4000  # characters of a stranger's mail quoted to staff; the whole is on the ticket
# Characters of each text compared: a ticket is told by its start, and without a cap one huge mail
# on a resolved ticket would be read again (holding the GIL) for every new ticket after it.
SIMILAR_TEXT_CHARS = 5000
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
DIGEST_GATHER = timedelta(minutes=5)  # a digest waits this long after the first held notice
DIGEST_LISTED = 200  # tickets listed one by one in a digest; the rest are counted


@dataclass(frozen=True)
class SimilarTicket:
    number: int
    subject: str
    resolution: str
    score: float


def _words(text: str) -> Counter[str]:
    return Counter(w.lower() for w in _WORD.findall(text))


def similar_resolved(session: Session, ticket: Ticket, text: str, limit: int = 3) -> list[SimilarTicket]:
    """The resolved tickets most like this one (TF-IDF cosine over subject and text), with their notes."""
    rows = session.execute(
        select(Ticket.id, Ticket.subject, Ticket.resolution, Ticket.category)
        .where(Ticket.resolution.is_not(None), Ticket.id != ticket.id)
        .order_by(Ticket.resolved_at.desc())
        .limit(SIMILAR_CANDIDATES)
    ).all()
    if not rows:
        return []
    first_texts: dict[int, str] = dict(
        session.execute(
            select(Message.ticket_id, func.substr(Message.new_text, 1, SIMILAR_TEXT_CHARS))
            .where(Message.ticket_id.in_([r.id for r in rows]), Message.direction == "in")
            .order_by(Message.id.desc())
        ).all()
    )
    docs = [_words(f"{r.subject} {r.subject} {first_texts.get(r.id, '')}") for r in rows]
    query = _words(f"{ticket.subject} {ticket.subject} {text[:SIMILAR_TEXT_CHARS]}")
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(doc.keys())
    n = len(docs)

    def vector(counts: Counter[str]) -> dict[str, float]:
        return {w: c * math.log((1 + n) / (1 + df.get(w, 0))) for w, c in counts.items()}

    q = vector(query)
    q_norm = math.sqrt(sum(v * v for v in q.values())) or 1.0
    scored: list[SimilarTicket] = []
    for row, doc in zip(rows, docs, strict=True):
        d = vector(doc)
        dot = sum(value * d.get(word, 0.0) for word, value in q.items())
        norm = math.sqrt(sum(v * v for v in d.values())) or 1.0
        score = dot / (q_norm * norm) + (0.05 if row.category == ticket.category else 0.0)
        if dot > 0:
            scored.append(SimilarTicket(row.id, row.subject, row.resolution or "", round(score, 3)))
    scored.sort(key=lambda s: s.score, reverse=True)
    return scored[:limit]


def open_loads(session: Session) -> dict[str, list[Priority]]:
    loads: dict[str, list[Priority]] = {}
    rows = session.execute(
        select(Ticket.assignee, Ticket.priority).where(
            Ticket.assignee.is_not(None), Ticket.status.in_(ACTIVE_STATUSES)
        )
    )
    for assignee, priority in rows:
        loads.setdefault(str(assignee), []).append(priority)
    return loads


def needs_of(ticket: Ticket) -> TicketNeeds:
    return TicketNeeds(ticket.category, ticket.priority, ticket.language or "und")


def routing_summary(ticket: Ticket) -> str:
    routing = ticket.routing or {}
    parts = []
    for field in ("category", "priority"):
        decision = routing.get(field) or {}
        if decision:
            line = f"{field} {decision.get('value')} by {decision.get('reason')}"
            if decision.get("top_terms"):
                line += f" (terms: {', '.join(decision['top_terms'][:6])})"
            parts.append(line)
    return "; ".join(parts) or "set by hand"


class Assignment:
    """The assigner the pipeline, technician commands and the SLA timer share."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    # -- choosing ----------------------------------------------------------------------------

    def _candidates(self, session: Session) -> tuple[list[StaffMember], dict[str, list[Priority]]]:
        return staff(session), open_loads(session)

    def decide(
        self,
        session: Session,
        ticket: Ticket,
        *,
        now: datetime,
        exclude: Collection[str] | dict[str, str] = (),
        min_tier: int = 1,
    ) -> tuple[AssignmentDecision, list[StaffMember]]:
        members, loads = self._candidates(session)
        decision = choose_technician(
            needs_of(ticket),
            [m.technician for m in members],
            now=now,
            loads=loads,
            last_assigned={m.email: m.last_assigned_at for m in members if m.last_assigned_at is not None},
            exclude=exclude,
            min_tier=min_tier,
        )
        return decision, members

    def assign_new(self, session: Session, ticket: Ticket, *, now: datetime) -> None:
        """A routed ticket (new, or reopened without an assignee who can still take it)."""
        members = {m.email: m for m in staff(session)}
        if not members:
            return  # a desk without technicians: tickets wait in triage for whoever reads them
        fixed = ticket.assignee
        if fixed is not None:
            member = members.get(fixed)
            if member is not None and member.technician.active:
                self.give_to(
                    session, ticket, member, now=now, actor="rule", reason="assigned by a routing rule"
                )
                return
            ticket.assignee = None
            self.desk.event(
                session,
                ticket,
                "assignment_note",
                "system",
                now=now,
                reason=f"the rule's assignee {fixed} is not an active technician; choosing by skill instead",
            )
        self.assign(session, ticket, now=now, actor="system", reason="new ticket")

    def reopened(self, session: Session, ticket: Ticket, *, now: datetime) -> None:
        """A reopened ticket stays with its technician while they are active; otherwise it is given anew."""
        member = next((m for m in staff(session) if m.email == ticket.assignee), None)
        if member is not None and member.technician.active:
            return
        previous = ticket.assignee
        ticket.assignee = None
        if staff(session):
            self.assign(
                session,
                ticket,
                now=now,
                actor="system",
                reason=f"reopened; {previous or 'nobody'} can no longer take it",
            )

    def tell_assignee(self, session: Session, ticket: Ticket, text: str, *, now: datetime) -> None:
        """The assignee hears about the requester's reply, with a reply address that works for commands."""
        member = next((m for m in staff(session) if m.email == ticket.assignee), None)
        if member is None:
            return
        self.mail_technician(
            session,
            ticket,
            member,
            "technician_requester_replied",
            now=now,
            kind="requester_replied",
            context={"text": text.strip()},
        )

    def tell_stranger(
        self, session: Session, ticket: Ticket, sender: str, name: str, text: str, *, now: datetime
    ) -> None:
        """Someone not on the ticket wrote to it: the assignee hears of it, or the coordinators
        when nobody active has the ticket, with the `#add` line that would let them in."""
        context = {"stranger": sender, "stranger_name": name, "text": text.strip()[:STRANGER_TEXT_MAX]}
        member = technician_by_email(session, ticket.assignee) if ticket.assignee else None
        if member is not None and member.technician.active:
            self.mail_technician(
                session,
                ticket,
                member,
                "technician_stranger_wrote",
                now=now,
                kind="stranger_notice",
                context=context,
            )
            return
        self.tell_coordinators(
            session, ticket, "coordinator_stranger_wrote", now=now, context=context, kind="stranger_notice"
        )

    def mail_technician(
        self,
        session: Session,
        ticket: Ticket,
        member: StaffMember,
        template: str,
        *,
        now: datetime,
        kind: str,
        context: dict[str, Any],
    ) -> None:
        """Mail a technician about a ticket in their language, with the reply address signed for them
        (or hold the notice for their digest when their hourly budget is used up)."""
        tech = member.technician
        language = tech.languages[0] if tech.languages else "en"
        reply_to = self.desk.identity.plus_address(
            work_token(self.desk.identity.secret, ticket.id, member.id, now=now)
        )
        if self.hold_notice(session, ticket, (tech.name, tech.email), language, template, reply_to, now=now):
            return
        self.desk.mail(
            session,
            ticket,
            template,
            to=(tech.name, tech.email),
            language=language,
            reply_to=reply_to,
            now=now,
            kind=kind,
            automatic=False,
            context={"technician": tech, **context},
        )

    def assign(
        self,
        session: Session,
        ticket: Ticket,
        *,
        now: datetime,
        actor: str,
        reason: str,
        exclude: Collection[str] | dict[str, str] = (),
        min_tier: int = 1,
        tell_coordinators: bool = True,
    ) -> AssignmentDecision:
        decision, members = self.decide(session, ticket, now=now, exclude=exclude, min_tier=min_tier)
        chosen = next((m for m in members if m.email == decision.email), None)
        if chosen is not None:
            self.give_to(session, ticket, chosen, now=now, actor=actor, reason=reason, decision=decision)
        else:
            self.nobody_fits(session, ticket, decision, now=now, reason=reason, tell=tell_coordinators)
        return decision

    def escalate(self, session: Session, ticket: Ticket, *, now: datetime, actor: str, reason: str) -> bool:
        """To the best technician of the next tier up; False (coordinators told) when there is none."""
        members, loads = self._candidates(session)
        decision = escalate(
            needs_of(ticket),
            [m.technician for m in members],
            now=now,
            current_assignee=ticket.assignee,
            loads=loads,
            last_assigned={m.email: m.last_assigned_at for m in members if m.last_assigned_at is not None},
        )
        self.desk.event(
            session,
            ticket,
            "escalated",
            actor,
            now=now,
            old=ticket.assignee,
            new=decision.email,
            reason=reason,
            data=decision.reason(),
        )
        chosen = next((m for m in members if m.email == decision.email), None)
        previous = ticket.assignee
        if chosen is None:
            self.nobody_fits(session, ticket, decision, now=now, reason=f"escalation: {reason}", tell=True)
            return False
        self.give_to(
            session,
            ticket,
            chosen,
            now=now,
            actor=actor,
            reason=f"escalated: {reason}",
            decision=decision,
            escalated_from=previous,
        )
        self.tell_coordinators(
            session,
            ticket,
            "coordinator_escalated",
            now=now,
            context={
                "reason": reason,
                "previous": previous,
                "new": chosen.technician.name,
                "new_email": chosen.email,
                "tier": chosen.technician.tier,
            },
        )
        return True

    # -- doing -------------------------------------------------------------------------------

    def give_to(
        self,
        session: Session,
        ticket: Ticket,
        member: StaffMember,
        *,
        now: datetime,
        actor: str,
        reason: str,
        decision: AssignmentDecision | None = None,
        escalated_from: str | None = None,
    ) -> None:
        previous = ticket.assignee
        tech = member.technician
        ticket.assignee = tech.email
        ticket.assigned_at = now
        # On the ticket from now on: a mail of theirs quoting [#N] threads here (and is then checked).
        self.desk.participant(session, ticket, tech.email, tech.name, "technician", notify=False)
        row = session.get(TechnicianRow, member.id)
        if row is not None:
            row.last_assigned_at = now
        data: dict[str, Any] = decision.reason() if decision is not None else {"technician": tech.email}
        self.desk.event(
            session,
            ticket,
            "assigned",
            actor,
            now=now,
            old=previous if previous != tech.email else None,
            new=tech.email,
            reason=reason,
            data=data,
        )
        # A ticket assigned as it is opened: its acknowledgment names the technician, no second mail.
        fresh = ticket.status is TicketStatus.NEW
        if fresh:
            self.desk.set_status(session, ticket, TicketStatus.OPEN, actor, now=now, reason="assigned")
        log.info(
            "ASSIGNED #%d to=%s score=%s by=%s %s",
            ticket.id,
            tech.email,
            decision.score if decision else "-",
            actor,
            reason,
        )
        first_text = session.execute(
            select(Message.new_text)
            .where(Message.ticket_id == ticket.id, Message.direction == "in", Message.internal.is_(False))
            .order_by(Message.id)
            .limit(1)
        ).scalar()
        self.mail_technician(
            session,
            ticket,
            member,
            "technician_assigned",
            now=now,
            kind="assignment",
            context={
                "requester_text": (first_text or "").strip(),
                "routing": routing_summary(ticket),
                "score": decision.score if decision else None,
                "parts": dict(decision.parts) if decision else {},
                "similar": similar_resolved(session, ticket, first_text or ""),
                "escalated_from": escalated_from,
                "reason": reason,
            },
        )
        done = ticket.status in (TicketStatus.RESOLVED, TicketStatus.CLOSED)
        if previous is None and not fresh and ticket.requester and not done:
            self.desk.mail_requester(
                session,
                ticket,
                "requester_assigned",
                now=now,
                kind="assigned",
                automatic=True,
                context={"technician_name": tech.name},
            )

    def nobody_fits(
        self,
        session: Session,
        ticket: Ticket,
        decision: AssignmentDecision,
        *,
        now: datetime,
        reason: str,
        tell: bool,
    ) -> None:
        explanation = decision.explanation() or "no technician fits"
        self.desk.event(
            session,
            ticket,
            "unassigned",
            "system",
            now=now,
            reason=f"{reason}: nobody fits",
            data=decision.reason(),
        )
        log.info("UNASSIGNED #%d nobody fits: %s", ticket.id, explanation.replace("\n", "; "))
        if tell:
            self.tell_coordinators(
                session,
                ticket,
                "coordinator_unassigned",
                now=now,
                context={"explanation": explanation.splitlines(), "reason": reason},
            )

    def tell_coordinators(
        self,
        session: Session,
        ticket: Ticket,
        template: str,
        *,
        now: datetime,
        context: dict[str, Any],
        kind: str = "coordinator",
    ) -> int:
        sent = 0
        for coord_id, coord in coordinators(session):
            reply_to = self.desk.identity.plus_address(
                coordinator_token(self.desk.identity.secret, ticket.id, coord_id, now=now)
            )
            to = (coord.name, coord.email)
            if self.hold_notice(session, ticket, to, coord.language, template, reply_to, now=now):
                continue
            queued = self.desk.mail(
                session,
                ticket,
                template,
                to=to,
                language=coord.language,
                reply_to=reply_to,
                now=now,
                kind=kind,
                automatic=False,
                context={"coordinator": coord, "routing": routing_summary(ticket), **context},
            )
            sent += queued is not None
        return sent

    # -- the staff notice budget and its digest ----------------------------------------------

    def hold_notice(
        self,
        session: Session,
        ticket: Ticket,
        to: tuple[str, str],
        language: str,
        template: str,
        reply_to: str,
        *,
        now: datetime,
    ) -> bool:
        """True when `to` has had their hourly share of notices: this one is held for the digest."""
        decision = self.desk.budgets.staff_notice(session, to[1], now)
        if decision.allowed:
            return False
        session.add(
            HeldNotice(
                created_at=now,
                recipient=to[1].lower(),
                recipient_name=to[0][:300],
                language=language,
                ticket_id=ticket.id,
                kind=template[:30],
                summary=ticket.subject[:300],
                reply_to=reply_to,
            )
        )
        self.desk.event(
            session,
            ticket,
            "notice_held",
            "system",
            now=now,
            reason=f"{template} to {to[1]} held for the digest: {decision.reason}",
        )
        _throttled(
            f"held:{to[1]}",
            logging.INFO,
            "HELD %s #%d to=%s (%s)",
            template,
            ticket.id,
            to[1],
            decision.reason,
        )
        return True

    def send_digests(self, session: Session, now: datetime) -> int:
        """One digest to each person with held notices, a few minutes after the first, once an hour."""
        pending = session.execute(
            select(HeldNotice.recipient, func.min(HeldNotice.created_at))
            .where(HeldNotice.digested_at.is_(None))
            .group_by(HeldNotice.recipient)
        ).all()
        sent = 0
        for recipient, oldest in pending:
            if now - oldest < DIGEST_GATHER or not self.desk.budgets.digest(session, recipient, now):
                continue
            held = list(
                session.scalars(
                    select(HeldNotice)
                    .where(HeldNotice.recipient == recipient, HeldNotice.digested_at.is_(None))
                    .order_by(HeldNotice.id)
                )
            )
            queued = self._digest(session, held, now)
            session.execute(
                update(HeldNotice)
                .where(HeldNotice.id.in_([h.id for h in held]))
                .values(digested_at=now, digest_outbox_id=queued)
            )
            log.info("DIGEST to=%s notices=%d outbox=%d", recipient, len(held), queued)
            sent += 1
        return sent

    def _digest(self, session: Session, held: list[HeldNotice], now: datetime) -> int:
        first = held[0]
        desk = self.desk
        numbers = {h.ticket_id for h in held}
        requesters = dict(
            session.execute(select(Ticket.id, Ticket.requester).where(Ticket.id.in_(numbers))).all()
        )
        items = [
            {
                "ticket": h.ticket_id,
                "kind": h.kind,
                "subject": h.summary,
                "requester": requesters.get(h.ticket_id, ""),
                "reply_to": h.reply_to,
                "at": h.created_at.strftime("%H:%M"),
            }
            for h in held[:DIGEST_LISTED]
        ]
        body = desk.renderer.render(
            "staff_digest",
            first.language,
            recipient_name=first.recipient_name or first.recipient,
            count=len(held),
            tickets=len(numbers),
            items=items,
            more=max(0, len(held) - DIGEST_LISTED),
            since=first.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            limit=desk.limits.staff_notices_per_hour,
            helpdesk_name=desk.identity.name,
        )
        subject = desk.renderer.render(
            "staff_digest_subject", first.language, count=len(held), helpdesk_name=desk.identity.name
        ).strip()
        draft = Draft(
            to=((first.recipient_name, first.recipient),),
            subject=subject,
            body=body,
            language=desk.renderer.language_for(first.language),
            reply_to=desk.identity.address,
            automatic=False,
            generated=True,
        )
        queued = enqueue(session, desk.identity, desk.outgoing, draft, kind="digest", now=now)
        return queued.id
