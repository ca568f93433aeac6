"""template_versions: every published version of an email template, with its files;
template_pins: the template version each sequence version renders

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "template_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("files", sa.Text(), nullable=False),
        sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_versions")),
        sa.UniqueConstraint("name", "version", name=op.f("uq_template_versions_name")),
    )
    op.create_table(
        "template_pins",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sequence_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("template", sa.String(length=200), nullable=False),
        sa.Column("template_version", sa.String(length=32), nullable=False),
        sa.Column("pinned_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_template_pins")),
        sa.UniqueConstraint(
            "sequence_id", "version", "template", name=op.f("uq_template_pins_sequence_id")
        ),
    )


def downgrade() -> None:
    op.drop_table("template_pins")
    op.drop_table("template_versions")
