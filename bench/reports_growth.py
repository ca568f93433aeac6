"""Growing a history the engine wrote to the benchmark's volume, set-based.

The engine makes the history's shape (`nurture demo`'s moving clock: intake, sends,
opens and clicks through the tracking routes, scores, promotions, CRM answers); this
copies that whole history K times in one `INSERT … SELECT … CROSS JOIN
generate_series` per table, as another K populations of the same behaviour. Each copy
keeps every relation (ids are offset by the table's span, so a copied click still
points at its copied email and lead), every unique value stays unique (prefixed),
and each copy is shifted by a few minutes so copies do not share instants.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, Table, text
from sqlalchemy.sql.sqltypes import DateTime

from nurture.models import Base, UTCDateTime

# The report tables, parents first; what the reports read and the decision log.
TABLES = (
    "leads",
    "enrollments",
    "deliveries",
    "events",
    "tracking_hits",
    "score_changes",
    "stage_changes",
    "promotions",
    "sales_feedback",
    "decisions",
)
# Unique text columns: each copy's value is prefixed with the copy's number.
UNIQUE_TEXT = {
    ("leads", "email"),
    ("deliveries", "message_id"),
    ("tracking_hits", "spool_key"),
    ("sales_feedback", "external_id"),
}
# A shorter unique value: fixed width, so the copy's is a hash of the original's.
HASHED = {("leads", "public_id")}


@dataclass(frozen=True)
class Grown:
    table: str
    before: int
    after: int
    seconds: float


def _spans(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            name: int(connection.scalar(text(f"SELECT coalesce(max(id), 0) FROM {name}")) or 0)
            for name in TABLES
        }


def _expression(table: Table, column_name: str, spans: dict[str, int]) -> str:
    column = table.c[column_name]
    name = f"t.{column_name}"
    if column.primary_key:
        return f"{name} + copy * {spans[table.name]}"
    if column.foreign_keys:
        target = next(iter(column.foreign_keys)).column.table.name
        if target in spans:
            return f"{name} + copy * {spans[target]}"
        return name
    if (table.name, column_name) in UNIQUE_TEXT:
        return f"'c' || copy || '-' || {name}"
    if (table.name, column_name) in HASHED:
        return f"left(md5({name} || copy), {column.type.length})"  # type: ignore[attr-defined]
    if isinstance(column.type, UTCDateTime | DateTime):
        return f"{name} + make_interval(mins => copy % 97)"
    return name


def grow(engine: Engine, copies: int) -> list[Grown]:
    """Every table of TABLES holds its rows and `copies` copies of them (PostgreSQL)."""
    import time

    spans = _spans(engine)
    grown = []
    for name in TABLES:
        table = Base.metadata.tables[name]
        columns = [c.name for c in table.columns]
        values = ", ".join(_expression(table, c, spans) for c in columns)
        started = time.perf_counter()
        with engine.begin() as connection:
            before = int(connection.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
            connection.execute(
                text(
                    f"INSERT INTO {name} ({', '.join(columns)}) "
                    f"SELECT {values} FROM {name} AS t "
                    f"CROSS JOIN generate_series(1, :copies) AS copy "
                    f"WHERE t.id <= :span"
                ),
                {"copies": copies, "span": spans[name]},
            )
            after = int(connection.scalar(text(f"SELECT count(*) FROM {name}")) or 0)
            # The ids the engine will take next are above every copy's.
            connection.execute(
                text(
                    f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                    f"(SELECT max(id) FROM {name}))"
                )
            )
        grown.append(Grown(name, before, after, time.perf_counter() - started))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE"))
    return grown
