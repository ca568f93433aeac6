"""How the report queries read instants, alike on SQLite and PostgreSQL: the UTC day
and month of an instant, the seconds between two, whether one is in a period.

SQLite keeps instants as UTC text ("YYYY-MM-DD HH:MM:SS.ffffff"); PostgreSQL is asked
for UTC explicitly, so both group alike.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, and_, cast, func, type_coerce
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import TypeDecorator

from nurture.core.reports import Period


def dialect_of(session: Session) -> str:
    return session.get_bind().dialect.name


class _Truncated(TypeDecorator[str]):
    """A day or month truncated in the database, read as its text ("2026-03-02"):
    PostgreSQL groups on date_trunc, cheaper per row than formatting every row."""

    impl = String
    cache_ok = True

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        return value.strftime(self.form) if isinstance(value, datetime) else value


def day_of(column: Any, dialect: str) -> ColumnElement[str]:
    if dialect == "sqlite":  # stored as "YYYY-MM-DD HH:MM:SS.ffffff", UTC
        return func.substr(column, 1, 10)
    utc = func.timezone("UTC", column)
    return type_coerce(func.date_trunc("day", utc), _Truncated("%Y-%m-%d"))


def month_of(column: Any, dialect: str) -> ColumnElement[str]:
    if dialect == "sqlite":
        return func.substr(column, 1, 7)
    utc = func.timezone("UTC", column)
    return type_coerce(func.date_trunc("month", utc), _Truncated("%Y-%m"))


def month_type() -> _Truncated:
    """The type month_of's PostgreSQL expression is read as, for another one alike."""
    return _Truncated("%Y-%m")


def seconds_between(later: Any, earlier: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":
        # Whole seconds: strftime('%s') works on every SQLite, unlike unixepoch().
        return cast(func.strftime("%s", later), Integer) - cast(
            func.strftime("%s", earlier), Integer
        )
    return func.extract("epoch", later - earlier)


def within(column: Any, period: Period) -> ColumnElement[bool]:
    return and_(column >= period.start, column < period.end)
