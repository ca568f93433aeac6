"""Migrations build the schema the models describe, from an empty database, with no drift."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, create_engine, inspect, select, text
from sqlalchemy.orm import Session

from nurture.db import upgrade
from nurture.models import Base, Delivery


# SQLite cannot reflect expression indexes (the console's lower(...) ones): they are
# compared on PostgreSQL, where this test runs too.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_upgrade_from_empty_has_no_drift(database_url: str) -> None:
    upgrade(database_url)  # idempotent: the fixture already upgraded once
    engine = create_engine(database_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection)
        diff = compare_metadata(context, Base.metadata)
        tables = set(inspect(connection).get_table_names())
    engine.dispose()
    assert diff == []
    assert {"leads", "events", "enrollments", "deliveries", "sequence_versions"} <= tables


def insert_lead(connection: Connection, lead_id: int, at: str, stage: str = "lead") -> None:
    """A lead row as an older schema holds it (no ORM: the models are the newest)."""
    connection.execute(
        text(
            "INSERT INTO leads (id, public_id, email, stage, score, tags, fields, "
            "created_at, updated_at) VALUES (:id, :p, :e, :stage, 0, '[]', '{}', :at, :at)"
        ),
        {
            "id": lead_id,
            "p": f"l{lead_id}",
            "e": f"{lead_id}@example.com",
            "stage": stage,
            "at": at,
        },
    )


def test_the_emails_already_read_keep_their_engagement_across_the_upgrade(
    database_url: str,
) -> None:
    """Migration 0012 fills each email's engagement from the hits it already had, so
    the sequence report shows the same opens and clicks after the upgrade."""
    from alembic import command

    from nurture.db import alembic_config

    command.downgrade(alembic_config(database_url), "0011")
    engine = create_engine(database_url)
    at = "2026-03-02 10:00:00+00:00"
    with engine.begin() as connection:
        insert_lead(connection, 1, at)
        connection.execute(
            text(
                "INSERT INTO enrollments (id, lead_id, sequence_id, version, cycle, status, "
                "step_id, step_started_at, priority, entered_at) "
                "VALUES (1, 1, 's', 'v1', 1, 'active', 'hello', :at, 50, :at)"
            ),
            {"at": at},
        )
        connection.execute(
            text(
                "INSERT INTO deliveries (id, enrollment_id, lead_id, sequence_id, version, "
                "step_id, template, kind, status, attempts, message_id, to_email, links, "
                "created_at, updated_at, sent_at) VALUES (1, 1, 1, 's', 'v1', 'hello', 't', "
                "'guide', 'sent', 1, '<m@x>', 'a@example.com', '[]', :at, :at, :at)"
            ),
            {"at": at},
        )
        hits = [  # (kind, classification, minutes after 10:00)
            ("open", "machine_open", 1),
            ("open", "human", 30),
            ("open", "human", 5),
            ("click", "scanner", 2),
            ("click", None, 3),  # not processed yet: counts for nothing
        ]
        for n, (kind, classification, minute) in enumerate(hits, start=1):
            connection.execute(
                text(
                    "INSERT INTO tracking_hits (id, delivery_id, lead_id, kind, method, "
                    "classification, reasons, at) VALUES (:n, 1, 1, :kind, 'GET', :c, '[]', "
                    f"'2026-03-02 10:{minute:02d}:00+00:00')"
                ),
                {"n": n, "kind": kind, "c": classification},
            )
    upgrade(database_url)
    with Session(engine) as session:
        delivery = session.scalars(select(Delivery)).one()
        found = (
            delivery.opened_at,
            delivery.clicked_at,
            delivery.machine_opened_at,
            delivery.scanned_at,
        )
    engine.dispose()
    ten = datetime(2026, 3, 2, 10, tzinfo=UTC)
    assert found == (
        ten + timedelta(minutes=5),  # the first human open
        None,  # the click was a scanner's, or not processed yet
        ten + timedelta(minutes=1),
        ten + timedelta(minutes=2),
    )


def test_the_stage_history_gets_its_stays_across_the_upgrade(database_url: str) -> None:
    """Migration 0015 dates each recorded stage change's stay (from the change before,
    or the lead's creation), so velocity reads the same history after the upgrade."""
    from alembic import command

    from nurture.db import alembic_config
    from nurture.models import Lead, StageChange

    command.downgrade(alembic_config(database_url), "0014")
    engine = create_engine(database_url)
    with engine.begin() as connection:
        for lead_id, created in (
            (1, "2026-03-01 09:00:00+00:00"),
            (2, "2026-03-05 09:00:00+00:00"),
        ):
            insert_lead(connection, lead_id, created)
        changes = [  # (id, lead, from, to, at): lead 1 twice, lead 2 once
            (1, 1, "lead", "mql", "2026-03-03 09:00:00+00:00"),
            (2, 2, "lead", "mql", "2026-03-06 09:00:00+00:00"),
            (3, 1, "mql", "sql", "2026-03-10 09:00:00+00:00"),
        ]
        for change_id, lead_id, before, after, when in changes:
            connection.execute(
                text(
                    "INSERT INTO stage_changes (id, lead_id, from_stage, to_stage, cause, at) "
                    "VALUES (:id, :lead, :before, :after, 'history', :at)"
                ),
                {"id": change_id, "lead": lead_id, "before": before, "after": after, "at": when},
            )
    upgrade(database_url)
    with Session(engine) as session:
        since = {i: t for i, t in session.execute(select(StageChange.id, StageChange.since))}
        stage_since = {i: t for i, t in session.execute(select(Lead.id, Lead.stage_since))}
    engine.dispose()
    assert since == {
        1: datetime(2026, 3, 1, 9, tzinfo=UTC),  # the lead's creation
        2: datetime(2026, 3, 5, 9, tzinfo=UTC),
        3: datetime(2026, 3, 3, 9, tzinfo=UTC),  # the change before
    }
    assert stage_since == {
        1: datetime(2026, 3, 10, 9, tzinfo=UTC),
        2: datetime(2026, 3, 6, 9, tzinfo=UTC),
    }


