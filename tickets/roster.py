"""The technicians and coordinators in the database: import, list, change, and read for assignment.

The typed roster (`routing.people`) is parsed and validated from the TOML file; this module
stores it. A re-import updates people by email and never duplicates them; people missing from
the file are left as they are (deactivate them with `helpdesk technicians set EMAIL active=false`).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from sqlalchemy import case, event, select, update
from sqlalchemy.orm import Session

from models.people import CoordinatorRow, TechnicianRow
from routing.people import Coordinator, People, Technician
from routing.shifts import parse_schedule
from routing.technician_settings import apply_settings
from tickets.errors import UnknownPerson


@dataclass(frozen=True)
class StaffMember:
    """A technician with the database facts assignment needs."""

    id: int
    technician: Technician
    last_assigned_at: datetime | None

    @property
    def email(self) -> str:
        return self.technician.email


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    coordinators_created: list[str] = field(default_factory=list)
    coordinators_updated: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)


def technician_of(row: TechnicianRow) -> Technician:
    return Technician(
        name=row.name,
        email=row.email,
        schedule=parse_schedule(list(row.shifts)),
        tier=row.tier,
        languages=tuple(row.languages),
        timezone=row.timezone,
        max_open=row.max_open,
        skills=MappingProxyType({str(k): int(v) for k, v in dict(row.skills).items()}),
        active=row.active,
    )


def _write(row: TechnicianRow, tech: Technician) -> bool:
    """Copy `tech` onto `row`; True when anything changed."""
    values = tech.as_dict()
    changed = False
    for key in ("name", "tier", "languages", "timezone", "max_open", "shifts", "skills", "active"):
        if getattr(row, key) != values[key]:
            setattr(row, key, values[key])
            changed = True
    return changed


def import_people(session: Session, people: People) -> ImportReport:
    report = ImportReport()
    existing = {row.email: row for row in session.scalars(select(TechnicianRow))}
    for tech in people.technicians:
        row = existing.get(tech.email)
        if row is None:
            row = TechnicianRow(email=tech.email)
            _write(row, tech)
            session.add(row)
            report.created.append(tech.email)
        elif _write(row, tech):
            report.updated.append(tech.email)
        else:
            report.unchanged.append(tech.email)
    in_file = {tech.email for tech in people.technicians}
    report.not_in_file = sorted(email for email in existing if email not in in_file)
    coordinators = {row.email: row for row in session.scalars(select(CoordinatorRow))}
    for coord in people.coordinators:
        crow = coordinators.get(coord.email)
        if crow is None:
            session.add(CoordinatorRow(email=coord.email, name=coord.name, language=coord.language))
            report.coordinators_created.append(coord.email)
        elif (crow.name, crow.language, crow.active) != (coord.name, coord.language, True):
            crow.name, crow.language, crow.active = coord.name, coord.language, True
            report.coordinators_updated.append(coord.email)
    return report


def staff(session: Session) -> list[StaffMember]:
    """Every technician (active or not), in a stable order."""
    rows = session.scalars(select(TechnicianRow).order_by(TechnicianRow.email))
    return [_member(session, row) for row in rows]


def technician_by_id(session: Session, technician_id: int) -> StaffMember | None:
    row = session.get(TechnicianRow, technician_id)
    return _member(session, row) if row is not None else None


def technician_by_email(session: Session, email: str) -> StaffMember | None:
    row = session.scalars(select(TechnicianRow).where(TechnicianRow.email == email.strip().lower())).first()
    return _member(session, row) if row is not None else None


# -- when each technician was last given a ticket ------------------------------------------------
#
# Written as it happened, the stamp locked the technician's row from the assignment to the end of
# the transaction: two workers on one PostgreSQL whose groups gave tickets to Alicja then Bob, and
# to Bob then Alicja, each held one row and waited for the other's (a deadlock; retried, but each
# costs a whole group). The stamps of a transaction are kept in the session instead, read back by
# the functions above (so the round-robin between equals is the same), and written just before it
# commits, in technician-id order: every writer locks the rows in one order and none can deadlock.

_STAMPS = "helpdesk.last_assigned"


def note_assigned(session: Session, technician_id: int, when: datetime) -> None:
    """Record that `technician_id` was given a ticket at `when`, written when `session` commits."""
    stamps: dict[int, datetime] = session.info.setdefault(_STAMPS, {})
    stamps[technician_id] = max(when, stamps.get(technician_id, when))
    if not event.contains(session, "before_commit", _write_stamps):
        event.listen(session, "before_commit", _write_stamps)
        event.listen(session, "after_soft_rollback", _forget_stamps)


def _member(session: Session, row: TechnicianRow) -> StaffMember:
    stamp = session.info.get(_STAMPS, {}).get(row.id, row.last_assigned_at)
    return StaffMember(row.id, technician_of(row), stamp)


def _write_stamps(session: Session) -> None:
    stamps: dict[int, datetime] = session.info.pop(_STAMPS, {})
    column = TechnicianRow.last_assigned_at
    for technician_id in sorted(stamps):
        when = stamps[technician_id]
        # The latest stamp wins whichever transaction commits last.
        session.execute(
            update(TechnicianRow)
            .where(TechnicianRow.id == technician_id)
            .values(last_assigned_at=case((column.is_(None) | (column < when), when), else_=column)),
            execution_options={"synchronize_session": False},
        )


def _forget_stamps(session: Session, previous_transaction: object) -> None:
    session.info.pop(_STAMPS, None)


def coordinators(session: Session) -> list[tuple[int, Coordinator]]:
    rows = session.scalars(
        select(CoordinatorRow).where(CoordinatorRow.active.is_(True)).order_by(CoordinatorRow.email)
    )
    return [(row.id, Coordinator(row.name, row.email, row.language)) for row in rows]


def coordinator_by_email(session: Session, email: str) -> tuple[int, Coordinator] | None:
    """The active coordinator with this address (asked for every reply on a ticket: one indexed row)."""
    row = session.scalars(
        select(CoordinatorRow).where(
            CoordinatorRow.email == email.strip().lower(), CoordinatorRow.active.is_(True)
        )
    ).first()
    return (row.id, Coordinator(row.name, row.email, row.language)) if row is not None else None


def coordinator_by_id(session: Session, coordinator_id: int) -> tuple[Coordinator, bool] | None:
    """The coordinator a "c" token names, active or not (the caller says why an inactive one is refused)."""
    row = session.get(CoordinatorRow, coordinator_id)
    return (Coordinator(row.name, row.email, row.language), row.active) if row is not None else None


def change_technician(
    session: Session, email: str, settings: Iterable[str], categories: Collection[str] | None
) -> Technician:
    """`helpdesk technicians set EMAIL key=value ...`; raises PeopleError, UnknownPerson for an unknown email."""
    row = session.scalars(select(TechnicianRow).where(TechnicianRow.email == email.strip().lower())).first()
    if row is None:
        raise UnknownPerson(f"no technician {email}; `helpdesk technicians list` shows who there is")
    tech = apply_settings(technician_of(row), settings, categories=categories)
    _write(row, tech)
    return tech
