"""heartbeats of the daemons sharing the database, and the thread keys of mail in flight

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "daemons",
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("beat_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("holder", name=op.f("pk_daemons")),
    )
    op.create_table(
        "raw_thread_keys",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("raw_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["raw_id"],
            ["raw_messages.id"],
            name=op.f("fk_raw_thread_keys_raw_id_raw_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_raw_thread_keys")),
    )
    op.create_index("ix_raw_thread_keys_key_raw_id", "raw_thread_keys", ["key", "raw_id"], unique=False)
    op.create_index("ix_raw_thread_keys_raw_id", "raw_thread_keys", ["raw_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_raw_thread_keys_raw_id", table_name="raw_thread_keys")
    op.drop_index("ix_raw_thread_keys_key_raw_id", table_name="raw_thread_keys")
    op.drop_table("raw_thread_keys")
    op.drop_table("daemons")
