"""stage stays: when each stage change's stay began, and since when a lead is in its stage

Velocity reads a stay as `since -> at` of one row instead of pairing every stage change
with the one before it (a window sorting every change of every lead).

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch: on SQLite a batch copies the table and would lose
    # the leads' expression indexes (migration 0013), which reflection cannot see.
    op.add_column("leads", sa.Column("stage_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("stage_changes", sa.Column("since", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_stage_changes_at", "stage_changes", ["at"])
    # The history so far: the change before (same lead, earlier), else the lead's creation.
    op.execute(
        """
        UPDATE stage_changes SET since = coalesce(
            (SELECT p.at FROM stage_changes AS p
              WHERE p.lead_id = stage_changes.lead_id
                AND (p.at < stage_changes.at OR (p.at = stage_changes.at AND p.id < stage_changes.id))
              ORDER BY p.at DESC, p.id DESC LIMIT 1),
            (SELECT l.created_at FROM leads AS l WHERE l.id = stage_changes.lead_id))
        """
    )
    op.execute(
        """
        UPDATE leads SET stage_since =
            (SELECT max(c.at) FROM stage_changes AS c WHERE c.lead_id = leads.id)
        WHERE EXISTS (SELECT 1 FROM stage_changes AS c WHERE c.lead_id = leads.id)
        """
    )


def downgrade() -> None:
    op.drop_index("ix_stage_changes_at", table_name="stage_changes")
    op.drop_column("stage_changes", "since")
    op.drop_column("leads", "stage_since")
