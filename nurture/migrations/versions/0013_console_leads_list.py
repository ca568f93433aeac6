"""the console's list of leads: one index per sort order (score, grade, last name,
company; the id breaks ties, so a keyset page is a range of it), a sales user's leads
by rep, the prefix search on PostgreSQL, and enrollments by sequence for its filter

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-18 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

SORTED = ("score", "grade", "last_name", "company")
SEARCHED = ("email", "first_name", "last_name", "company")


def upgrade() -> None:
    for name in SORTED:
        op.create_index(f"ix_leads_{name}_id", "leads", [name, "id"])
    op.create_index("ix_leads_rep", "leads", [sa.text("lower(rep_email)")])
    if op.get_bind().dialect.name == "postgresql":
        # `lower(x) LIKE 'ana%'` reads a range of these whatever the database's
        # collation; SQLite's LIKE cannot use them, so it does without.
        for name in SEARCHED:
            op.execute(
                f"CREATE INDEX ix_leads_search_{name} ON leads "  # the module's constants
                f"(lower({name}) text_pattern_ops)"
            )
    op.create_index("ix_enrollments_sequence_lead", "enrollments", ["sequence_id", "lead_id"])


def downgrade() -> None:
    op.drop_index("ix_enrollments_sequence_lead", table_name="enrollments")
    if op.get_bind().dialect.name == "postgresql":
        for name in SEARCHED:
            op.drop_index(f"ix_leads_search_{name}", table_name="leads")
    op.drop_index("ix_leads_rep", table_name="leads")
    for name in SORTED:
        op.drop_index(f"ix_leads_{name}_id", table_name="leads")
