"""Engines and sessions, the SQLite settings that make it safe, and migrations."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable, Collection, Iterable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BindParameter,
    Column,
    ColumnElement,
    Engine,
    Select,
    Table,
    Text,
    TextClause,
    Update,
    any_,
    bindparam,
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (it holds leads' personal
    data); SQLite gives its `-wal` and `-shm` files the same mode. An existing file
    keeps the mode it has: chmod is the operator's call."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine; on SQLite every transaction takes the write lock at BEGIN.

    SQLite has no `SKIP LOCKED`: `BEGIN IMMEDIATE` serialises writers, so two
    processes can never claim the same due row (the second waits, then sees it moved).
    """
    # Errors and logs never show the values of a statement: they are personal data.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            _create_private(Path(database))
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            # Deleted rows are overwritten with zeros, not left in free pages: an erased
            # person's name must not be readable in the file afterwards.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


def make_read_engine(url: str) -> Engine:
    """An engine for single reads that must not queue behind writers: one statement,
    no transaction around it.

    On SQLite no `BEGIN IMMEDIATE` (the write lock) and the connection is read-only;
    on PostgreSQL autocommit and no pre-ping, so a read is one round trip instead of
    four (ping, `BEGIN`, `SELECT`, `ROLLBACK`). A stale pooled connection fails its
    statement: callers retry once.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url, connect_args={"timeout": 60}, pool_reset_on_return=None, hide_parameters=True
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # each statement its own read
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    # A database that hangs (a partition) must not hold a click for minutes: give up
    # after 3 s and answer the page that retries by itself.
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        connect_args={"connect_timeout": 3},
        hide_parameters=True,
    )


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def skip_locked(engine_or_session: Engine | Session, query: Select[Any]) -> Select[Any]:
    """`FOR UPDATE SKIP LOCKED` where the database has it (PostgreSQL)."""
    bind = (
        engine_or_session.get_bind()
        if isinstance(engine_or_session, Session)
        else engine_or_session
    )
    if bind.dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True)
    return query


def checkpoint(engine: Engine, attempts: int = 5) -> bool:
    """On SQLite, fold the write-ahead log into the file and empty it, so pages that
    held erased rows are not left behind in it. Its own connection (a pooled one may
    still hold a statement), tried again briefly while readers hold the log; False
    when it could not be done now (the next automatic checkpoint will)."""
    if engine.dialect.name != "sqlite" or not engine.url.database:
        return True
    for attempt in range(attempts):
        with contextlib.closing(sqlite3.connect(engine.url.database, timeout=10)) as connection:
            try:
                busy, _, _ = connection.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            except sqlite3.OperationalError:
                busy = 1
        if not busy:
            return True
        time.sleep(0.05 * (attempt + 1))  # a reader finishing its statement
    return False


IMPORT_WAL_PAGES = 20_000  # SQLite: about 80 MB of log between two checkpoints


def bulk_writing(session: Session) -> None:
    """On SQLite, let the write-ahead log grow to IMPORT_WAL_PAGES before it is folded
    into the file (1,000 by default), for this connection's commits. A large import
    dirties index pages all over the file; folded less often, a page changed by many
    chunks is written back once: 200,000 rows import about 8 % faster. The log is
    folded at the next commit of another connection past its own threshold, or when
    the last connection closes."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text(f"PRAGMA wal_autocheckpoint = {IMPORT_WAL_PAGES}"))


