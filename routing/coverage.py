"""Shift coverage: how many technicians are on duty each hour, per language and per category skill.

Pure: technicians and an instant in, a grid out. An hour counts a technician when they are on
duty at its middle (a shift that starts or ends on the half hour counts for the hour it covers
most of). A skill counts from `MIN_SKILL` up, the level a ticket of that category needs to be
worked rather than passed on. An hour where a language or a category has nobody is a gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from routing.people import Technician
from routing.shifts import duty_intervals

MIN_SKILL = 3
HOURS = 7 * 24
_MIDDLE = timedelta(minutes=30)


@dataclass(frozen=True)
class Coverage:
    """On-duty counts hour by hour from `start` (a whole UTC hour)."""

    start: datetime
    hours: int
    total: tuple[int, ...]  # technicians on duty, by hour
    by_language: dict[str, tuple[int, ...]]
    by_skill: dict[str, tuple[int, ...]]  # category -> technicians with skill >= MIN_SKILL

    def hour(self, index: int) -> datetime:
        return self.start + timedelta(hours=index)

    def gaps(self) -> list[tuple[str, str, int]]:
        """(kind, name, hour index) of every hour nobody covers, languages then skills."""
        found: list[tuple[str, str, int]] = []
        for kind, table in (("language", self.by_language), ("skill", self.by_skill)):
            for name, counts in table.items():
                found.extend((kind, name, i) for i, count in enumerate(counts) if count == 0)
        return found

    def gap_hours(self, counts: Sequence[int]) -> int:
        return sum(1 for count in counts if count == 0)


def whole_hour(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def coverage(
    technicians: Iterable[Technician],
    start: datetime,
    *,
    hours: int = HOURS,
    languages: Iterable[str] = (),
    categories: Iterable[str] = (),
    min_skill: int = MIN_SKILL,
) -> Coverage:
    """Counts for every language and category the technicians have, and those named even if nobody has them."""
    active = [t for t in technicians if t.active]
    first = whole_hour(start)
    middles = [first + timedelta(hours=h) + _MIDDLE for h in range(hours)]
    # Each technician's spans for the whole week at once: one calendar walk each, not one an hour.
    spans = [duty_intervals(t.schedule, t.zone, first, first + timedelta(hours=hours)) for t in active]
    on_duty = [[any(b <= at < e for b, e in mine) for mine in spans] for at in middles]
    langs = sorted({*languages, *(lang for t in active for lang in t.languages)})
    cats = sorted({*categories, *(c for t in active for c, level in t.skills.items() if level >= min_skill)})
    return Coverage(
        start=first,
        hours=hours,
        total=tuple(sum(row) for row in on_duty),
        by_language={
            lang: tuple(
                sum(1 for t, on in zip(active, row, strict=True) if on and t.speaks(lang)) for row in on_duty
            )
            for lang in langs
        },
        by_skill={
            cat: tuple(
                sum(1 for t, on in zip(active, row, strict=True) if on and t.skill(cat) >= min_skill)
                for row in on_duty
            )
            for cat in cats
        },
    )
