"""report_stays: the velocity report's stays of the closed days, with their leads'
groups, kept by the reports' summary

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 11:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_stays",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("stage", sa.String(length=30), nullable=False),
        sa.Column("k0", sa.String(length=320), nullable=True),
        sa.Column("k1", sa.String(length=320), nullable=True),
        sa.Column("k2", sa.String(length=320), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_stays")),
    )
    op.create_index("ix_report_stays_kind_day", "report_stays", ["kind", "day"])


def downgrade() -> None:
    op.drop_index("ix_report_stays_kind_day", table_name="report_stays")
    op.drop_table("report_stays")
