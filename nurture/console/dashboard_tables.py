"""How a report's table reads on a page: figures with thousands grouped, amounts to
the cent as the report gives them, `—` for no figure, numbers aligned right. The
values are the table's own; the CSV download has them plain."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import Response

from nurture.core.tables import Table

NOTHING = "—"


def figure(value: Any) -> str:
    if value is None or value == "":
        return NOTHING if value is None else ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | Decimal):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def numeric(data: Table) -> tuple[bool, ...]:
    """Per column: does it hold numbers only (aligned right)?"""
    return tuple(
        any(isinstance(row[i], int | float | Decimal) for row in data.rows)
        and all(row[i] is None or isinstance(row[i], int | float | Decimal) for row in data.rows)
        for i in range(len(data.columns))
    )


def csv_download(text: str, name: str) -> Response:
    """A CSV file to save as `name`.csv (a table of signed-in figures: no cache keeps it)."""
    answer = Response(text, mimetype="text/csv")
    answer.headers["Content-Disposition"] = f'attachment; filename="{name}.csv"'
    answer.headers["Cache-Control"] = "no-store"
    return answer
