"""The SLA report's queries: the hand-offs of a period, counted in the database from
the measures the reports' summary keeps on each promotion.

Business hours depend on each rep's calendar, which the database does not know. So
the summary measures each hand-off once, on its rep's calendar, with the report's own
code (nurture/core/reports_sla.py): its deadline, and the business seconds to sales'
first answer (`promotions.answer_deadline_at`, `answer_seconds`). The report then
counts states in SQL (in time: answered by the deadline; overdue: unanswered with
the deadline passed at the report's `now`) and leaves the percentiles to the
database. Hand-offs not measured yet (handed over or answered since the summary's
last pass) are measured by the report itself and added; when some of them were
answered, the percentiles are taken from every wait of the period instead.

The daily pass measures every promotion again on the day's calendars and SLA hours
(a rep reassigned, a timezone or NURTURE_SLA_HOURS changed) and writes the ones that
changed; the hourly pass measures the new ones only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nurture.config import Settings
from nurture.core.business_time import WorkCalendar, calendar_for
from nurture.core.reports import Period
from nurture.core.reports_sla import Figures, Handoff, counted, deadlines, measure
from nurture.core.reports_velocity import quantiles_by_group
from nurture.models import Enrollment, Promotion
from nurture.reports.instants import dialect_of, month_of, within
from nurture.reports.percentiles import sample_quantiles
from nurture.reports.queries import _keys, _lead_groups


@dataclass(frozen=True)
class Calendars:
    """Each rep's calendar (by case-folded email), the installation's for the others,
    and the SLA in business hours: what measuring a hand-off needs."""

    reps: Mapping[str, WorkCalendar]
    fallback: WorkCalendar
    hours: float


def calendars(settings: Settings, rep_zones: Mapping[str, str], years: range) -> Calendars:
    """`rep_zones`: each rep's timezone by email (the routing file); `years`: every year
    a hand-off or its answer may fall in, and one either side."""
    return Calendars(
        {
            email.casefold(): calendar_for(zone, settings.default_timezone, years)
            for email, zone in rep_zones.items()
        },
        calendar_for(None, settings.default_timezone, years),
        settings.sla_hours,
    )


# --- the hand-offs, grouped ----------------------------------------------------------------


def _grouped(query: Any, by: str | None, dialect: str) -> tuple[Any, list[Any]]:
    """`query` over promotions, joined to what names each one's group, and the group's
    columns: the promotion names its rep and month, a lead's first cycle its
    sequence; only the source and campaign are the lead's own."""
    if by is None:
        return query, []
    if by == "rep":
        return query, [Promotion.rep_email]
    if by == "month":
        return query, [month_of(Promotion.created_at, dialect)]
    if by == "sequence":
        first = and_(Enrollment.lead_id == Promotion.lead_id, Enrollment.cycle == 1)
        return query.outerjoin(Enrollment, first), [Enrollment.sequence_id]
    grouped = _lead_groups(by)
    return query.join(grouped, grouped.c.lead_id == Promotion.lead_id), _keys(grouped)


def handoffs(
    session: Session, period: Period, by: str, where: ColumnElement[bool] | None = None
) -> list[Handoff]:
    """Every promotion handed to sales in the period (and `where`), with sales' first
    answer."""
    columns = (
        Promotion.id,
        Promotion.rep_email,
        Promotion.rep_name,
        Promotion.created_at,
        Promotion.answered_at,
        Promotion.accepted_at.is_not(None),
        func.coalesce(Promotion.escalations, 0),
    )
    query, keys = _grouped(select(*columns), by, dialect_of(session))
    query = query.add_columns(*keys).where(within(Promotion.created_at, period))
    if where is not None:
        query = query.where(where)
    # Core rows, built straight into tuples.
    return [
        Handoff(row[0], tuple(row[7:]), row[1], row[2], row[3], row[4], bool(row[5]), row[6])
        for row in session.connection().execute(query).all()
    ]


def _measured() -> ColumnElement[bool]:
    """A promotion whose measures are kept and still hold (an answer since needs its
    business seconds)."""
    return and_(
        Promotion.answer_deadline_at.is_not(None),
        or_(Promotion.answered_at.is_(None), Promotion.answer_seconds.is_not(None)),
    )


# --- the report's figures --------------------------------------------------------------------


def figures(
    session: Session,
    period: Period,
    by: str,
    now: datetime,
    clock: Calendars,
    live: bool = False,
    answers: bool = True,
) -> list[Figures]:
    """Each group's figures, and everyone's (group ()); `live`: every hand-off measured
    here, none of the kept measures read; without `answers`, no answer percentiles."""
    if live:
        return counted(measure(handoffs(session, period, by), clock.reps, clock.fallback,
                               clock.hours, now))  # fmt: skip
    dialect = dialect_of(session)
    found: list[Figures] = []
    # Each promotion is in one group but by sequence (a lead's several sequences): the
    # total is then counted on its own.
    disjoint = by != "sequence"
    for grouping in (by,) if disjoint else (by, None):
        found += _counted(session, period, grouping, now, dialect)
    if disjoint:
        found.append(_total(found))
    rest = handoffs(session, period, by, ~_measured())
    if not answers:
        return [*found, *counted(measure(rest, clock.reps, clock.fallback, clock.hours, now))]
    if not rest:
        return _with_percentiles(session, period, by, found, disjoint)
    measured = measure(rest, clock.reps, clock.fallback, clock.hours, now)
    extra = counted(measured)
    if any(item.answered for item in extra):
        # Waits not in the database: every wait of the period, so percentiles are exact.
        found = _with_waits(session, period, by, found)
    else:
        found = _with_percentiles(session, period, by, found, disjoint)
    return [*found, *extra]


