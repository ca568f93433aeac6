"""import_parts: an import split among processes keeps one progress row per part; the
file's size is kept (the console shows how far an import is without the file), and
offsets count in 64 bits (a file may pass 2 GB)

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
        batch.add_column(sa.Column("size", sa.BigInteger(), nullable=True))
        batch.alter_column("offset", type_=sa.BigInteger(), existing_nullable=False)
        batch.alter_column("errors_size", type_=sa.BigInteger(), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("import_runs") as batch:
        batch.alter_column("errors_size", type_=sa.Integer(), existing_nullable=False)
        batch.alter_column("offset", type_=sa.Integer(), existing_nullable=False)
        batch.drop_column("size")
        batch.drop_column("parts")
        batch.drop_column("part")
