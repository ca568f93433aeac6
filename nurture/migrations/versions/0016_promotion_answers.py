"""promotions: when sales first answered, first saw an opportunity, first won

The funnel, SLA and velocity reports read these off the promotion (indexed) instead of
grouping every CRM answer ever received.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 16:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

COLUMNS = ("answered_at", "opportunity_at", "won_at")
# Each column from the answers it is the first of: any, an opportunity or a win, a win.
FILL = (
    "UPDATE promotions SET answered_at = (SELECT min(f.occurred_at) FROM sales_feedback AS f"
    " WHERE f.promotion_id = promotions.id)",
    "UPDATE promotions SET opportunity_at = (SELECT min(f.occurred_at) FROM sales_feedback"
    " AS f WHERE f.promotion_id = promotions.id AND f.status IN ('opportunity', 'won'))",
    "UPDATE promotions SET won_at = (SELECT min(f.occurred_at) FROM sales_feedback AS f"
    " WHERE f.promotion_id = promotions.id AND f.status = 'won')",
)


def upgrade() -> None:
    for column in COLUMNS:
        op.add_column("promotions", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    for statement in FILL:
        op.execute(statement)
    for column in ("accepted_at", "opportunity_at", "won_at"):
        op.create_index(f"ix_promotions_{column}", "promotions", [column])


def downgrade() -> None:
    for column in ("accepted_at", "opportunity_at", "won_at"):
        op.drop_index(f"ix_promotions_{column}", table_name="promotions")
    for column in COLUMNS:
        op.drop_column("promotions", column)
