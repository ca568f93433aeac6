"""Percentiles computed where the sample is sorted: on PostgreSQL by percentile_cont
(groups and totals in one pass, with grouping sets), on SQLite as the values at the
ranks the pure percentile needs (window functions). A sample is a CTE with its group
keys g0.., a `stage` and `s`, seconds."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, String, cast, func, literal, null, or_, select, tuple_, union_all
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from nurture.core.reports_velocity import QUANTILES, Quantiled, Ranked
from nurture.reports.instants import dialect_of, month_of


def sample_quantiles(
    session: Session, sample: Any, width: int, with_totals: bool, by_month: bool
) -> list[Ranked | Quantiled]:
    """The percentiles of `sample` (columns g0.. of its `width` group keys, `stage`, and
    `s`, seconds) per group and stage, and with `with_totals` per stage over every
    group: computed on PostgreSQL, the values at their ranks on SQLite."""
    dialect = dialect_of(session)
    if dialect == "postgresql":
        return list(_quantiled(session, sample, width, with_totals))
    passes = [_ranked(sample, width, [])]
    if with_totals and width:
        # The totals' group columns: NULLs of the groups' own types, for the union.
        blank = cast(null(), DateTime(timezone=True))
        blanks = (
            [month_of(blank, dialect)] if by_month else [cast(null(), String) for _ in range(width)]
        )
        passes.append(_ranked(sample, 0, blanks))
    found: list[Ranked | Quantiled] = []
    for row in session.execute(union_all(*passes)):
        *key, total, stage, count, rank, seconds = row
        group = () if total else tuple(key)
        found.append(Ranked(group, stage, count, rank, float(seconds)))
    return found


def _quantiled(session: Session, sample: Any, width: int, with_totals: bool) -> list[Quantiled]:
    """The percentiles of `sample` per group and stage, and with `with_totals` per stage
    over every group too, in one pass (grouping sets): an ordered-set aggregate sorts
    each group once, where ranking every row would number them all first."""
    keys = [sample.c[f"g{i}"] for i in range(width)]
    fractions = postgresql.array([literal(q / 100) for q in QUANTILES])
    sets: list[Any] = [tuple_(*keys, sample.c.stage)]
    if with_totals and keys:
        sets.append(tuple_(sample.c.stage))
    total = func.grouping(keys[0]) if keys else literal(1)
    query = select(
        *keys,
        total,
        sample.c.stage,
        func.count(),
        func.percentile_cont(fractions).within_group(sample.c.s),
    ).group_by(func.grouping_sets(*sets))
    found = []
    for row in session.execute(query):
        *key, is_total, stage, count, values = row
        group = () if is_total or not keys else tuple(key)
        found.append(Quantiled(group, stage, count, tuple(float(v) for v in values)))
    return found


def _ranked(sample: Any, kept: int, blanks: list[Any]) -> Any:
    """The values at the percentile ranks of `sample` per stage and per its first
    `kept` group columns, then `blanks` in place of the others (the totals' rows)."""
    keys = [sample.c[f"g{i}"] for i in range(kept)]
    part = [*keys, sample.c.stage]
    # A group's key may be null (a lead without a source): a column says which rows are
    # the totals.
    ranked = select(
        *(key.label(f"g{i}") for i, key in enumerate(keys)),
        *(blank.label(f"g{kept + i}") for i, blank in enumerate(blanks)),
        literal(bool(blanks)).label("total"),
        sample.c.stage,
        func.count().over(partition_by=part).label("n"),
        (func.row_number().over(partition_by=part, order_by=sample.c.s) - 1).label("r"),
        sample.c.s,
    ).subquery()
    # The ranks percentile_ranks() names, in integer arithmetic both databases share.
    lows = [(q * (ranked.c.n - 1)) // 100 for q in QUANTILES]
    wanted = or_(*(ranked.c.r == low + step for low in lows for step in (0, 1)))
    return select(ranked).where(wanted)
