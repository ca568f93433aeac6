"""report_days: the funnel's and the sources report's daily summary; report_summaries:
which days it holds

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_days",
        sa.Column("view", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("k0", sa.String(length=320), nullable=False),
        sa.Column("k1", sa.String(length=320), nullable=False),
        sa.Column("k2", sa.String(length=320), nullable=False),
        sa.Column("step", sa.String(length=20), nullable=False),
        sa.Column("leads", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(
            "view", "kind", "day", "k0", "k1", "k2", "step", name=op.f("pk_report_days")
        ),
    )
    op.create_table(
        "report_summaries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("through", sa.Date(), nullable=False),
        sa.Column("made_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rebuilt_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_summaries")),
    )


def downgrade() -> None:
    op.drop_table("report_summaries")
    op.drop_table("report_days")
