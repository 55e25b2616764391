"""indexes for what grows: similar resolved tickets, pending held notices, tickets by opening time

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 07:30:00

Each per-mail query must cost the same at 100,000 tickets as at none. EXPLAIN showed two that
read every row: the similar-ticket search (`WHERE resolution IS NOT NULL ORDER BY resolved_at
DESC LIMIT 300` scanned and sorted all tickets) and the pending held notices (the whole index of
every notice ever held). Both get a partial index on exactly what they ask for. `tickets list
--since` reads tickets by opening time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RESOLVED = sa.text("resolution IS NOT NULL")
PENDING = sa.text("digested_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_tickets_resolved_at_resolved",
        "tickets",
        ["resolved_at"],
        sqlite_where=RESOLVED,
        postgresql_where=RESOLVED,
    )
    op.create_index("ix_tickets_created_at", "tickets", ["created_at"])
    op.create_index(
        "ix_held_notices_pending",
        "held_notices",
        ["recipient", "created_at"],
        sqlite_where=PENDING,
        postgresql_where=PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_held_notices_pending", table_name="held_notices")
    op.drop_index("ix_tickets_created_at", table_name="tickets")
    op.drop_index("ix_tickets_resolved_at_resolved", table_name="tickets")
