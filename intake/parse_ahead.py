"""A claimed group of mails, read and parsed before the transaction that writes it.

The worker takes the next group off its claimed ids (`select_group`): each row read in a short
read, no write lock held, and a mail already tried before (the worker died on it) in a group of
its own. `parse_group` then hands the group's bytes to the parser's processes, side by side,
while the worker writes the previous group; what cannot be parsed carries its quarantine reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.config import IntakeConfig
from intake.errors import IsolatedFailure, ParseError, PipelineError
from intake.isolation import PARSE, Foresight, ParsePool, describe, load_target
from models import tables
from models.mail import ParsedEmail
from models.raw_message import RawStatus

# Mails held at once before their transaction, by their raw size: memory stays bounded.
MAX_GROUP_BYTES = 32 * 1024 * 1024
# A group parsed while the previous one is written holds at most this many times as many mails:
# parsing a mail in the pool takes a fraction of writing one, so from a claim's first small group
# (one mail per parser process, the only parse nothing else overlaps) the groups grow to full size
# without the writer waiting for a whole group's parse.
RAMP = 3

_raw = tables.raw_messages


class InProcessParser:
    """Parses in this process, without a budget (`processing_budget = 0`): for debugging and measuring."""

    def __init__(self, config: IntakeConfig, *, target: str = PARSE) -> None:
        self.config = config
        self._parse = load_target(target)

    def start(self) -> None:
        return None

    def parse(self, data: bytes) -> ParsedEmail:
        return self._parse(data, self.config)

    def parse_many(self, mails: Sequence[bytes]) -> list[ParsedEmail | PipelineError]:
        results: list[ParsedEmail | PipelineError] = []
        for data in mails:
            try:
                results.append(self._parse(data, self.config))
            except PipelineError as exc:
                results.append(exc)
            except Exception as exc:
                results.append(IsolatedFailure(describe(exc)))
        return results

    def close(self) -> None:
        return None


def parser_for(
    config: IntakeConfig, *, target: str = PARSE, foresight: Foresight | None = None
) -> ParsePool | InProcessParser:
    """The pool of parser processes, or parsing in this process when there is no budget (then the
    routing engine does the foreseeable work itself, when it routes)."""
    if config.processing_budget > 0:
        return ParsePool(config, target=target, foresight=foresight)
    return InProcessParser(config, target=target)


@dataclass
class Prepared:
    """One claimed mail, parsed (or why it could not be) before its transaction begins."""

    raw_id: int
    data: bytes | None = None  # the stored bytes, read once (stages that need them get these)
    mail: ParsedEmail | None = None
    failure: str | None = None  # the quarantine reason


def reason(exc: Exception) -> str:
    if isinstance(exc, ParseError):
        return f"ParseError: {exc}"
    if isinstance(exc, PipelineError):  # from the parser's process: the message says it all
        return str(exc)
    return describe(exc)


def select_group(
    session: Session, pending: list[int], holder: str, config: IntakeConfig, limit: int
) -> list[Prepared]:
    """The next group of `pending`, at most `limit` (taking them off it), with the bytes to parse."""
    group: list[Prepared] = []
    held = 0
    size = min(limit, config.commit_every)
    while pending and len(group) < size:
        # What decides the group first, in one short read; then the bytes of those taken, in another.
        ahead = pending[: size - len(group)]
        rows = {
            row.id: row
            for row in session.execute(
                select(
                    _raw.c.id, _raw.c.attempts, _raw.c.status, _raw.c.claimed_by, func.length(_raw.c.data)
                ).where(_raw.c.id.in_(ahead))
            )
        }
        session.rollback()  # nothing is held while the group is parsed
        full = False
        for raw_id in ahead:
            row = rows.get(raw_id)
            if row is None or row.status != RawStatus.PROCESSING or row.claimed_by != holder:
                pending.remove(raw_id)  # gone, or taken over by another worker after our lease ran out
                continue
            suspect = row.attempts > 1
            if suspect and group:
                full = True
                break  # alone, in a group of its own
            pending.remove(raw_id)
            group.append(Prepared(raw_id, data=b"" if row.attempts <= config.max_attempts else None))
            held += row[4] or 0
            if suspect or held > MAX_GROUP_BYTES:
                full = True
                break
        if full:
            break
    wanted = [item.raw_id for item in group if item.data is not None]  # past max_attempts: unread
    if wanted:
        found = session.execute(select(_raw.c.id, _raw.c.data).where(_raw.c.id.in_(wanted)))
        data: dict[int, bytes] = {row.id: row.data for row in found}
        session.rollback()
        for item in group:
            if item.data is not None:
                item.data = bytes(data.get(item.raw_id) or b"")
    return group


def parse_group(parser: ParsePool | InProcessParser, group: list[Prepared]) -> None:
    """Parse a group's mails in the parser's processes; a mail that cannot be gets its reason."""
    items = [item for item in group if item.data is not None and item.mail is None]
    if not items:
        return
    try:
        results = parser.parse_many([item.data for item in items if item.data is not None])
    except Exception as exc:  # the pool itself failed: every mail of the group says why
        results = [PipelineError(reason(exc)) for _ in items]
    for item, result in zip(items, results, strict=True):
        if isinstance(result, PipelineError):
            item.failure = reason(result)
        else:
            item.mail = result
