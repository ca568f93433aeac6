"""Migrations build the schema the models describe, from an empty database, with no drift."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from nurture.db import upgrade
from nurture.models import Base


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
