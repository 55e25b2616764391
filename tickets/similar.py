"""The resolved tickets most like a new one, with their resolution notes, for the assignment mail.

TF-IDF cosine over the subject (counted twice) and the start of the requester's text, among the
newest resolved tickets; a ticket of the same category gets a small bonus.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.message import Message
from models.ticket import Ticket

SIMILAR_CANDIDATES = 300  # resolved tickets compared, newest first
# Characters of each text compared: a ticket is told by its start, and without a cap one huge mail
# on a resolved ticket would be read again (holding the GIL) for every new ticket after it.
SIMILAR_TEXT_CHARS = 5000
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)


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
