"""The reports, from request to table: the queries over the history (queries.py,
sla.py, stays.py) or the daily summary (summary.py), turned into tables by the pure
reports (nurture/core/reports*.py); output.py renders them for the command, the API
and the console. Days and months are UTC, read alike on both databases (instants.py).
Each table's last note says where its figures came from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.core.reports import Request
from nurture.core.reports_deliverability import deliverability
from nurture.core.reports_funnel import STEPS as FUNNEL_STEPS
from nurture.core.reports_funnel import funnel
from nurture.core.reports_sequences import sequences
from nurture.core.reports_sla import sla_table
from nurture.core.reports_sources import STEPS as SOURCE_STEPS
from nurture.core.reports_sources import sources
from nurture.core.reports_velocity import velocity
from nurture.core.tables import Table
from nurture.reports.instants import dialect_of
from nurture.reports.queries import REPORT_WORK_MEM, costs, day_counts, step_counts
from nurture.reports.sla import calendars, treatment
from nurture.reports.sla import figures as sla_figures
from nurture.reports.stays import durations
from nurture.reports.summary import funnel_rows, measures_note, stay_rows, step_rows

__all__ = ["build", "durations", "step_counts", "treatment"]


def noted(table: Table, note: str) -> Table:
    return replace(table, notes=(*table.notes, note))


def build(
    session: Session,
    request: Request,
    settings: Settings,
    now: datetime,
    rep_zones: Mapping[str, str] | None = None,
    step_order: Mapping[str, Sequence[str]] | None = None,
) -> Table:
    """The table of `request`. `rep_zones`: each rep's timezone by email (the routing
    file); `step_order`: each sequence's steps in file order."""
    period, by = request.period, request.by
    currency = settings.currency
    if dialect_of(session) == "postgresql":
        # For this report's transaction only: a year's sample is sorted and grouped in
        # memory rather than spilled to disk (the default 4 MB spills), and no query is
        # compiled first (JIT cost 0.2 s a query here and saved nothing on these plans).
        session.execute(text(f"SET LOCAL work_mem = '{REPORT_WORK_MEM}'"))
        session.execute(text("SET LOCAL jit = off"))
    if request.name == "funnel":
        rows, note = funnel_rows(session, period, by, request.view, FUNNEL_STEPS, live=request.live)
        return noted(funnel(rows, by, request.view, period, currency), note)
    if request.name == "sources":
        rows, note = funnel_rows(session, period, by, "cohort", SOURCE_STEPS,
                                 request.attribution, total=False, live=request.live)  # fmt: skip
        spent = costs(session, period)
        return noted(sources(rows, spent, by, request.attribution, period, currency), note)
    if request.name == "sla":
        # Holidays of every year a hand-off or its answer may fall in.
        years = range(period.first.year - 1, max(period.last.year, now.year) + 2)
        clock = calendars(settings, rep_zones or {}, years)
        found = sla_figures(session, period, by, now, clock, request.live)
        shown = sla_table(found, clock.reps, clock.fallback, clock.hours, by, period,
                          settings.treatment_alarm)  # fmt: skip
        return noted(shown, measures_note(session, request.live))
    if request.name == "velocity":
        samples, note = stay_rows(session, period, by, request.live)
        return noted(velocity(samples, by, period), note)
    if request.name == "sequences":
        counts, note = step_rows(session, period, request.live)
        return noted(sequences(counts, period, step_order), note)
    if request.name == "deliverability":
        return deliverability(day_counts(session, period), period)
    raise ValueError(f"unknown report {request.name!r}")
