"""The velocity report's queries: every stay in a stage, and every lead -> won, that
ended in the period, as a sample the database sorts (nurture/reports/percentiles.py).

The days the reports' summary holds are read from its copy of the stays
(`report_stays`, each with its lead's groups as of the summary), the days after it
from the stage changes and promotions; both are one sample, so the percentiles are
exact."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, and_, literal, or_, select, union_all
from sqlalchemy.orm import Session, aliased

from nurture.core.reports import Period
from nurture.core.reports_velocity import LEAD_TO_WON, Quantiled, Ranked
from nurture.models import Lead, Promotion, StageChange
from nurture.reports.instants import dialect_of, month_of, seconds_between, within
from nurture.reports.percentiles import sample_quantiles
from nurture.reports.queries import _first_cycles, _keys, _lead_groups


def durations(session: Session, period: Period, by: str) -> list[Ranked | Quantiled]:
    """The values at the percentile ranks of every stay in a stage, and of every lead ->
    won, that ended in the period: per group, and for all (group ())."""
    dialect = dialect_of(session)
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
    spans = union_all(stays, won).subquery("spans")
    found: list[Ranked | Quantiled] = []
    # Where each stay is in one group only, the totals are ranked from the same sample
    # in the same statement (the stays, a window over every stage change, are read once);
    # by sequence a lead may be in several groups, so the totals are a pass of their own.
    disjoint = by in ("source", "campaign", "rep", "month")
    for grouping in (by,) if disjoint else (by, None):
        keys, joined = _span_groups(spans, grouping, dialect)
        named = [key.label(f"g{i}") for i, key in enumerate(keys)]
        sample = (
            select(
                *named,
                spans.c.stage,
                seconds_between(spans.c.ended, spans.c.started, dialect).label("s"),
            )
            .select_from(joined)
            .where(within(spans.c.ended, period))
            .cte("sample")
        )
        found += sample_quantiles(session, sample, len(named), disjoint, grouping == "month")
    return found


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