def _counted(
    session: Session, period: Period, by: str | None, now: datetime, dialect: str
) -> list[Figures]:
    """The measured hand-offs' counts per group, as of `now`."""
    answered, deadline = Promotion.answered_at, Promotion.answer_deadline_at
    waiting = answered.is_(None)
    measures = (
        func.count(),
        func.count(case((answered <= deadline, 1))),
        func.count(case((answered > deadline, 1))),
        func.count(case((and_(waiting, deadline < now), 1))),
        func.count(case((and_(waiting, deadline >= now), 1))),
        func.count(case((and_(answered.is_not(None), Promotion.accepted_at.is_not(None)), 1))),
        func.count(answered),
        func.coalesce(func.sum(Promotion.escalations), 0),
        func.max(Promotion.rep_name),
    )
    query, keys = _grouped(select(*measures), by, dialect)
    query = query.add_columns(*keys).where(within(Promotion.created_at, period), _measured())
    found = []
    for row in session.execute(query.group_by(*keys)):
        sent, in_time, late, overdue, pending, accepted, answers, escalated, name = row[:9]
        if not sent:  # the total of nothing
            continue
        found.append(Figures(tuple(row[9:]), sent, in_time, late, overdue, pending, accepted,
                             answers, int(escalated), rep_name=name))  # fmt: skip
    return found


def _total(groups: list[Figures]) -> Figures:
    total = Figures((), 0)
    for item in groups:
        total = total.add(item)
    return replace(total, rep_name=None)


def _sample(period: Period, by: str | None, dialect: str) -> tuple[Any, int]:
    """The measured answers' business seconds of the period, with their group."""
    columns = (literal("answer").label("stage"), Promotion.answer_seconds.label("s"))
    query, keys = _grouped(select(*columns), by, dialect)
    named = [key.label(f"g{i}") for i, key in enumerate(keys)]
    sample = (
        query.add_columns(*named)
        .where(
            within(Promotion.created_at, period), _measured(), Promotion.answered_at.is_not(None)
        )
        .cte("sample")
    )
    return sample, len(named)


def _with_percentiles(
    session: Session, period: Period, by: str, found: list[Figures], disjoint: bool
) -> list[Figures]:
    """`found` with each group's median and 90th percentile answer, from the database."""
    dialect = dialect_of(session)
    values: dict[tuple[str | None, ...], tuple[float | None, ...]] = {}
    for grouping in (by,) if disjoint else (by, None):
        sample, width = _sample(period, grouping, dialect)
        rows = sample_quantiles(session, sample, width, disjoint, grouping == "month")
        values.update(quantiles_by_group(rows))
    none: tuple[float | None, ...] = (None, None)
    return [
        replace(item, median=values.get(item.group, none)[0], p90=values.get(item.group, none)[1])
        for item in found
    ]


def _with_waits(session: Session, period: Period, by: str, found: list[Figures]) -> list[Figures]:
    """`found` with every measured wait of the period, by group and for everyone (each
    promotion once)."""
    query, keys = _grouped(select(Promotion.id, Promotion.answer_seconds), by, dialect_of(session))
    query = query.add_columns(*keys).where(
        within(Promotion.created_at, period), _measured(), Promotion.answered_at.is_not(None)
    )
    waits: dict[tuple[str | None, ...], list[float]] = {}
    everyone: dict[int, float] = {}
    for promotion, seconds, *key in session.execute(query).all():
        waits.setdefault(tuple(key), []).append(seconds)
        everyone[promotion] = seconds
    waits[()] = list(everyone.values())
    return [replace(item, waits=tuple(waits.get(item.group, ()))) for item in found]


# --- the summary's part ------------------------------------------------------------------------


def measure_answers(session: Session, clock: Calendars, now: datetime, every: bool) -> int:
    """Measure the hand-offs not measured yet, or with `every` all of them again, and
    write the measures that changed; returns how many were written."""
    query = select(
        Promotion.id, Promotion.rep_email, Promotion.created_at, Promotion.answered_at,
        Promotion.answer_deadline_at, Promotion.answer_seconds,
    )  # fmt: skip
    if not every:
        query = query.where(~_measured())
    rows = session.execute(query).all()
    if not rows:
        return 0
    kept = {row[0]: (row[4], row[5]) for row in rows}
    found = [Handoff(row[0], (), row[1], None, row[2], row[3], False) for row in rows]
    answers = [row[3] for row in rows if row[3] is not None]
    last = max([now, *answers]).date() + timedelta(days=45)
    changed = [
        {"id": promotion, "answer_deadline_at": deadline, "answer_seconds": waited}
        for promotion, deadline, waited in deadlines(
            found, clock.reps, clock.fallback, clock.hours, last
        )
        if kept[promotion] != (deadline, waited)
    ]
    if changed:
        session.execute(update(Promotion), changed)
    return len(changed)


def years_of(session: Session, now: datetime) -> range:
    """Every year a hand-off or its answer falls in, and one either side."""
    first = session.scalar(select(func.min(Promotion.created_at)))
    start = first.year if first is not None else now.year
    return range(start - 1, now.year + 2)


def treatment(
    session: Session, settings: Settings, now: datetime, rep_zones: Mapping[str, str], days: int
) -> tuple[int, int]:
    """The SLA report's overall treatment rate for hand-offs of the last `days` days, as
    (in time, due): the alarm reads the very figure the report shows."""
    period = Period((now - timedelta(days=days)).date(), now.date())
    clock = calendars(settings, rep_zones, range(period.first.year - 1, now.year + 2))
    found = figures(session, period, "rep", now, clock, answers=False)
    everyone = [item for item in found if item.group == ()]
    in_time = sum(item.in_time for item in everyone)
    return in_time, sum(item.sent - item.pending for item in everyone)
