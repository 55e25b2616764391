"""Articles that may answer a new request, for its acknowledgment.

An article is compared with the request by TF-IDF cosine over words (lower-cased, stop words of
English, Polish and German dropped, each cut to its first STEM letters so that "drukarka" meets
"drukarki" and "printer" meets "printing"). An article's side is its title (twice), its text, and
the requests of the tickets it was published from: those words find the next requester who
describes the same problem the same way, and they are only compared, never shown. Only published
articles in the request's own language are offered, at most `[knowledge] suggestions` of them,
and only at `suggest_threshold` or above (calibrated by `bench/kb_suggestions.py`). When a rule or
a confident classifier routed the request (its category is not the default one), only articles of
that category are offered: on real tickets that lifts the share of right suggestions from about
two in three to nearly nine in ten (the benchmark's "routed" figures).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.loop import Article, ArticleStatus
from models.message import Message
from tickets.loop_config import KnowledgeConfig

STEM = 6
TEXT_CHARS = 5000  # of each request compared: a request is told by its start
EXCERPT_CHARS = 220
_WORD = re.compile(r"[^\W\d_]{3,}", re.UNICODE)
STOP_WORDS = frozenset(
    # English
    "the and for you your are was were has have had not but this that with from they them there "
    "what when which who will would can could should please thanks thank hello dear regards best "
    "our all any been being into its just more also since does did how why get got any some "
    # Polish
    "nie jest się ale czy dla jak ten ta to też już przez przy jestem mam może jako tak lub oraz "
    "dzień dobry pozdrawiam dziękuję proszę bardzo który która które jego jej ich "
    # German
    "und die der das den dem des ist nicht mit sie ich ein eine einen einem einer auf für von bei "
    "wir ihr sich auch noch nach wie was hallo danke bitte grüße freundlichen viele sehr geehrte "
    "seit kann können habe haben hat wird werden".split()
)


@dataclass(frozen=True)
class Suggestion:
    article: int
    title: str
    excerpt: str
    score: float
    url: str = ""

    def as_dict(self) -> dict[str, object]:
        return {"article": self.article, "title": self.title, "score": self.score}


def terms(text: str) -> Counter[str]:
    return Counter(
        word[:STEM]
        for word in (w.lower() for w in _WORD.findall(text[:TEXT_CHARS]))
        if word not in STOP_WORDS
    )


class Matcher:
    """TF-IDF cosine of a request against a fixed set of documents (smoothed IDF, sublinear TF)."""

    def __init__(self, documents: Sequence[str]) -> None:
        counted = [terms(d) for d in documents]
        df: Counter[str] = Counter()
        for doc in counted:
            df.update(doc.keys())
        n = len(counted)
        self._idf = {w: math.log((1 + n) / (1 + c)) + 1.0 for w, c in df.items()}
        self._default_idf = math.log(1 + n) + 1.0
        self._docs = [self._normalised(doc) for doc in counted]

    def _normalised(self, counts: Counter[str]) -> dict[str, float]:
        vector = {w: (1 + math.log(c)) * self._idf.get(w, self._default_idf) for w, c in counts.items()}
        norm = math.sqrt(sum(v * v for v in vector.values())) or 1.0
        return {w: v / norm for w, v in vector.items()}

    def scores(self, request: str) -> list[float]:
        query = self._normalised(terms(request))
        return [sum(value * doc.get(word, 0.0) for word, value in query.items()) for doc in self._docs]


def excerpt(body: str, limit: int = EXCERPT_CHARS) -> str:
    text = " ".join(body.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",.;:") + " …"


def article_match_text(title: str, body: str, requests: Sequence[str]) -> str:
    return " ".join([title, title, body, *requests])


def suggest(
    session: Session,
    language: str,
    request: str,
    config: KnowledgeConfig,
    *,
    category: str | None = None,
    exclude_ticket: int | None = None,
) -> list[Suggestion]:
    """The published articles in `language` (and `category`, when given) most like `request`, best
    first, at the threshold or above."""
    if config.suggestions <= 0:
        return []
    query = select(Article).where(Article.status == ArticleStatus.PUBLISHED, Article.language == language)
    if category is not None:
        query = query.where(Article.category == category)
    articles = list(session.scalars(query.order_by(Article.id)))
    if not articles:
        return []
    sources = {t for a in articles for t in (a.source_tickets or []) if t != exclude_ticket}
    requests: dict[int, list[str]] = {}
    if sources:
        rows = session.execute(
            select(Message.ticket_id, Message.subject, Message.new_text)
            .where(Message.ticket_id.in_(sources), Message.direction == "in", Message.kind == "requester")
            .order_by(Message.id)
        )
        for ticket_id, subject, text in rows:
            if ticket_id not in requests:  # the request that opened it
                requests[ticket_id] = [subject, (text or "")[:TEXT_CHARS]]
    documents = [
        article_match_text(
            a.title, a.body, [r for t in (a.source_tickets or []) for r in requests.get(t, [])]
        )
        for a in articles
    ]
    scored = sorted(
        zip(Matcher(documents).scores(request), articles, strict=True),
        key=lambda pair: (-pair[0], pair[1].id),
    )
    base = config.site_url.rstrip("/")
    return [
        Suggestion(a.id, a.title, excerpt(a.body), round(score, 3), f"{base}/kb-{a.id}.html" if base else "")
        for score, a in scored[: config.suggestions]
        if score >= config.suggest_threshold
    ]
