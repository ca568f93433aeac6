"""indexes for delivery at scale: the claim's order, deliveries needing attention

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 15:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

ATTENTION = sa.text("status IN ('retry', 'failed', 'uncertain')")


def upgrade() -> None:
    # The claim reads each priority's due rows in (due_at, id) order straight from this
    # index; (status, due_at) left a sort of every due row to each batch.
    op.create_index("ix_enrollments_claim", "enrollments", ["status", "priority", "due_at", "id"])
    op.drop_index("ix_enrollments_due", table_name="enrollments")
    # Only the statuses an operator looks up; sent rows (nearly all) stay out of it.
    op.create_index(
        "ix_deliveries_attention",
        "deliveries",
        ["status"],
        sqlite_where=ATTENTION,
        postgresql_where=ATTENTION,
    )
    op.drop_index("ix_deliveries_status", table_name="deliveries")


def downgrade() -> None:
    op.create_index("ix_deliveries_status", "deliveries", ["status"])
    op.drop_index("ix_deliveries_attention", table_name="deliveries")
    op.create_index("ix_enrollments_due", "enrollments", ["status", "due_at"])
    op.drop_index("ix_enrollments_claim", table_name="enrollments")
