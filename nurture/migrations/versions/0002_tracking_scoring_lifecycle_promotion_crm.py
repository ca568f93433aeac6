"""tracking scoring lifecycle promotion crm

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 09:11:16.243558
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import nurture.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "digests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rep_email", sa.String(length=320), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column(
            "leads",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("sent_at", nurture.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_digests")),
        sa.UniqueConstraint("rep_email", "day", name=op.f("uq_digests_rep_email")),
    )
    op.create_table(
        "endpoint_states",
        sa.Column("url", sa.String(length=1000), nullable=False),
        sa.Column("disabled_at", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("url", name=op.f("pk_endpoint_states")),
    )
    op.create_table(
        "promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("cycle", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("rep_name", sa.String(length=200), nullable=True),
        sa.Column("rep_email", sa.String(length=320), nullable=True),
        sa.Column("routing_rule", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_at", nurture.models.UTCDateTime(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("feedback_reason", sa.String(length=500), nullable=True),
        sa.Column("escalations", sa.Integer(), nullable=False),
        sa.Column("sla_breached", sa.Boolean(), nullable=False),
        sa.Column("sla_due_at", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("accepted_at", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("created_at", nurture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_promotions_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promotions")),
        sa.UniqueConstraint("lead_id", "cycle", name=op.f("uq_promotions_lead_id")),
    )
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.create_index("ix_promotions_status", ["status"], unique=False)

    op.create_table(
        "crm_pushes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promotion_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("lease_until", nurture.models.UTCDateTime(), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", nurture.models.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", nurture.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name=op.f("fk_crm_pushes_promotion_id_promotions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_crm_pushes")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_crm_pushes_webhook_id")),
    )
    with op.batch_alter_table("crm_pushes", schema=None) as batch_op:
        batch_op.create_index("ix_crm_pushes_due", ["status", "next_attempt_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_crm_pushes_promotion_id"), ["promotion_id"], unique=False
        )

    op.create_table(
        "sales_feedback",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promotion_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("amount", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("occurred_at", nurture.models.UTCDateTime(), nullable=False),
        sa.Column("received_at", nurture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["promotion_id"],
            ["promotions.id"],
            name=op.f("fk_sales_feedback_promotion_id_promotions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sales_feedback")),
        sa.UniqueConstraint("external_id", name=op.f("uq_sales_feedback_external_id")),
    )
    op.create_table(
        "score_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("points", sa.Float(), nullable=False),
        sa.Column("rule", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("score_after", sa.Float(), nullable=False),
        sa.Column("model_version", sa.String(length=32), nullable=False),
        sa.Column("at", nurture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_score_changes_event_id_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_score_changes_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_score_changes")),
    )
    with op.batch_alter_table("score_changes", schema=None) as batch_op:
        batch_op.create_index("ix_score_changes_lead_at", ["lead_id", "at"], unique=False)

    op.create_table(
        "stage_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("from_stage", sa.String(length=20), nullable=False),
        sa.Column("to_stage", sa.String(length=20), nullable=False),
        sa.Column("cause", sa.String(length=300), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("at", nurture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_stage_changes_event_id_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_stage_changes_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stage_changes")),
    )
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.create_index("ix_stage_changes_lead_at", ["lead_id", "at"], unique=False)

    op.create_table(
        "tracking_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("link", sa.Integer(), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=True),
        sa.Column("user_agent", sa.Text(), nullable=True),
        sa.Column("classification", sa.String(length=20), nullable=False),
        sa.Column(
            "reasons",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("at", nurture.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_tracking_hits_delivery_id_deliveries"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["events.id"],
            name=op.f("fk_tracking_hits_event_id_events"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"],
            ["leads.id"],
            name=op.f("fk_tracking_hits_lead_id_leads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_hits")),
    )
    with op.batch_alter_table("tracking_hits", schema=None) as batch_op:
        batch_op.create_index("ix_tracking_hits_delivery_at", ["delivery_id", "at"], unique=False)
        batch_op.create_index(batch_op.f("ix_tracking_hits_lead_id"), ["lead_id"], unique=False)

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "links",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                server_default=sa.text("'[]'"),
                nullable=False,
            )
        )
        batch_op.add_column(sa.Column("honeypot", sa.Integer(), nullable=True))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("classification", sa.String(length=20), nullable=True))

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grade", sa.String(length=1), nullable=True))
        batch_op.add_column(
            sa.Column("behaviour_points", sa.Float(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(
            sa.Column("last_activity_at", nurture.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(
            sa.Column("cycle", sa.Integer(), server_default=sa.text("1"), nullable=False)
        )


def downgrade() -> None:

    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("cycle")
        batch_op.drop_column("last_activity_at")
        batch_op.drop_column("behaviour_points")
        batch_op.drop_column("grade")

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("classification")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("honeypot")
        batch_op.drop_column("links")

    with op.batch_alter_table("tracking_hits", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_tracking_hits_lead_id"))
        batch_op.drop_index("ix_tracking_hits_delivery_at")

    op.drop_table("tracking_hits")
    with op.batch_alter_table("stage_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_stage_changes_lead_at")

    op.drop_table("stage_changes")
    with op.batch_alter_table("score_changes", schema=None) as batch_op:
        batch_op.drop_index("ix_score_changes_lead_at")

    op.drop_table("score_changes")
    op.drop_table("sales_feedback")
    with op.batch_alter_table("crm_pushes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_crm_pushes_promotion_id"))
        batch_op.drop_index("ix_crm_pushes_due")

    op.drop_table("crm_pushes")
    with op.batch_alter_table("promotions", schema=None) as batch_op:
        batch_op.drop_index("ix_promotions_status")

    op.drop_table("promotions")
    op.drop_table("endpoint_states")
    op.drop_table("digests")
