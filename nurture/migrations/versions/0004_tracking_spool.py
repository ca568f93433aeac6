"""tracking hits written through the spool, processed by workers

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nurture.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

WAITING = sa.text("processed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("tracking_hits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("spool_key", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("processed_at", nurture.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("error", sa.String(length=500), nullable=True))
        batch_op.alter_column("classification", existing_type=sa.String(length=20), nullable=True)
        batch_op.alter_column(
            "reasons",
            existing_type=nurture.models.JSONType,
            existing_nullable=False,
            server_default=sa.text("'[]'"),
        )
        batch_op.create_unique_constraint(batch_op.f("uq_tracking_hits_spool_key"), ["spool_key"])
    # Hits recorded before the spool were classified in their request: processed then.
    op.execute("UPDATE tracking_hits SET processed_at = at")
    op.create_index(
        "ix_tracking_hits_waiting",
        "tracking_hits",
        ["id"],
        unique=False,
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_tracking_hits_waiting",
        table_name="tracking_hits",
        sqlite_where=WAITING,
        postgresql_where=WAITING,
    )
    # Hits never classified cannot satisfy the old NOT NULL: label them unknown.
    op.execute("UPDATE tracking_hits SET classification = 'unknown' WHERE classification IS NULL")
    with op.batch_alter_table("tracking_hits", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tracking_hits_spool_key"), type_="unique")
        batch_op.alter_column(
            "reasons",
            existing_type=nurture.models.JSONType,
            existing_nullable=False,
            server_default=None,
        )
        batch_op.alter_column("classification", existing_type=sa.String(length=20), nullable=False)
        batch_op.drop_column("error")
        batch_op.drop_column("processed_at")
        batch_op.drop_column("spool_key")
