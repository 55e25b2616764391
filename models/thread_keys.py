"""The thread keys of mail still waiting or being worked on, so related mail is worked in order.

Several workers on one PostgreSQL must thread mail as one would: a reply handled while its root
is still uncommitted in another worker's transaction finds nothing and opens a ticket of its own.
So each stored mail's thread keys (its Message-ID, In-Reply-To, References, and the tag of a
plus-address it was sent to) are written with it, as 64-bit hashes, and a mail is claimed only
when no earlier mail sharing a key is still unfinished (models/leases.py). Mails of one
conversation are therefore worked one after another in the order they arrived, whichever worker
takes which; unrelated mail runs in parallel. A mail's keys are deleted in the transaction that
finishes it, so the table holds only the mail in flight. "Earlier" is by id, and an id is taken at
insert, not at commit: the store therefore holds a transaction lock on each of the mail's keys from
before its insert to its commit (intake/raw_queue.py), so a conversation's ids follow the order in
which its mails were committed, whichever daemons stored them.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, BigID
from models.thread_hash import MAX_KEYS as MAX_KEYS
from models.thread_hash import key_of as key_of
from models.thread_hash import keys_of as keys_of


class ThreadKey(Base):
    __tablename__ = "raw_thread_keys"

    id: Mapped[int] = mapped_column(BigID, primary_key=True)
    raw_id: Mapped[int] = mapped_column(ForeignKey("raw_messages.id", ondelete="CASCADE"))
    key: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("ix_raw_thread_keys_key_raw_id", "key", "raw_id"),
        Index("ix_raw_thread_keys_raw_id", "raw_id"),
    )
