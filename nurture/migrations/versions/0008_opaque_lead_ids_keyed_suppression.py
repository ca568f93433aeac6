"""opaque lead ids for URLs and logs; the fingerprint of the key the suppression list uses

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BATCH = 5000


def _public_id() -> str:
    # Same shape as nurture.identifiers.new_lead_id; copied so the migration stays frozen.
    return "ld_" + secrets.token_urlsafe(15)


def upgrade() -> None:
    with op.batch_alter_table("leads") as batch:
        batch.add_column(sa.Column("public_id", sa.String(24), nullable=True))
    bind = op.get_bind()
    leads = sa.table("leads", sa.column("id", sa.Integer), sa.column("public_id", sa.String))
    last = 0
    while True:
        ids = (
            bind.execute(
                sa.select(leads.c.id).where(leads.c.id > last).order_by(leads.c.id).limit(BATCH)
            )
            .scalars()
            .all()
        )
        if not ids:
            break
        bind.execute(
            leads.update().where(leads.c.id == sa.bindparam("lead")),
            [{"lead": i, "public_id": _public_id()} for i in ids],
        )
        last = ids[-1]
    with op.batch_alter_table("leads") as batch:
        batch.alter_column("public_id", existing_type=sa.String(24), nullable=False)
        batch.create_unique_constraint("uq_leads_public_id", ["public_id"])
    op.create_table(
        "key_fingerprints",
        sa.Column("name", sa.String(50), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_key_fingerprints")),
    )


def downgrade() -> None:
    op.drop_table("key_fingerprints")
    with op.batch_alter_table("leads") as batch:
        batch.drop_constraint("uq_leads_public_id", type_="unique")
        batch.drop_column("public_id")
