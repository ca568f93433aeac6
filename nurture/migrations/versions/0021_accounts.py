"""accounts: leads grouped into companies (leads.account_id); account_promotions: an
account handed to sales once per cycle

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("kind", "value", name=op.f("uq_accounts_kind")),
    )
    op.create_table(
        "account_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=True),
        sa.Column("promotion_id", sa.Integer(), nullable=True),
        sa.Column("engaged", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("run", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_promotions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_account_promotions_lead_id_leads"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name=op.f("fk_account_promotions_promotion_id_promotions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_promotions")),
        sa.UniqueConstraint("account_id", "cycle", name=op.f("uq_account_promotions_account_id")),
    )
    op.create_index("ix_account_promotions_lead_id", "account_promotions", ["lead_id"])
    op.add_column("leads", sa.Column("account_id", sa.Integer(), nullable=True))
    op.create_index("ix_leads_account_id", "leads", ["account_id"])
    # Existing leads join their accounts with `nurture accounts rebuild` (it reads the
    # free-mail list of the qualification file, which a migration does not see).


def downgrade() -> None:
    op.drop_index("ix_leads_account_id", table_name="leads")
    op.drop_column("leads", "account_id")
    op.drop_index("ix_account_promotions_lead_id", table_name="account_promotions")
    op.drop_table("account_promotions")
    op.drop_table("accounts")