def plan_afresh(session: Session) -> None:
    """Plan this transaction's statements for the tables as they are now (PostgreSQL).

    psycopg prepares a statement run five times, and PostgreSQL may then keep one
    generic plan for it: planned while `deliveries` held a few rows, a read by lead
    went on scanning the whole table once it held 100,000. Transaction-scoped, so a
    pooled connection (or PgBouncer) keeps its defaults.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


PEOPLE_LOCKS = 0x6E6C6561  # PostgreSQL advisory locks, first key: a person by address

_HOLD_PEOPLE = text(
    "SELECT count(pg_advisory_xact_lock(:space, k)) FROM"
    " (SELECT DISTINCT hashtext(e) AS k FROM unnest(CAST(:emails AS text[])) AS e ORDER BY k)"
    " AS held"
)


def hold_people(session: Session, emails: Collection[str]) -> None:
    """Hold these people, by address, until the transaction ends (PostgreSQL): another
    arrival of one of them waits, then finds the lead this one stored, instead of
    inserting the same person too and failing on the unique address. Taken in one
    order, so two batches never wait on each other both ways. A hash shared by two
    addresses only makes one wait for the other. SQLite takes one writer at a time."""
    if emails and session.get_bind().dialect.name == "postgresql":
        session.execute(_HOLD_PEOPLE, {"space": PEOPLE_LOCKS, "emails": list(emails)})


def among(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(array)`, one parameter.

    An IN list of 200 values is a new 4 KB statement for each count, which psycopg
    parses again every time (it caches shorter texts only) and PostgreSQL cannot keep
    prepared; the array keeps one short text for any count.
    """
    values = list(values)
    if _dialect(session) == "postgresql":
        return cast(
            "ColumnElement[bool]",
            column == any_(bindparam(None, values, type_=ARRAY(column.type))),
        )
    return cast("ColumnElement[bool]", column.in_(values))


def update_rows(session: Session, model: type[Any], rows: Iterable[dict[str, Any]]) -> None:
    """UPDATE rows by `id`, each to its own values, in one statement per set of columns.

    On PostgreSQL one `UPDATE … FROM jsonb_to_recordset(rows)`: the rows travel as one
    JSON text, encoded in C. (An executemany costs psycopg and the ORM tens of
    microseconds of Python per row, and the dispatcher updates four rows per email;
    arrays of text cost psycopg a regular expression per element, half the time of a
    re-import.) On SQLite a Core executemany, which sqlite3 runs in C.

    A JSON column given None becomes SQL NULL on PostgreSQL and JSON `null` on SQLite;
    both read back as None. Leave the column out to keep what is stored.
    """
    table: Table = model.__table__
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    postgres = _dialect(session) == "postgresql"
    for names, group in groups.items():
        if postgres:
            encoded = json.dumps(group, default=_json_value, allow_nan=False)
            session.execute(_recordset_update(table, names), {"rows": encoded})
        else:
            session.execute(_keyed_update(table, names), [_keyed(row) for row in group])


def _json_value(value: Any) -> str:
    """A column value JSON has no type for, as PostgreSQL reads it back."""
    if isinstance(value, datetime):
        if value.tzinfo is None:  # as UTCDateTime refuses one
            raise ValueError(f"naive datetime refused: {value!r}")
        return value.isoformat()
    if isinstance(value, date | Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} cannot be written: {value!r}")


@lru_cache(maxsize=64)
def _recordset_update(table: Table, names: tuple[str, ...]) -> TextClause:
    # Every name is one of the table's columns (looked up here: KeyError otherwise).
    columns = ", ".join(
        f"{name} {'JSONB' if _is_json(table.c[name]) else _pg_type(table.c[name])}"
        for name in names
    )
    assignments = ", ".join(f"{name} = v.{name}" for name in names if name != "id")
    sql = f"UPDATE {table.name} AS t SET {assignments} FROM "  # noqa: S608
    sql += f"jsonb_to_recordset(CAST(:rows AS jsonb)) AS v({columns}) WHERE t.id = v.id"
    return text(sql)


def update_held(
    session: Session,
    model: type[Any],
    rows: list[dict[str, Any]],
    sql: str,
    params: dict[str, Any],
    binds: tuple[BindParameter[Any], ...],
    read: tuple[Any, ...],
    keep: Callable[[Any], bool],
) -> set[int]:
    """UPDATE rows by `id` like `update_rows`, but only those that still meet a
    condition (a holder's fence); returns the ids updated.

    On PostgreSQL one `UPDATE … FROM unnest(…) WHERE … AND <sql> RETURNING id` (`sql`
    names the table `t`, its parameters bound by `binds`): the fence costs no extra
    round trip. On SQLite, whose writers are serialised, the rows are read by key
    (`read`: the columns `keep` looks at) and those `keep` accepts are updated:
    planned by the condition, SQLite would walk every row the holder holds.
    """
    if not rows:
        return set()
    table: Table = model.__table__
    names = tuple(rows[0])
    if _dialect(session) == "postgresql":
        statement = _fenced_update(table, names, sql, binds)
        return set(session.scalars(statement, {**_arrays(table, rows, names), **params}))
    ids = [row["id"] for row in rows]
    found = session.execute(select(table.c.id, *read).where(table.c.id.in_(ids)))
    held = {row.id for row in found if keep(row)}
    update_rows(session, model, [row for row in rows if row["id"] in held])
    return held


