"""import_parts: an import split among processes keeps one progress row per part

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 21:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.add_column(sa.Column("part", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("parts", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.drop_column("parts")
        batch.drop_column("part")
