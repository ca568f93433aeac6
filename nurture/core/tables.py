"""Tables of figures as people read them: aligned text, CSV, JSON.

CSV opened in a spreadsheet runs any cell that starts like a formula
(`=HYPERLINK(...)`, `+`, `-`, `@`, a tab or carriage return): a source or campaign
name comes from outside, so such a cell is written with a leading apostrophe, which
spreadsheets show as text (OWASP's advice for CSV injection). Numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
FORMATS = ("table", "csv", "json")


@dataclass(frozen=True)
class Table:
    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    notes: tuple[str, ...] = ()  # definitions, shown above a text table, kept in JSON

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    notes: Sequence[str] = (),
) -> Table:
    return Table(title, tuple(columns), tuple(tuple(r) for r in rows), tuple(notes))


def safe_cell(value: Any) -> Any:
    """A value a spreadsheet shows and never runs."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def as_csv(data: Table) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([safe_cell(c) for c in data.columns])
    for row in data.rows:
        writer.writerow([safe_cell(_plain(v)) for v in row])
    return out.getvalue()


def as_json(data: Table) -> str:
    body: Mapping[str, Any] = {
        "title": data.title,
        "notes": list(data.notes),
        "rows": [{k: _json(v) for k, v in r.items()} for r in data.records()],
    }
    return json.dumps(body, ensure_ascii=False, indent=2, allow_nan=False)


def as_text(data: Table) -> str:
    cells = [list(data.columns)] + [[_shown(v) for v in row] for row in data.rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(data.columns))]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) or row[i] is None for row in data.rows)
        for i in range(len(data.columns))
    ]
    lines = [data.title, *(f"  {note}" for note in data.notes), ""]
    for n, row in enumerate(cells):
        line = "  ".join(
            cell.rjust(widths[i]) if numeric[i] and n else cell.ljust(widths[i])
            for i, cell in enumerate(row)
        )
        lines.append(line.rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines) + "\n"


def render(data: Table, form: str) -> str:
    if form == "csv":
        return as_csv(data)
    if form == "json":
        return as_json(data)
    return as_text(data)


def _plain(value: Any) -> Any:
    return "" if value is None else value


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    return value


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)
