"""The database and the values every layer shares: SQLAlchemy 2.0 typed ORM, the engine/session
factory, claims and elections, Alembic migrations; the enums of what is stored (ticket statuses and
their groups, event, message and outbox kinds, raw queue states), the parsed mail (`mail`) and the
sender authentication verdict (`sender_auth`).

May import: nothing of ours (it is the bottom layer). The other packages import the mapped
classes and receive an engine or session factory from the composition root.

Importing the package maps nothing: `from models.sender_auth import ...` or the settings'
`models.config` must not cost SQLAlchemy and every table (a piped mail and a listing start with
them). The mapped classes load on first use: `from models import Ticket` (PEP 562 `__getattr__`),
`load_all()` for whoever needs every table on the metadata (migrations, `models.tables`), and the
registry loads the rest itself before its mappers are configured (models/base.py), so a
relationship always finds its other side.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Each module that maps tables, and the names the package gives of it.
MAPPED: dict[str, tuple[str, ...]] = {
    "models.budget": ("HeldNotice", "MailBudget"),
    "models.heartbeat": ("DaemonRow",),
    "models.loop": ("Article", "ArticleVersion", "LifecycleStep", "Satisfaction"),
    "models.mailbox_state": ("MailboxConnState", "MailboxState"),
    "models.message": ("Attachment", "Message", "MessageRef"),
    "models.outbox": ("OutboxMessage", "OutboxStatus"),
    "models.people": ("CoordinatorRow", "TechnicianRow"),
    "models.raw_message": ("RawMessage", "RawStatus"),
    "models.thread_keys": ("ThreadKey",),
    "models.ticket": ("Participant", "Priority", "Ticket", "TicketEvent", "TicketStatus"),
    "models.web_session": ("WebSession",),
}
_HOME = {name: module for module, names in MAPPED.items() for name in names}
_HOME.update(Base="models.base", utcnow="models.base")


def load_all() -> None:
    """Import every module that maps a table, so each is registered on `Base.metadata`."""
    for module in MAPPED:
        importlib.import_module(module)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'models' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


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
    "load_all",
    "utcnow",
]
