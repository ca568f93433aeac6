"""trigger_firings: each lead an inactivity or date trigger found, once per occurrence;
leads.sunset_at: no more sequence emails for a lead that never engaged

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 16:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trigger_firings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.String(length=100), nullable=False),
        sa.Column("trigger", sa.String(length=200), nullable=False),
        sa.Column("occurred", sa.DateTime(timezone=True), nullable=False),
        sa.Column("run", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_trigger_firings_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_trigger_firings")),
        sa.UniqueConstraint(
            "lead_id",
            "sequence_id",
            "trigger",
            "occurred",
            name=op.f("uq_trigger_firings_lead_id"),
        ),
    )
    op.create_index("ix_trigger_firings_run", "trigger_firings", ["run"])
    op.add_column("leads", sa.Column("sunset_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("leads", "sunset_at")
    op.drop_index("ix_trigger_firings_run", table_name="trigger_firings")
    op.drop_table("trigger_firings")
