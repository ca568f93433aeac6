"""One report, from the request to its table and its text: what `nurture report`, the
JSON API and the console's dashboards call alike, so the CSV a marketer downloads
from the console is the command's CSV, byte for byte (docs/reports.md).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.core.reports import Request
from nurture.core.tables import Table, render


def rep_zones(path: Path) -> dict[str, str]:
    """Each rep's timezone, from the routing file (none when it is missing or broken:
    every rep is then counted on the installation's calendar, as the notes say)."""
    from nurture.core.routing_parser import load_routing

    model = load_routing(path).model
    return {rep.email: rep.timezone for rep in model.reps} if model is not None else {}


def step_order(folder: Path) -> dict[str, tuple[str, ...]]:
    """Each sequence's step ids in file order."""
    from nurture.core.sequence_parser import load_directory

    catalog = load_directory(folder)
    return {sid: tuple(step.id for step in s.steps) for sid, s in catalog.sequences.items()}


def report_table(session: Session, request: Request, settings: Settings, now: datetime) -> Table:
    """The table of `request`, with the rep calendars (SLA) or step order (sequences)
    read from the installation's files as each report needs them."""
    from nurture.reports import build

    zones = rep_zones(settings.routing_file) if request.name == "sla" else None
    order = step_order(settings.sequences_dir) if request.name == "sequences" else None
    return build(session, request, settings, now, zones, order)


def report_text(
    session: Session, request: Request, settings: Settings, now: datetime, form: str | None = None
) -> str:
    """The report as `nurture report ... --format FORM` prints it (default: the
    request's own format). CSV is spreadsheet-safe (nurture/core/tables.py). As a text
    table, the sequences report is followed by the results of each A/B split."""
    form = form or request.form
    text = render(report_table(session, request, settings, now), form)
    if request.name == "sequences" and form == "table":
        from nurture.experiments import split_tables

        text += "".join("\n" + render(t, form) for t in split_tables(session, settings))
    return text


def cost_table(
    session: Session, currency: str, start: str | None = None, end: str | None = None
) -> Table:
    """The costs recorded, month by month, as `nurture costs list` shows them (months
    YYYY-MM, both included; CostError for a bad one)."""
    from nurture.core.tables import table
    from nurture.costs import listed

    rows = [
        (c.month, c.source, c.campaign or None, c.amount,
         f"{c.original_amount} {c.original_currency} at {c.rate}" if c.rate else None)
        for c in listed(session, start, end)
    ]  # fmt: skip
    columns = ("month", "source", "campaign", f"amount ({currency})", "entered as")
    return table(f"Costs ({currency})", columns, rows)
