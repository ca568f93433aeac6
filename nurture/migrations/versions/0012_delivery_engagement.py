"""each email's engagement on its own row: first human open and click, machine open,
scanner; kept by the hits worker, read by the sequence report without the hits; the
sent emails' index covers what that report counts; enrollments by entry and exit

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-11 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

COVERING = ("id", "sequence_id", "step_id", "opened_at", "clicked_at", "machine_opened_at",
            "scanned_at")  # fmt: skip
COLUMNS = ("opened_at", "clicked_at", "machine_opened_at", "scanned_at")
# Each column's hits (the sequence report's measures, nurture/reports.py).
WHERE = {
    "opened_at": "classification = 'human' AND kind = 'open'",
    "clicked_at": "classification = 'human' AND kind = 'click'",
    "machine_opened_at": "classification = 'machine_open'",
    "scanned_at": "classification = 'scanner'",
}


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        for name in COLUMNS:
            batch.add_column(sa.Column(name, sa.DateTime(timezone=True), nullable=True))
    # The emails already read: from the hits they had (set-based, one pass).
    firsts = ", ".join(f"min(CASE WHEN {WHERE[c]} THEN at END) AS {c}" for c in COLUMNS)
    assigned = ", ".join(f"{c} = firsts.{c}" for c in COLUMNS)
    op.execute(
        f"UPDATE deliveries SET {assigned} FROM ("  # noqa: S608 (the module's constants)
        f"SELECT delivery_id, {firsts} FROM tracking_hits "
        "WHERE classification IS NOT NULL GROUP BY delivery_id"
        ") AS firsts WHERE deliveries.id = firsts.delivery_id"
    )
    op.create_index("ix_enrollments_entered_at", "enrollments", ["entered_at"])
    op.create_index("ix_enrollments_left_at", "enrollments", ["left_at"])
    op.drop_index("ix_deliveries_sent_at", table_name="deliveries")
    op.create_index(
        "ix_deliveries_sent_at",
        "deliveries",
        ["sent_at"],
        postgresql_include=list(COVERING),
        sqlite_where=sa.text("status = 'sent'"),
        postgresql_where=sa.text("status = 'sent'"),
    )


def downgrade() -> None:
    op.drop_index("ix_enrollments_left_at", table_name="enrollments")
    op.drop_index("ix_enrollments_entered_at", table_name="enrollments")
    op.drop_index("ix_deliveries_sent_at", table_name="deliveries")
    op.create_index("ix_deliveries_sent_at", "deliveries", ["sent_at"])
    with op.batch_alter_table("deliveries") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
