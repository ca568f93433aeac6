"""The daily summary the reports read for closed UTC days (docs/reports.md): counts
per day for the funnel, the sources and the sequences report (`report_days`), the
stays of each day for velocity (`report_stays`, nurture/reports/stays.py), and each
hand-off's SLA measures (nurture/reports/sla.py).

The funnel and the sources report add up one thing: how many leads of a group reached
a step, and the amount of their deals. That adds up over days when a lead falls on one
day only:

- cohort view: the day the lead was created; its steps are those it reached since,
  each lead counted once per step;
- period view: the day the step was reached; each arrival counted (a lead promoted
  twice is two SQLs, as sales received it twice).

The worker sums every day again once a day (the SLA measured again with it), and the
last few days every hour, so a late answer from the CRM lands in its day. Reports read
the summary for the days it holds and count the days after it live (today, mostly),
and say so in their notes; `--live` counts every day from the history. A lead created
before the last days that moved on since counts in the cohort view at the next daily
pass: the price of answering a year in a fraction of a second, stated in the report.

Every summary write is one transaction that deletes the days it sums and inserts them
again, under a lock on PostgreSQL: two workers summing at once come out the same as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Date,
    Float,
    and_,
    cast,
    delete,
    distinct,
    func,
    insert,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nurture.config import Settings
from nurture.core.reports import Period
from nurture.core.reports_funnel import STEPS as FUNNEL_STEPS
from nurture.core.reports_funnel import Reached
from nurture.core.reports_sequences import StepCount
from nurture.core.reports_sources import STEPS as SOURCE_STEPS
from nurture.core.reports_velocity import Quantiled, Ranked
from nurture.models import ReportDay, ReportStay, ReportSummary
from nurture.reports.instants import dialect_of, within
from nurture.reports.output import rep_zones
from nurture.reports.queries import (
    _lead_groups,
    _not_before,
    _reaches,
    lead_keys,
    reached,
    step_counts,
    step_counts_by_day,
    summed,
)
from nurture.reports.sla import calendars, measure_answers, years_of
from nurture.reports.stays import durations, keep

# What the keys k0, k1, k2 of each kind of row are, and the views and steps kept of it.
KINDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "lead": (("cohort", "period"), FUNNEL_STEPS),  # source, campaign, rep
    "sequence": (("cohort", "period"), FUNNEL_STEPS),  # each sequence the lead entered
    "first": (("cohort",), SOURCE_STEPS),  # first touch: source, campaign
    "last": (("cohort",), SOURCE_STEPS),  # latest touch: source, campaign
}
EVER = date(1970, 1, 1)  # before any lead, and a day before it is still a date
# Summing a day again this many days back, every hour: CRM answers dated in the past.
RECENT_DAYS = 7
HOURLY = timedelta(hours=1)
LOCK_KEY = 0x6E757274  # PostgreSQL advisory lock: one summary write at a time


@dataclass(frozen=True)
class Summarised:
    first: date | None  # the first day summed again (None: every day)
    through: date
    rows: int
    rebuilt: bool
    measured: int = 0  # hand-offs whose SLA measures were written

    def __str__(self) -> str:
        days = "every day" if self.first is None else f"{self.first} to {self.through}"
        return f"{days} summed ({self.rows:,} rows, {self.measured:,} hand-offs measured)"


# --- writing -----------------------------------------------------------------------------


def due(session: Session, now: datetime) -> str | None:
    """What the worker should sum at `now`: "every day" when the summary is missing or
    was last rebuilt on an earlier UTC day, "recent days" when it was made an hour ago
    or more, else nothing."""
    summary = session.get(ReportSummary, 1)
    if summary is None or summary.rebuilt_at.date() < now.date():
        return "every day"
    if now - summary.made_at >= HOURLY:
        return "recent days"
    return None


def summarize_unless_busy(
    session: Session, now: datetime, days: int | None, settings: Settings
) -> Summarised | None:
    """As `summarize`, or None at once when another process is summing: a worker
    leaves it to that one rather than wait."""
    if dialect_of(session) == "postgresql":
        taken = session.scalar(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        if not taken:
            return None
    return summarize(session, now, days, settings)


def summarize(
    session: Session, now: datetime, days: int | None = None, settings: Settings | None = None
) -> Summarised:
    """Sum the closed days (up to yesterday, UTC) again: every day, or with `days` the
    last `days` of them (every day when the summary holds less than the days before).
    With `settings`, measure the SLA of the hand-offs too (nurture/reports/sla.py): all
    of them again on a pass over every day, else those not measured yet."""
    dialect = dialect_of(session)
    if dialect == "postgresql":
        # Waits for another process summing (a lock taken twice in one transaction is
        # held once).
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})
        session.execute(text("SET LOCAL work_mem = '64MB'"))
        session.execute(text("SET LOCAL jit = off"))
    through = now.date() - timedelta(days=1)
    summary = session.get(ReportSummary, 1)
    first: date | None = None
    if days is not None and summary is not None:
        first = through - timedelta(days=days - 1)
        if summary.through < first - timedelta(days=1):
            first = None  # a gap the summary does not hold: every day again
    period = Period(first or EVER, through)
    for kept in (ReportDay, ReportStay):
        if first is None:
            session.execute(delete(kept))
        else:
            session.execute(delete(kept).where(kept.day >= first))
    keep(session, period, lambda column: _day(column, dialect))
    columns = [c.name for c in ReportDay.__table__.columns]
    for kind, (views, steps) in KINDS.items():
        for view in views:
            for query in _sums(kind, view, steps, period, dialect):
                session.execute(insert(ReportDay).from_select(columns, query))
    _sum_steps(session, period)
    measured = 0
    if settings is not None:
        clock = calendars(settings, rep_zones(settings.routing_file), years_of(session, now))
        measured = measure_answers(session, clock, now, every=first is None)
    # Counted, not the inserts' rowcount: psycopg reports none for INSERT ... SELECT.
    rows = session.scalar(select(func.count()).where(ReportDay.day >= period.first)) or 0
    if summary is None:
        summary = ReportSummary(id=1, through=through, made_at=now, rebuilt_at=now)
        session.add(summary)
    summary.through, summary.made_at = through, now
    if first is None:
        summary.rebuilt_at = now
    return Summarised(first, through, rows, first is None, measured)


def _sum_steps(session: Session, period: Period) -> None:
    """The sequences report's counts per day: view "sequences", kind "steps", k0 the
    sequence, k1 the step ('' for the sequence as a whole), k2 an exit's reason, `step`
    the measure (a few hundred rows a day: written from here, not INSERT ... SELECT)."""
    rows = [
        {
            "view": "sequences",
            "kind": "steps",
            "day": date.fromisoformat(str(day)),
            "k0": count.sequence,
            "k1": count.step or "",
            "k2": count.detail,
            "step": count.measure,
            "leads": count.count,
            "amount": None,
        }
        for day, count in step_counts_by_day(session, period)
        if count.count
    ]
    if rows:
        session.execute(insert(ReportDay), rows)


def _day(column: Any, dialect: str) -> ColumnElement[Any]:
    if dialect == "sqlite":  # "YYYY-MM-DD HH:MM:SS", UTC: its first ten characters
        return func.substr(column, 1, 10)
    return cast(func.timezone("UTC", column), Date)


def _grouped(kind: str) -> tuple[Any, list[ColumnElement[Any]]]:
    """Each lead (with its created_at) and the three keys of `kind`, '' where absent."""
    if kind == "lead":
        grouped = lead_keys()
    elif kind == "sequence":
        grouped = _lead_groups("sequence")
    else:
        grouped = _lead_groups("campaign", kind)
    keys: list[ColumnElement[Any]] = [
        func.coalesce(grouped.c[name], "") if name in grouped.c else literal("")
        for name in ("k0", "k1", "k2")
    ]
    return grouped, keys


def _sums(kind: str, view: str, steps: Sequence[str], period: Period, dialect: str) -> list[Any]:
    """The rows of ReportDay for `kind` and `view` over the days of `period`."""
    grouped, keys = _grouped(kind)
    tag = [literal(view).label("view"), literal(kind).label("kind")]
    created = _day(grouped.c.created_at, dialect)
    found: list[Any] = []
    if "leads" in steps:
        found.append(
            select(*tag, created, *keys, literal("leads"), func.count(), cast(null(), Float))
            .where(within(grouped.c.created_at, period))
            .group_by(created, *keys)
        )
    reaches = _reaches()
    later = [step for step in steps if step != "leads"]
    reach = union_all(
        *(reaches[step].add_columns(literal(step).label("step")) for step in later)
    ).subquery("reach")
    joined = reach.join(grouped, grouped.c.lead_id == reach.c.lead_id)
    if view == "cohort":
        day, counted, when = created, func.count(distinct(reach.c.lead_id)), grouped.c.created_at
    else:
        day, counted, when = _day(reach.c.at, dialect), func.count(), reach.c.at
    found.append(
        select(*tag, day, *keys, reach.c.step, counted, func.sum(reach.c.amount))
        .select_from(joined)
        .where(within(when, period), *_not_before(reach, period, view))
        .group_by(day, *keys, reach.c.step)
    )
    return found


# --- reading -----------------------------------------------------------------------------


def funnel_rows(
    session: Session,
    period: Period,
    by: str,
    view: str,
    steps: Sequence[str],
    attribution: str | None = None,
    total: bool = True,
    live: bool = False,
) -> tuple[list[Reached], str]:
    """The rows `reached` would count, read from the summary for the days it holds and
    counted live after them; and a note saying which days came from where."""
    summary = None if live else session.get(ReportSummary, 1)
    if summary is None or summary.through < period.first:
        return reached(session, period, by, view, steps, attribution, total), _live_note(live)
    through = min(period.last, summary.through)
    # Each group's total is the sum of its days; by sequence a lead is in several
    # groups, so the total comes from the rows of every lead (kind "lead").
    disjoint = by != "sequence"
    rows = _read(session, Period(period.first, through), by, view, steps, attribution)
    if total and not disjoint:
        rows += _read(session, Period(period.first, through), None, view, steps, None)
    later = "a lead created earlier counts the steps it had reached by then"
    note = _summary_note(summary, period.first, through, later if view == "cohort" else None)
    if period.last > through:
        rest = Period(through + timedelta(days=1), period.last)
        rows += reached(session, rest, by, view, steps, attribution, total and not disjoint)
        note += f"; {rest.first} to {rest.last}: counted live"
    rows = _merged(rows)
    if total and disjoint:
        rows += summed(rows)
    return rows, note + "; --live counts every day from the history"


def _live_note(live: bool) -> str:
    return "counted live from the history" + (
        "" if live else " (no daily summary of these days yet)"
    )


def _summary_note(summary: ReportSummary, first: date, through: date, stale: str | None) -> str:
    """Which days came from the summary, made when; `stale`: what it does not see yet."""
    rebuilt = f"{summary.rebuilt_at:%Y-%m-%d %H:%M} UTC"
    note = f"{first} to {through}: the daily summary of {rebuilt}"
    if summary.made_at > summary.rebuilt_at:
        note += f", its last {RECENT_DAYS} days again at {summary.made_at:%H:%M}"
    return note + (f" ({stale})" if stale else "")


def _read(
    session: Session,
    period: Period,
    by: str | None,
    view: str,
    steps: Sequence[str],
    attribution: str | None,
) -> list[Reached]:
    kind = "lead"
    if by == "sequence":
        kind = "sequence"
    elif by in ("source", "campaign") and attribution is not None:
        kind = attribution
    columns: dict[str | None, list[Any]] = {
        "source": [ReportDay.k0],
        "campaign": [ReportDay.k0, ReportDay.k1],
        "sequence": [ReportDay.k0],
        "rep": [ReportDay.k2],
        "month": [ReportDay.day],
        None: [],
    }
    keys = columns[by]
    query = (
        select(*keys, ReportDay.step, func.sum(ReportDay.leads), func.sum(ReportDay.amount))
        .where(
            ReportDay.view == view,
            ReportDay.kind == kind,
            and_(ReportDay.day >= period.first, ReportDay.day <= period.last),
            ReportDay.step.in_(steps),
        )
        .group_by(*keys, ReportDay.step)
    )
    found = []
    for *key, step, leads, amount in session.execute(query):
        if by == "month":
            group: tuple[Any, ...] = (key[0].strftime("%Y-%m"),)
        else:
            group = tuple(part or None for part in key)
        found.append(Reached(group, step, int(leads), amount))
    return found


def _merged(rows: Sequence[Reached]) -> list[Reached]:
    """Rows of the same group and step added up (the summary's days and the live ones,
    a month's days); an absent key is None whichever side it came from."""
    counts: dict[tuple[tuple[Any, ...], str], list[Any]] = {}
    for row in rows:
        key = (tuple(part or None for part in row.group), row.step)
        found = counts.setdefault(key, [0, None])
        found[0] += row.leads
        if row.amount is not None:
            found[1] = (found[1] or 0) + row.amount
    return [Reached(group, step, n, amount) for (group, step), (n, amount) in counts.items()]


def step_rows(session: Session, period: Period, live: bool = False) -> tuple[list[StepCount], str]:
    """The sequences report's counts: from the summary for the days it holds, counted
    live after them; and the note saying so."""
    summary = None if live else session.get(ReportSummary, 1)
    if summary is None or summary.through < period.first:
        return step_counts(session, period), _live_note(live)
    through = min(period.last, summary.through)
    query = (
        select(ReportDay.k0, ReportDay.k1, ReportDay.step, ReportDay.k2, func.sum(ReportDay.leads))
        .where(
            ReportDay.view == "sequences",
            ReportDay.kind == "steps",
            and_(ReportDay.day >= period.first, ReportDay.day <= through),
        )
        .group_by(ReportDay.k0, ReportDay.k1, ReportDay.step, ReportDay.k2)
    )
    rows = [
        StepCount(sequence, step or None, measure, int(count), detail)
        for sequence, step, measure, detail, count in session.execute(query)
    ]
    note = _summary_note(
        summary,
        period.first,
        through,
        "an email sent earlier counts the opens, clicks and reports it had by then",
    )
    if period.last > through:
        rest = Period(through + timedelta(days=1), period.last)
        rows += step_counts(session, rest)
        note += f"; {rest.first} to {rest.last}: counted live"
    return rows, note + "; --live counts every day from the history"


def stay_rows(
    session: Session, period: Period, by: str, live: bool = False
) -> tuple[list[Ranked | Quantiled], str]:
    """Velocity's sample: the stays the summary keeps for the days it holds, the
    history's after them (one sample: exact percentiles); and the note saying so."""
    summary = None if live else session.get(ReportSummary, 1)
    if summary is None or summary.through < period.first:
        return durations(session, period, by), _live_note(live)
    through = min(period.last, summary.through)
    rows = durations(session, period, by, through)
    note = _summary_note(summary, period.first, through, "grouped as the leads were then")
    if period.last > through:
        note += f"; {through + timedelta(days=1)} to {period.last}: counted live"
    return rows, note + "; --live counts every day from the history"


def measures_note(session: Session, live: bool) -> str:
    """Where the SLA report's measures came from."""
    summary = None if live else session.get(ReportSummary, 1)
    if summary is None:
        return "every hand-off measured now" + ("" if live else " (no daily summary yet)")
    return (
        f"hand-offs measured on the reps' calendars by the daily summary of"
        f" {summary.rebuilt_at:%Y-%m-%d %H:%M} UTC (newer ones and answers since, now);"
        " --live measures every one now"
    )
