"""fenced claims: each held delivery names its holder; the relay's last answer

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 14:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

HELD = sa.text("status IN ('claimed', 'sending')")


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(80), nullable=True))
        batch.add_column(sa.Column("relay_reply", sa.String(500), nullable=True))
    op.create_index(
        "ix_deliveries_held",
        "deliveries",
        ["claimed_by"],
        sqlite_where=HELD,
        postgresql_where=HELD,
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_held", table_name="deliveries")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("relay_reply")
        batch.drop_column("claimed_by")
