"""The mapped tables as plain Core `Table` objects, for the statements of the hot path.

A statement built on an ORM class goes through the ORM's execution layer even when nothing is
loaded into objects; on the same Table it runs at a third of the cost. The pipeline runs a
dozen statements per mail, so its fixed ones use these.
"""

from __future__ import annotations

from sqlalchemy import Table

import models
from models.base import Base

models.load_all()  # every mapped class registered on the metadata

daemons: Table = Base.metadata.tables["daemons"]
attachments: Table = Base.metadata.tables["attachments"]
held_notices: Table = Base.metadata.tables["held_notices"]
mail_budget: Table = Base.metadata.tables["mail_budget"]
message_refs: Table = Base.metadata.tables["message_refs"]
messages: Table = Base.metadata.tables["messages"]
outbox: Table = Base.metadata.tables["outbox"]
participants: Table = Base.metadata.tables["participants"]
raw_messages: Table = Base.metadata.tables["raw_messages"]
raw_thread_keys: Table = Base.metadata.tables["raw_thread_keys"]
ticket_events: Table = Base.metadata.tables["ticket_events"]
tickets: Table = Base.metadata.tables["tickets"]
