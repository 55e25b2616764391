"""The people on a ticket: its requester, those in Cc, technicians who worked it, those staff added.

Being on a ticket is what lets a mail join it (see `intake.threads`), and who besides the
requester gets the requester's thread (`notify`: a Cc who wrote to us, or whom staff added).
"""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from models import tables
from models.ticket import Participant, Ticket

NAME_MAX = 300

# Built once: these run for every mail.
_INSERT_PARTICIPANT = insert(tables.participants)
_FIND_PARTICIPANT = select(tables.participants.c.id, tables.participants.c.notify).where(
    tables.participants.c.ticket_id == bindparam("ticket_id"),
    tables.participants.c.address == bindparam("address"),
)


def add_participant(
    session: Session, ticket: Ticket, address: str, name: str, role: str, *, notify: bool = True
) -> None:
    """Put `address` on the ticket (once); a later mail from a silent Cc makes them get status mail."""
    address = address.lower()
    found = (
        session.connection().execute(_FIND_PARTICIPANT, {"ticket_id": ticket.id, "address": address}).first()
    )
    if found is not None:
        if notify and not found.notify:
            session.execute(update(Participant).where(Participant.id == found.id).values(notify=True))
        return
    session.execute(
        _INSERT_PARTICIPANT,
        [
            {
                "ticket_id": ticket.id,
                "address": address,
                "name": name[:NAME_MAX],
                "role": role,
                "notify": notify,
            }
        ],
    )


def add_participants(session: Session, rows: list[dict[str, object]]) -> None:
    """Put several new people on a ticket just opened (rows of ticket_id, address, name, role, notify)."""
    if rows:
        session.connection().execute(_INSERT_PARTICIPANT, rows)


def is_participant(session: Session, ticket_id: int, address: str) -> bool:
    """Whether `address` (lower-cased) is on the ticket; nobody without an address is."""
    if not address:
        return False
    found = session.connection().execute(_FIND_PARTICIPANT, {"ticket_id": ticket_id, "address": address})
    return found.first() is not None
