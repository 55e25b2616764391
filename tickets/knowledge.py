"""The knowledge base: articles published from resolved tickets, edited with a version history.

A technician publishes a ticket's resolution with `#publish TITLE` beside `#resolve`; a
coordinator may publish any resolved ticket's. The article's text is the resolution the
technician wrote, never the requester's mail, and before it is stored the requester's personal
data is scrubbed from it (`scrub`): the names, mail addresses, phone numbers and postal codes of
the people who wrote to the ticket, and any run of their own words the resolution copied. An
article keeps its language and category (the ticket's), the tickets it came from, and every
version. These are the queries the command line and the web pages read (`list_articles`,
`article`, `versions`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.loop import Article, ArticleStatus, ArticleVersion
from models.message import Message
from models.ticket import EventKind, Participant, Ticket
from tickets.errors import KnowledgeError
from tickets.events import record_event

log = logging.getLogger("helpdesk.knowledge")

TITLE_MAX = 300
# A run of this many of the requester's own words in a row, copied into a resolution, is theirs.
COPIED_RUN = 6
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
# Seven or more digits with the separators phone numbers are written with.
_PHONE = re.compile(r"(?<![\w+])\+?\d[\d ()./-]{5,}\d(?!\w)")
_POSTAL = re.compile(r"(?<!\w)(?:\d{2}-\d{3}|\d{5})(?!\w)")
_WORD = re.compile(r"\w+", re.UNICODE)
NAME = "[name]"
ADDRESS = "[address]"
PHONE = "[phone]"
POSTAL = "[postal code]"
ELIDED = "[…]"


@dataclass(frozen=True)
class Personal:
    """What is personal on a ticket: who wrote to it, and what they wrote."""

    names: frozenset[str]
    addresses: frozenset[str]
    texts: tuple[str, ...]


def personal_data(session: Session, ticket: Ticket) -> Personal:
    """The names, addresses and texts of everyone but staff who is on the ticket or wrote to it."""
    people = session.execute(
        select(Participant.address, Participant.name).where(
            Participant.ticket_id == ticket.id, Participant.role != "technician"
        )
    ).all()
    inbound = session.execute(
        select(Message.from_addr, Message.from_name, Message.text).where(
            Message.ticket_id == ticket.id, Message.direction == "in", Message.kind != "technician"
        )
    ).all()
    names = {ticket.requester_name, *(p.name for p in people), *(m.from_name for m in inbound)}
    addresses = {ticket.requester, *(p.address for p in people), *(m.from_addr for m in inbound)}
    return Personal(
        names=frozenset(n for n in names if n),
        addresses=frozenset(a.lower() for a in addresses if a),
        texts=tuple(m.text for m in inbound if m.text),
    )


def scrub(text: str, personal: Personal) -> str:
    """`text` without the personal data of the people in `personal` (see the module's docstring)."""
    theirs = "\n".join(personal.texts)
    for address in sorted(personal.addresses, key=len, reverse=True):
        text = re.sub(re.escape(address), ADDRESS, text, flags=re.IGNORECASE)
    phones = {_digits(p) for p in _PHONE.findall(theirs) if len(_digits(p)) >= 7}
    text = _PHONE.sub(lambda m: PHONE if _same_phone(_digits(m.group()), phones) else m.group(), text)
    postal = set(_POSTAL.findall(theirs))
    text = _POSTAL.sub(lambda m: POSTAL if m.group() in postal else m.group(), text)
    # Names: the whole name first, then each part of it long enough not to be a common word, in
    # any of its inflected forms (Polish and German decline names: Zofia, Zofii; Kowalska, Kowalskiej).
    for name in sorted(personal.names, key=len, reverse=True):
        text = re.sub(rf"(?<!\w){re.escape(name)}(?!\w)", NAME, text, flags=re.IGNORECASE)
    parts = {part for name in personal.names for part in _WORD.findall(name) if len(part) >= 3}
    for part in sorted(parts, key=len, reverse=True):
        form = re.escape(part[:-2]) + r"\w{0,4}" if len(part) >= 5 else re.escape(part)
        text = re.sub(rf"(?<!\w){form}(?!\w)", NAME, text, flags=re.IGNORECASE)
    return _elide_copied(text, theirs)


def _digits(text: str) -> str:
    return "".join(c for c in text if c.isdigit())


def _same_phone(digits: str, phones: set[str]) -> bool:
    """One number with or without its country code: +48 601 234 567 is 601-234-567."""
    return len(digits) >= 7 and any(p.endswith(digits) or digits.endswith(p) for p in phones)


def _elide_copied(text: str, theirs: str) -> str:
    """Replace every run of COPIED_RUN or more words that also stands, in that order, in `theirs`."""
    their_words = [w.lower() for w in _WORD.findall(theirs)]
    runs = {tuple(their_words[i : i + COPIED_RUN]) for i in range(len(their_words) - COPIED_RUN + 1)}
    if not runs:
        return text
    matches = list(_WORD.finditer(text))
    words = [m.group().lower() for m in matches]
    copied = [False] * len(words)
    for i in range(len(words) - COPIED_RUN + 1):
        if tuple(words[i : i + COPIED_RUN]) in runs:
            copied[i : i + COPIED_RUN] = [True] * COPIED_RUN
    out, position, i = [], 0, 0
    while i < len(words):
        if not copied[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(words) and copied[j + 1]:
            j += 1
        out.append(text[position : matches[i].start()])
        out.append(ELIDED)
        position = matches[j].end()
        i = j + 1
    out.append(text[position:])
    return "".join(out)


def publish(session: Session, ticket: Ticket, title: str, *, actor: str, now: datetime) -> Article:
    """The ticket's resolution as an article (a new version of the one it was published as before)."""
    if not ticket.resolution:
        raise KnowledgeError(f"ticket #{ticket.id} has no resolution to publish")
    personal = personal_data(session, ticket)
    title = scrub(" ".join(title.split()), personal)[:TITLE_MAX]
    body = scrub(ticket.resolution.strip(), personal)
    found = _published_from(session, ticket.id)
    if found is None:
        found = Article(
            title=title,
            body=body,
            language=ticket.language,
            category=ticket.category,
            status=ArticleStatus.PUBLISHED,
            source_tickets=[ticket.id],
            version=1,
            created_at=now,
            updated_at=now,
            created_by=actor,
        )
        session.add(found)
        session.flush()
        note = f"published from ticket #{ticket.id}"
    else:
        _new_version(found, title=title, body=body, category=ticket.category, now=now)
        found.status = ArticleStatus.PUBLISHED
        note = f"published again from ticket #{ticket.id}"
    session.add(_version_row(found, actor, now, note))
    record_event(
        session,
        ticket,
        EventKind.KB_PUBLISHED,
        actor,
        now=now,
        new=f"KB-{found.id}",
        reason=f"{note}: {title}",
        data={"article": found.id, "version": found.version},
    )
    log.info("PUBLISHED KB-%d v%d from #%d by=%s", found.id, found.version, ticket.id, actor)
    return found


def _published_from(session: Session, ticket_id: int) -> Article | None:
    for found in session.scalars(select(Article).order_by(Article.id)):
        if ticket_id in (found.source_tickets or []):
            return found
    return None


def _new_version(found: Article, *, title: str, body: str, category: str, now: datetime) -> None:
    found.title, found.body, found.category = title, body, category
    found.version += 1
    found.updated_at = now


def _version_row(found: Article, by: str, now: datetime, note: str) -> ArticleVersion:
    return ArticleVersion(
        article_id=found.id,
        version=found.version,
        title=found.title,
        body=found.body,
        category=found.category,
        at=now,
        by=by,
        note=note,
    )


def edit(
    session: Session,
    article_id: int,
    *,
    by: str,
    now: datetime,
    title: str | None = None,
    body: str | None = None,
    category: str | None = None,
    note: str = "edited",
) -> Article:
    """A new version of an article with what changed; the earlier versions stay."""
    found = article(session, article_id)
    _new_version(
        found,
        title=" ".join(title.split())[:TITLE_MAX] if title is not None else found.title,
        body=body.strip() if body is not None else found.body,
        category=category if category is not None else found.category,
        now=now,
    )
    session.add(_version_row(found, by, now, note))
    log.info("EDITED KB-%d v%d by=%s", found.id, found.version, by)
    return found


def set_published(session: Session, article_id: int, published: bool, *, now: datetime) -> Article:
    found = article(session, article_id)
    found.status = ArticleStatus.PUBLISHED if published else ArticleStatus.UNPUBLISHED
    found.updated_at = now
    log.info("%s KB-%d", "PUBLISHED" if published else "UNPUBLISHED", found.id)
    return found


def article(session: Session, article_id: int) -> Article:
    found = session.get(Article, article_id)
    if found is None:
        raise KnowledgeError(f"no article KB-{article_id}")
    return found


def list_articles(
    session: Session, *, published_only: bool = False, languages: Iterable[str] = ()
) -> list[Article]:
    query = select(Article).order_by(Article.id)
    if published_only:
        query = query.where(Article.status == ArticleStatus.PUBLISHED)
    wanted = list(languages)
    if wanted:
        query = query.where(Article.language.in_(wanted))
    return list(session.scalars(query))


def versions(session: Session, article_id: int) -> list[ArticleVersion]:
    return list(
        session.scalars(
            select(ArticleVersion)
            .where(ArticleVersion.article_id == article_id)
            .order_by(ArticleVersion.version)
        )
    )
