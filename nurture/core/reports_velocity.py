"""Velocity: how long leads stay in each lifecycle stage, and from lead to won.

The database sorts each sample and hands over only the values the percentiles need
(`Ranked` rows, see `percentile_ranks`), or on PostgreSQL the percentiles themselves
(`Quantiled`, percentile_cont: the same interpolation), so a year of stage changes is a
few rows per group and stage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nurture.core.reports import (
    ALL,
    GROUP_COLUMNS,
    STAGES,
    Period,
    days,
    group_label,
    percentile_from_ranks,
)
from nurture.core.tables import Table, table

LEAD_TO_WON = "lead -> won"
QUANTILES = (50, 90)


@dataclass(frozen=True)
class Ranked:
    """One value of a sorted sample: the `rank`-th (0-based) of `count` durations, in
    seconds, of `stage` in `group` (() for the total over every group)."""

    group: tuple[str | None, ...]
    stage: str
    count: int
    rank: int
    seconds: float


@dataclass(frozen=True)
class Quantiled:
    """A sample's percentiles computed where it was sorted (PostgreSQL's percentile_cont):
    `seconds` at each of QUANTILES, for `count` durations of `stage` in `group`."""

    group: tuple[str | None, ...]
    stage: str
    count: int
    seconds: tuple[float, ...]


def quantiles_by_group(
    rows: Iterable[Ranked | Quantiled],
) -> dict[tuple[str | None, ...], tuple[float | None, ...]]:
    """The QUANTILES of a one-stage sample per group, from the database's rows."""
    counts: dict[tuple[str | None, ...], int] = {}
    values: dict[tuple[str | None, ...], dict[int, float]] = {}
    found: dict[tuple[str | None, ...], tuple[float | None, ...]] = {}
    for row in rows:
        if isinstance(row, Quantiled):
            found[row.group] = row.seconds
        else:
            counts[row.group] = row.count
            values.setdefault(row.group, {})[row.rank] = row.seconds
    for group, count in counts.items():
        found[group] = tuple(percentile_from_ranks(count, q, values[group]) for q in QUANTILES)
    return found


def velocity(rows: Iterable[Ranked | Quantiled], by: str, period: Period) -> Table:
    samples: dict[tuple[tuple[str, ...] | None, str], tuple[int, dict[int, float]]] = {}
    computed: dict[tuple[tuple[str, ...] | None, str], tuple[float, ...]] = {}
    for row in rows:
        key = None if row.group == () else group_label(row.group)
        count, values = samples.setdefault((key, row.stage), (row.count, {}))
        if isinstance(row, Quantiled):
            computed[(key, row.stage)] = row.seconds
        else:
            values[row.rank] = row.seconds
    order = {stage: i for i, stage in enumerate((*STAGES, LEAD_TO_WON))}
    width = len(GROUP_COLUMNS[by])

    def sort_key(item: tuple[tuple[str, ...] | None, str]) -> tuple[int, tuple[str, ...], int]:
        group, stage = item
        return (group is None, group or (), order.get(stage, len(order)))

    lines = []
    for group, stage in sorted(samples, key=sort_key):
        count, values = samples[(group, stage)]
        label = group if group is not None else (ALL,) + ("",) * (width - 1)
        quantiles: tuple[float | None, ...] = computed.get((group, stage)) or tuple(
            percentile_from_ranks(count, q, values) for q in QUANTILES
        )
        median, p90 = quantiles
        lines.append((*label, stage, count, days(median), days(p90)))
    notes = [
        "time in a stage: from entering it (the lead's creation, for its first stage) to"
        " its next stage change; stays that ended in the period (a lead still in a stage"
        " is not counted until it leaves)",
        f"{LEAD_TO_WON}: from the lead's creation to its first win, for wins in the period",
        "in days; median and 90th percentile by linear interpolation between closest"
        " ranks (PostgreSQL's percentile_cont)",
    ]
    if by == "sequence":
        notes.append("--by sequence: a lead counts in every sequence it was ever enrolled in")
    if by == "month":
        notes.append("--by month: the month the stay ended (or the lead was won)")
    columns = (*GROUP_COLUMNS[by], "stage", "count", "median (days)", "p90 (days)")
    return table(f"Velocity, {period}, by {by}", columns, lines, notes)
