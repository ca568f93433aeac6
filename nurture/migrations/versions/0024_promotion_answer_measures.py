"""promotions.answer_deadline_at and answer_seconds: the SLA report's measures of each
hand-off on its rep's calendar, kept by the reports' summary

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-05 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by the worker's next daily summary (the report measures the rest itself).
    op.add_column(
        "promotions", sa.Column("answer_deadline_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.add_column("promotions", sa.Column("answer_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("answer_seconds")
        batch.drop_column("answer_deadline_at")
