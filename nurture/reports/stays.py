"""The velocity report's queries: every stay in a stage, and every lead -> won, that
ended in the period, as a sample the database sorts (nurture/reports/percentiles.py).

The days the reports' summary holds are read from its copy of the stays
(`report_stays`, each with its lead's groups as of the summary), the days after it
from the stage changes and promotions; both are one sample, so the percentiles are
exact."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    DateTime,
    String,
    and_,
    cast,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)
from sqlalchemy.orm import Session, aliased

from nurture.core.reports import Period
from nurture.core.reports_velocity import LEAD_TO_WON, Quantiled, Ranked
from nurture.models import Lead, Promotion, ReportStay, StageChange
from nurture.reports.instants import dialect_of, month_of, month_type, seconds_between, within
from nurture.reports.percentiles import sample_quantiles
from nurture.reports.queries import _first_cycles, _keys, _lead_groups, lead_keys


def spans(period: Period) -> Any:
    """Every stay in a stage that ended in the period (lead_id, stage, started, ended),
    and every lead's way to its first win."""
    # Each stage change carries when its stay began (migration 0015): the period's
    # changes, read off their index, are the sample; no window pairs each with the last.
    stays = select(
        StageChange.lead_id.label("lead_id"),
        StageChange.from_stage.label("stage"),
        StageChange.since.label("started"),
        StageChange.at.label("ended"),
    ).where(within(StageChange.at, period))
    # Each lead's first win (a lead won again in a later cycle counts once, at its first).
    earlier = aliased(Promotion)
    won = (
        select(
            Promotion.lead_id.label("lead_id"),
            literal(LEAD_TO_WON, String).label("stage"),
            Lead.created_at.label("started"),
            Promotion.won_at.label("ended"),
        )
        .join(Lead, Lead.id == Promotion.lead_id)
        .where(
            within(Promotion.won_at, period),
            ~select(earlier.id)
            .where(
                earlier.lead_id == Promotion.lead_id,
                or_(
                    earlier.won_at < Promotion.won_at,
                    and_(earlier.won_at == Promotion.won_at, earlier.id < Promotion.id),
                ),
            )
            .exists(),
        )
    )
    return union_all(stays, won).subquery("spans")


def durations(
    session: Session, period: Period, by: str, through: date | None = None
) -> list[Ranked | Quantiled]:
    """The values at the percentile ranks of every stay in a stage, and of every lead ->
    won, that ended in the period: per group, and for all (group ()). `through`: the
    last day the summary holds (its stays are read from it; None: none)."""
    dialect = dialect_of(session)
    kept = None
    if through is not None and through >= period.first:
        kept = Period(period.first, min(period.last, through))
    live = period
    if kept is not None:
        live = Period(kept.last + timedelta(days=1), period.last)
    found: list[Ranked | Quantiled] = []
    # Where each stay is in one group only, the totals are ranked from the same sample
    # in the same statement (the stays are read once); by sequence a lead may be in
    # several groups, so the totals are a pass of their own.
    disjoint = by in ("source", "campaign", "rep", "month")
    for grouping in (by,) if disjoint else (by, None):
        parts: list[Any] = []
        if kept is not None:
            parts.append(_kept(kept, grouping, dialect))
        if live.first <= live.last:
            parts.append(_live(live, grouping, dialect))
        both: Any = union_all(*parts) if len(parts) > 1 else parts[0]
        sample = both.cte("sample")
        width = len(parts[0].selected_columns) - 2
        found += sample_quantiles(session, sample, width, disjoint, grouping == "month")
    return found


def _live(period: Period, grouping: str | None, dialect: str) -> Any:
    """The period's spans from the history, with their group keys g0.."""
    ended = spans(period)
    keys, joined = _span_groups(ended, grouping, dialect)
    return (
        select(
            *(key.label(f"g{i}") for i, key in enumerate(keys)),
            ended.c.stage,
            seconds_between(ended.c.ended, ended.c.started, dialect).label("s"),
        )
        .select_from(joined)
        .where(within(ended.c.ended, period))
    )


KEPT_KEYS = {
    None: (),
    "source": ("k0",),
    "campaign": ("k0", "k1"),
    "rep": ("k2",),
    "sequence": ("k0",),
}


def _kept(period: Period, grouping: str | None, dialect: str) -> Any:
    """The period's stays as the summary keeps them, keyed as `_live` keys them."""
    kind = "sequence" if grouping == "sequence" else "lead"
    if grouping == "month":
        keys: list[Any] = [_month(ReportStay.day, dialect)]
    else:
        keys = [getattr(ReportStay, name) for name in KEPT_KEYS[grouping]]
    return select(
        *(key.label(f"g{i}") for i, key in enumerate(keys)),
        ReportStay.stage.label("stage"),
        ReportStay.seconds.label("s"),
    ).where(ReportStay.kind == kind, ReportStay.day >= period.first, ReportStay.day <= period.last)


def _month(day: Any, dialect: str) -> Any:
    """A day's month, of the type month_of gives an instant (the two are one sample)."""
    if dialect == "sqlite":
        return func.substr(day, 1, 7)
    return type_coerce(func.date_trunc("month", cast(day, DateTime())), month_type())


def keep(session: Session, period: Period, day: Callable[[Any], Any]) -> None:
    """Copy the stays that ended in the period into `report_stays`, with their leads'
    groups: once per lead (kind "lead") and once per sequence it entered."""
    dialect = dialect_of(session)
    columns = ["kind", "day", "stage", "k0", "k1", "k2", "seconds"]
    for kind in ("lead", "sequence"):
        ended = spans(period)
        if kind == "lead":
            lead = lead_keys()
            keys: list[Any] = [lead.c.k0, lead.c.k1, lead.c.k2]
            joined: Any = ended.join(lead, lead.c.lead_id == ended.c.lead_id)
        else:
            first = _first_cycles()
            keys = [first.c.k0, null(), null()]
            joined = ended.outerjoin(first, first.c.lead_id == ended.c.lead_id)
        query = (
            select(
                literal(kind),
                day(ended.c.ended),
                ended.c.stage,
                *keys,
                seconds_between(ended.c.ended, ended.c.started, dialect),
            )
            .select_from(joined)
            .where(within(ended.c.ended, period))
        )
        session.execute(insert(ReportStay).from_select(columns, query))


def _span_groups(spans: Any, grouping: str | None, dialect: str) -> tuple[list[Any], Any]:
    """The columns naming each span's group, and what to read them from: the leads only
    where a lead's column names it (the month is the span's own, a sequence the lead's
    first cycle in it, or no group at all for the totals)."""
    if grouping is None:
        return [], spans
    if grouping == "month":
        return [month_of(spans.c.ended, dialect)], spans
    if grouping == "sequence":
        first = _first_cycles()
        return [first.c.k0], spans.outerjoin(first, first.c.lead_id == spans.c.lead_id)
    grouped = _lead_groups(grouping)
    return _keys(grouped), spans.join(grouped, grouped.c.lead_id == spans.c.lead_id)
