"""The database and the values every layer shares: SQLAlchemy 2.0 typed ORM, the engine/session
factory, claims and elections, Alembic migrations; the enums of what is stored (ticket statuses and
their groups, event, message and outbox kinds, raw queue states), the parsed mail (`mail`) and the
sender authentication verdict (`sender_auth`).

May import: nothing of ours (it is the bottom layer). The other packages import the mapped
classes and receive an engine or session factory from the composition root.
"""

from models.base import Base, utcnow
from models.budget import HeldNotice, MailBudget
from models.heartbeat import DaemonRow
from models.loop import Article, ArticleVersion, LifecycleStep, Satisfaction
from models.mailbox_state import MailboxConnState, MailboxState
from models.message import Attachment, Message, MessageRef
from models.outbox import OutboxMessage, OutboxStatus
from models.people import CoordinatorRow, TechnicianRow
from models.raw_message import RawMessage, RawStatus
from models.thread_keys import ThreadKey
from models.ticket import Participant, Priority, Ticket, TicketEvent, TicketStatus
from models.web_session import WebSession

__all__ = [
    "Article",
    "ArticleVersion",
    "Attachment",
    "Base",
    "CoordinatorRow",
    "DaemonRow",
    "HeldNotice",
    "LifecycleStep",
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
    "Satisfaction",
    "TechnicianRow",
    "ThreadKey",
    "Ticket",
    "TicketEvent",
    "TicketStatus",
    "WebSession",
    "utcnow",
]
