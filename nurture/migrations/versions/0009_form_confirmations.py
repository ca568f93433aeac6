"""form confirmations: website form submissions awaiting double opt-in

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-08 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import nurture.models

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "form_confirmations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=64), nullable=False),
        sa.Column("form", sa.String(length=100), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("payload", nurture.models.JSONType, nullable=False),
        sa.Column("send_state", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("lease_until", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("requested_at", nurture.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", nurture.models.UTCDateTime(), nullable=False),
        sa.Column("expires_at", nurture.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_form_confirmations")),
        sa.UniqueConstraint("email", "form", name=op.f("uq_form_confirmations_email")),
        sa.UniqueConstraint("public_id", name=op.f("uq_form_confirmations_public_id")),
    )
    op.create_index(
        "ix_form_confirmations_due",
        "form_confirmations",
        ["send_state", "next_attempt_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_form_confirmations_expires_at"),
        "form_confirmations",
        ["expires_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_form_confirmations_expires_at"), table_name="form_confirmations")
    op.drop_index("ix_form_confirmations_due", table_name="form_confirmations")
    op.drop_table("form_confirmations")
