"""Engines and sessions, the SQLite settings that make it safe, and migrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Select, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine; on SQLite every transaction takes the write lock at BEGIN.

    SQLite has no `SKIP LOCKED`: `BEGIN IMMEDIATE` serialises writers, so two
    processes can never claim the same due row (the second waits, then sees it moved).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
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
        engine = create_engine(url, connect_args={"timeout": 60}, pool_reset_on_return=None)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # each statement its own read
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA query_only=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        return engine
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None)


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


def plan_afresh(session: Session) -> None:
    """Plan this transaction's statements for the tables as they are now (PostgreSQL).

    psycopg prepares a statement run five times, and PostgreSQL may then keep one
    generic plan for it: planned while `deliveries` held a few rows, a read by lead
    went on scanning the whole table once it held 100,000. Transaction-scoped, so a
    pooled connection (or PgBouncer) keeps its defaults.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


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
            Path(database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), revision)
