"""The database: SQLAlchemy 2.0 typed ORM, the engine/session factory and Alembic migrations.

Every table of the helpdesk is declared here; the other packages import the mapped classes
and receive an engine or session factory from the composition root.
"""

from models.base import Base, utcnow
from models.budget import HeldNotice, MailBudget
from models.mailbox_state import MailboxConnState, MailboxState
from models.message import Attachment, Message, MessageRef
from models.outbox import OutboxMessage, OutboxStatus
from models.people import CoordinatorRow, TechnicianRow
from models.raw_message import RawMessage, RawStatus
from models.ticket import Participant, Priority, Ticket, TicketEvent, TicketStatus

__all__ = [
    "Attachment",
    "Base",
    "CoordinatorRow",
    "HeldNotice",
    "MailBudget",
    "MailboxConnState",
    "MailboxState",
    "Message",
    "MessageRef",
    "OutboxMessage",
    "OutboxStatus",
    "Participant",
    "Priority",
    "RawMessage",
    "RawStatus",
    "TechnicianRow",
    "Ticket",
    "TicketEvent",
    "TicketStatus",
    "utcnow",
]
