"""Rows in bulk, at the database's own speed: what a batch of arrivals writes.

On PostgreSQL rows are streamed with COPY (no SQL to parse, no parameter per value):
straight into their table, or, for new leads whose ids are needed, into a temporary
staging table first, then moved into `leads` by one INSERT ... SELECT that returns
them. On SQLite one executemany on the driver, which sqlite3 runs in C; values go
through each column's own type (UTC datetimes, JSON) as they do for the ORM.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

from sqlalchemy import JSON, Table, select, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from nurture.db import among
from nurture.leads import LEAD_COLUMNS
from nurture.models import Lead

LEADS: Table = Lead.__table__  # type: ignore[assignment]  # a declared model's table
STAGING = "lead_staging"  # per connection, emptied at each commit
_CREATE = (
    "CREATE TEMP TABLE IF NOT EXISTS lead_staging (LIKE leads) ON COMMIT DELETE ROWS;"
    " DELETE FROM lead_staging"
)
_NAMES = ", ".join(LEAD_COLUMNS)  # the model's own columns: a fixed text
_MOVE = (
    f"INSERT INTO leads ({_NAMES}) SELECT {_NAMES} FROM {STAGING}"  # noqa: S608
    " ORDER BY id RETURNING id, email"
)


def insert_leads(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """Insert these new leads (each row with every LEAD_COLUMNS), in the order given,
    which concurrent batches keep alike (sorted by email); their ids by email."""
    if not rows:
        return {}
    if session.get_bind().dialect.name != "postgresql":
        add_rows(session, Lead, rows)
        found = session.execute(
            select(Lead.id, Lead.email).where(
                among(session, Lead.email, [r["email"] for r in rows])
            )
        )
        return {email: id_ for id_, email in found}
    # `LIKE leads` keeps the staging table's columns in step with `leads` (no index:
    # rows only pass through); its `id` holds each row's position.
    session.execute(text(_CREATE))
    _copy(session, STAGING, ("id", *LEAD_COLUMNS), _jsons(LEADS),
          ((n, *(r[c] for c in LEAD_COLUMNS)) for n, r in enumerate(rows)))  # fmt: skip
    return {email: id_ for id_, email in session.execute(text(_MOVE))}


def add_rows(session: Session, model: type[Any], rows: list[dict[str, Any]]) -> None:
    """Insert rows that all have the same columns; no ids returned."""
    if not rows:
        return
    table: Table = model.__table__
    names = tuple(rows[0])
    dialect = session.get_bind().dialect
    if dialect.name == "postgresql":
        _copy(session, table.name, names, _jsons(table), (tuple(r.values()) for r in rows))
        return
    processors = _processors(table, names, dialect)
    # Only the columns whose type converts (UTC datetimes, JSON): most values pass as
    # they are. None is SQL NULL, as for a column the ORM leaves out (not JSON `null`).
    converted = [(i, p) for i, p in enumerate(processors) if p is not None]
    values = []
    for r in rows:
        row = list(r.values())
        for i, process in converted:
            if row[i] is not None:
                row[i] = process(row[i])
        values.append(row)
    marks = ", ".join("?" * len(names))
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    cursor.executemany(sql, values)


def _copy(
    session: Session, table: str, names: tuple[str, ...], jsons: frozenset[str], rows: Any
) -> None:
    json_at = [name in jsons for name in names]
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(
                [
                    json.dumps(v) if j and v is not None else v
                    for j, v in zip(json_at, row, strict=True)
                ]
            )


@cache
def _jsons(table: Table) -> frozenset[str]:
    return frozenset(c.name for c in table.columns if isinstance(c.type, JSON))


@cache
def _processors(
    table: Table, names: tuple[str, ...], dialect: Dialect
) -> tuple[Callable[[Any], Any] | None, ...]:
    return tuple(table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in names)
