"""split_assignments: the variant of an A/B split each lead was assigned, for good;
split_winners: the variant a split's stop rule chose for every new lead

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "split_assignments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("enrollment_id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.String(length=100), nullable=False),
        sa.Column("split_id", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=100), nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["enrollments.id"],
            name=op.f("fk_split_assignments_enrollment_id_enrollments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_split_assignments_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_assignments")),
        sa.UniqueConstraint(
            "sequence_id", "split_id", "lead_id", name=op.f("uq_split_assignments_sequence_id")
        ),
    )
    op.create_index("ix_split_assignments_lead", "split_assignments", ["lead_id"])
    op.create_index("ix_split_assignments_enrollment", "split_assignments", ["enrollment_id"])
    op.create_table(
        "split_winners",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.String(length=100), nullable=False),
        sa.Column("split_id", sa.String(length=100), nullable=False),
        sa.Column("variant", sa.String(length=100), nullable=False),
        sa.Column("metric", sa.String(length=20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_split_winners")),
        sa.UniqueConstraint("sequence_id", "split_id", name=op.f("uq_split_winners_sequence_id")),
    )


def downgrade() -> None:
    op.drop_table("split_winners")
    op.drop_index("ix_split_assignments_enrollment", table_name="split_assignments")
    op.drop_index("ix_split_assignments_lead", table_name="split_assignments")
    op.drop_table("split_assignments")
