"""broadcast_occurrences: each broadcast occurrence started, once

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 19:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "broadcast_occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("broadcast_id", sa.String(length=100), nullable=False),
        sa.Column("occurrence", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recipients", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_broadcast_occurrences")),
        sa.UniqueConstraint(
            "broadcast_id", "occurrence", name=op.f("uq_broadcast_occurrences_broadcast_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("broadcast_occurrences")