def test_the_answers_already_received_date_their_promotions_across_the_upgrade(
    database_url: str,
) -> None:
    """Migration 0016 keeps each promotion's first answer, opportunity and win from the
    CRM answers it already had, so the funnel and SLA read the same after the upgrade."""
    from alembic import command

    from nurture.db import alembic_config
    from nurture.models import Promotion

    command.downgrade(alembic_config(database_url), "0015")
    engine = create_engine(database_url)
    at = "2026-03-02 10:00:00+00:00"
    with engine.begin() as connection:
        insert_lead(connection, 1, at, stage="customer")
        connection.execute(
            text(
                "INSERT INTO promotions (id, lead_id, cycle, reason, status, status_at, "
                "escalations, sla_breached, created_at) "
                "VALUES (1, 1, 1, 'score', 'won', :at, 0, false, :at)"
            ),
            {"at": at},
        )
        answers = [  # arrived out of order
            ("won", "2026-03-20 10:00:00+00:00"),
            ("accepted", "2026-03-03 09:00:00+00:00"),
            ("opportunity", "2026-03-09 10:00:00+00:00"),
        ]
        for n, (status, when) in enumerate(answers):
            connection.execute(
                text(
                    "INSERT INTO sales_feedback (promotion_id, external_id, status, "
                    "occurred_at, received_at) VALUES (1, :x, :s, :at, :at)"
                ),
                {"x": f"crm-{n}", "s": status, "at": when},
            )
    upgrade(database_url)
    with Session(engine) as session:
        promotion = session.scalars(select(Promotion)).one()
        found = (promotion.answered_at, promotion.opportunity_at, promotion.won_at)
    engine.dispose()
    assert found == (
        datetime(2026, 3, 3, 9, tzinfo=UTC),
        datetime(2026, 3, 9, 10, tzinfo=UTC),
        datetime(2026, 3, 20, 10, tzinfo=UTC),
    )
