"""sender authentication of stored mail, hourly mail budgets and held staff notices

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 03:40:47.300370
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_budget",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("scope", sa.String(length=400), nullable=False),
        sa.Column("window_start", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent", sa.Integer(), nullable=False),
        sa.Column("suppressed", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_mail_budget")),
        sa.UniqueConstraint("scope", "window_start", name="uq_mail_budget_scope_window"),
    )
    op.create_index("ix_mail_budget_window_start", "mail_budget", ["window_start"], unique=False)
    op.create_table(
        "held_notices",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("recipient", sa.String(length=320), nullable=False),
        sa.Column("recipient_name", sa.String(length=300), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("ticket_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("reply_to", sa.String(length=320), nullable=False),
        sa.Column("digest_outbox_id", sa.Integer(), nullable=True),
        sa.Column("digested_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["ticket_id"],
            ["tickets.id"],
            name=op.f("fk_held_notices_ticket_id_tickets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_notices")),
    )
    op.create_index(
        "ix_held_notices_recipient_digested", "held_notices", ["recipient", "digested_at"], unique=False
    )
    with op.batch_alter_table("raw_messages", schema=None) as batch_op:
        # Mail stored before this version was never checked: no verdict.
        batch_op.add_column(sa.Column("sender_auth", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("raw_messages", schema=None) as batch_op:
        batch_op.drop_column("sender_auth")
    op.drop_index("ix_held_notices_recipient_digested", table_name="held_notices")
    op.drop_table("held_notices")
    op.drop_index("ix_mail_budget_window_start", table_name="mail_budget")
    op.drop_table("mail_budget")