@lru_cache(maxsize=64)
def _fenced_update(
    table: Table, names: tuple[str, ...], sql: str, binds: tuple[BindParameter[Any], ...]
) -> TextClause:
    base = _unnest_update(table, names)
    return text(f"{base.text} AND {sql} RETURNING t.id").bindparams(
        *_array_params(table, names), *binds
    )


def insert_rows(
    session: Session, model: type[Any], rows: list[dict[str, Any]], returning: tuple[str, ...]
) -> list[tuple[Any, ...]]:
    """INSERT rows (all with the same columns) and return `returning` for each, in no
    particular order (callers match them by key): one `INSERT … SELECT FROM unnest` on
    PostgreSQL, a Core executemany on SQLite."""
    if not rows:
        return []
    table: Table = model.__table__
    names = tuple(rows[0])
    if _dialect(session) == "postgresql":
        out = ", ".join(table.c[name].name for name in returning)
        # Every name is one of the table's columns (`_unnest` looks each one up).
        values = ", ".join(_value(table, name) for name in names)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) SELECT {values} FROM "  # noqa: S608
        sql += f"{_unnest(table, names)} RETURNING {out}"
        statement = text(sql).bindparams(*_array_params(table, names))
        arrays = _arrays(table, rows, names)
        return [tuple(row) for row in session.execute(statement, arrays)]
    columns = [table.c[name] for name in returning]
    inserted = insert(table).returning(*columns, sort_by_parameter_order=True)
    return [tuple(row) for row in session.execute(inserted, rows)]


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def _array_params(table: Table, names: tuple[str, ...]) -> list[BindParameter[Any]]:
    # The column's own type processes each element (UTC datetimes) as for one row; JSON
    # travels as text (an array of JSON arrays would read as a two-dimensional array).
    return [
        bindparam(name, type_=ARRAY(Text() if _is_json(table.c[name]) else table.c[name].type))
        for name in names
    ]


def _unnest(table: Table, names: tuple[str, ...]) -> str:
    types = [_pg_type(table.c[name]) for name in names]  # KeyError: not a column
    arrays = ", ".join(f"CAST(:{n} AS {t}[])" for n, t in zip(names, types, strict=True))
    return f"unnest({arrays}) AS v({', '.join(names)})"


def _value(table: Table, name: str) -> str:
    return f"CAST(v.{name} AS JSONB)" if _is_json(table.c[name]) else f"v.{name}"


def _is_json(column: Column[Any]) -> bool:
    return isinstance(column.type, JSON)


@lru_cache(maxsize=64)
def _unnest_update(table: Table, names: tuple[str, ...]) -> TextClause:
    assignments = ", ".join(f"{name} = {_value(table, name)}" for name in names if name != "id")
    # Every name is one of the table's columns (`_unnest` looks each one up).
    sql = f"UPDATE {table.name} AS t SET {assignments} FROM "  # noqa: S608
    sql += f"{_unnest(table, names)} WHERE t.id = v.id"
    return text(sql).bindparams(*_array_params(table, names))


@lru_cache(maxsize=64)
def _keyed_update(table: Table, names: tuple[str, ...]) -> Update:
    # Bound as `_name`: SQLAlchemy reserves the columns' own names in `values()`.
    return (
        table.update()
        .where(table.c.id == bindparam("_id"))
        .values({name: bindparam(f"_{name}") for name in names if name != "id"})
    )


def _keyed(row: dict[str, Any]) -> dict[str, Any]:
    return {f"_{name}": value for name, value in row.items()}


def _arrays(
    table: Table, rows: list[dict[str, Any]], names: tuple[str, ...]
) -> dict[str, list[Any]]:
    return {
        name: [json.dumps(row[name]) for row in rows]
        if _is_json(table.c[name])
        else [row[name] for row in rows]
        for name in names
    }


def _pg_type(column: Column[Any]) -> str:
    return "TEXT" if _is_json(column) else str(column.type.compile(dialect=postgresql.dialect()))


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the database schema up to `revision` (idempotent)."""
    from alembic import command

    if make_url(url).get_backend_name() == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:":
            _create_private(Path(database))
    command.upgrade(alembic_config(url), revision)
