"""the decision log: what the engine decided about each lead, and why; costs per source;
alarm states; indexes for reports

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("sequence_id", sa.String(100), nullable=True),
        sa.Column("step_id", sa.String(100), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_decisions_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
    )
    op.create_index("ix_decisions_lead_at", "decisions", ["lead_id", "at"])
    op.create_table(
        "costs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(100), nullable=False),
        sa.Column("campaign", sa.String(200), nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("original_amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("original_currency", sa.String(3), nullable=True),
        sa.Column("rate", sa.Numeric(14, 6), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_costs")),
        sa.UniqueConstraint("source", "campaign", "month", name=op.f("uq_costs_source")),
    )
    op.create_table(
        "alarms",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("raised", sa.Boolean(), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("detail", sa.String(300), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_alarms")),
    )
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns)


INDEXES = (  # what reports filter and group on (docs/performance.md, "Reports")
    ("ix_leads_created_at", "leads", ["created_at"]),
    ("ix_events_name_time", "events", ["name", "occurred_at"]),
    ("ix_deliveries_sent_at", "deliveries", ["sent_at"]),
    ("ix_stage_changes_to_stage_at", "stage_changes", ["to_stage", "at"]),
    ("ix_promotions_created_at", "promotions", ["created_at"]),
    ("ix_sales_feedback_promotion", "sales_feedback", ["promotion_id"]),
)


def downgrade() -> None:
    for name, table, _ in INDEXES:
        op.drop_index(name, table_name=table)
    op.drop_table("alarms")
    op.drop_table("costs")
    op.drop_index("ix_decisions_lead_at", table_name="decisions")
    op.drop_table("decisions")
