"""The hourly budget of notices to each technician and coordinator, and the digest of those held.

A flood of tickets (a thousand forged senders in an hour) must not become a thousand mails to one
technician. Every notice the desk sends a technician or coordinator on its own draws on their
hourly budget (`[limits] staff_notices_per_hour`); past it the ticket is still assigned and in
their queue, but the notice is held and folded, with everything else held for them, into one
digest mail, sent a few minutes after the first was held and at most once an hour (by the SLA
timer's pass). The digest lists each ticket with its signed reply address, so each can still be
worked by mail.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.budget import HeldNotice
from models.outbox import OutboxKind
from models.ticket import EventKind, Ticket
from notify.budget import LogThrottle
from notify.compose import Draft
from notify.outbox import enqueue
from tickets.events import record_event
from tickets.mailer import Mailer

log = logging.getLogger("helpdesk.assign")
_throttled = LogThrottle(log)

DIGEST_GATHER = timedelta(minutes=5)  # a digest waits this long after the first held notice
DIGEST_LISTED = 200  # tickets listed one by one in a digest; the rest are counted


class NoticeDigests:
    """Holds staff notices over the hourly budget, and sends each person one digest of them."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer

    def hold(
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
        decision = self.mailer.budgets.staff_notice(session, to[1], now)
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
        record_event(
            session,
            ticket,
            EventKind.NOTICE_HELD,
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

    def send(self, session: Session, now: datetime) -> int:
        """One digest to each person with held notices, a few minutes after the first, once an hour."""
        pending = session.execute(
            select(HeldNotice.recipient, func.min(HeldNotice.created_at))
            .where(HeldNotice.digested_at.is_(None))
            .group_by(HeldNotice.recipient)
        ).all()
        sent = 0
        for recipient, oldest in pending:
            if now - oldest < DIGEST_GATHER or not self.mailer.budgets.digest(session, recipient, now):
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
        mailer = self.mailer
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
        body = mailer.renderer.render(
            "staff_digest",
            first.language,
            recipient_name=first.recipient_name or first.recipient,
            count=len(held),
            tickets=len(numbers),
            items=items,
            more=max(0, len(held) - DIGEST_LISTED),
            since=first.created_at.strftime("%Y-%m-%d %H:%M UTC"),
            limit=mailer.limits.staff_notices_per_hour,
            helpdesk_name=mailer.identity.name,
        )
        subject = mailer.renderer.render(
            "staff_digest_subject", first.language, count=len(held), helpdesk_name=mailer.identity.name
        ).strip()
        draft = Draft(
            to=((first.recipient_name, first.recipient),),
            subject=subject,
            body=body,
            language=mailer.renderer.language_for(first.language),
            reply_to=mailer.identity.address,
            automatic=False,
            generated=True,
        )
        queued = enqueue(session, mailer.identity, mailer.outgoing, draft, kind=OutboxKind.DIGEST, now=now)
        return queued.id
