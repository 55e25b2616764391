"""Labelled examples for `helpdesk retrain --from-db`: what resolved tickets finally turned out to be.

The label is the ticket's final category or priority, so a technician's or coordinator's
correction (`#category network`) is what the next model learns. The text is the ticket's
subject and the new part of the requester's first mail, exactly what routing saw. Tickets left
in `triage` taught nobody anything and are skipped for the category model.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.message import Message, MessageKind
from models.ticket import DONE_STATUSES, Ticket
from routing.dataset import Example
from routing.facts import DEFAULT_CATEGORY


def examples_from_db(session: Session, target: str) -> list[Example]:
    first = (
        select(Message.ticket_id, func.min(Message.id).label("first_id"))
        .where(Message.direction == "in", Message.kind == MessageKind.REQUESTER.value)
        .group_by(Message.ticket_id)
        .subquery()
    )
    rows = session.execute(
        select(Ticket.id, Ticket.subject, Ticket.category, Ticket.priority, Message.new_text, Message.text)
        .join(first, first.c.ticket_id == Ticket.id)
        .join(Message, Message.id == first.c.first_id)
        .where(Ticket.status.in_(DONE_STATUSES))
        .order_by(Ticket.id)
    )
    examples: list[Example] = []
    for ticket_id, subject, category, priority, new_text, text in rows:
        if target == "category":
            if category == DEFAULT_CATEGORY:
                continue
            label = category
        else:
            label = priority.value
        # The key keeps a ticket on the same side of the split from one retrain to the next.
        examples.append(Example(subject or "", new_text or text or "", label, key=f"ticket:{ticket_id}"))
    return examples
