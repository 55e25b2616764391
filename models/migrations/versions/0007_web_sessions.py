"""one-time sign-in links of the dashboard, used once, and the sessions they opened

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 07:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import models.base

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "web_sessions",
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("used_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_web_sessions")),
    )
    op.create_index("ix_web_sessions_used_at", "web_sessions", ["used_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_web_sessions_used_at", table_name="web_sessions")
    op.drop_table("web_sessions")
