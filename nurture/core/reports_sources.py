"""Sources: what each source (and campaign) brought, what it cost, and its return.

Leads are credited to one source by an attribution model, named in the output:
first touch (where the lead first came from) or last touch (where it came from
most recently). Costs are those recorded per source, campaign and month
(nurture/costs.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from nurture.core.reports import (
    ALL,
    GROUP_COLUMNS,
    NONE,
    Period,
    group_label,
    money,
    percent,
    ratio,
)
from nurture.core.reports_funnel import Reached
from nurture.core.tables import Table, table

STEPS = ("leads", "mql", "sql", "won")
WHOLE_SOURCE = "(whole source)"  # a cost recorded for a source, not one of its campaigns


@dataclass(frozen=True)
class Spent:
    source: str
    campaign: str  # "" for the whole source
    month: str  # YYYY-MM
    amount: Decimal


def cost_key(cost: Spent, by: str) -> tuple[str, ...]:
    if by == "month":
        return (cost.month,)
    if by == "campaign":
        return (cost.source, cost.campaign or WHOLE_SOURCE)
    return (cost.source,)


def sources(
    reached: Iterable[Reached],
    costs: Iterable[Spent],
    by: str,
    attribution: str,
    period: Period,
    currency: str,
) -> Table:
    counts: dict[tuple[str, ...], dict[str, int]] = {}
    revenue: dict[tuple[str, ...], Decimal] = {}
    for row in reached:
        if row.group == ():
            continue  # attribution gives each lead one group: the total is their sum
        key = group_label(row.group)
        counts.setdefault(key, {})[row.step] = row.leads
        if row.step == "won":
            revenue[key] = money(row.amount or 0)
    spent: dict[tuple[str, ...], Decimal] = {}
    for cost in costs:
        key = cost_key(cost, by)
        spent[key] = spent.get(key, Decimal(0)) + cost.amount
    lines = []
    keys = sorted(set(counts) | set(spent))
    width = len(GROUP_COLUMNS[by])
    total = (ALL,) + ("",) * (width - 1)
    for key in keys:
        lines.append(_line(key, counts.get(key, {}), revenue.get(key), spent.get(key)))
    summed = {s: sum(counts.get(k, {}).get(s, 0) for k in keys) for s in STEPS}
    cost_total = sum(spent.values(), Decimal(0)) if spent else None
    lines.append(_line(total, summed, money(sum(revenue.values(), Decimal(0))), cost_total))
    touch = "first" if attribution == "first" else "latest"
    notes = [
        f"attribution: {attribution} touch: each lead is credited to the source of its"
        f" {touch} touch (its channel, else its utm_source, else the lead's source)"
        + (", and to its campaign (else utm_campaign)" if by == "campaign" else ""),
        "leads: created in the period; MQL, SQL, won: those of these leads that reached"
        f" it, up to now; revenue: the amounts they were won for, in {currency}",
        f"cost: recorded with `nurture costs set` for the months the period touches"
        f" ({', '.join(period.months)}), in {currency}; - when none was recorded",
        "cost per lead, MQL, SQL: cost / count; ROI %: (revenue - cost) / cost",
    ]
    if by == "campaign":
        notes.append(
            f"a cost recorded for a whole source shows on its {WHOLE_SOURCE} row;"
            f" leads without a campaign are on its {NONE} row"
        )
    columns = (
        *GROUP_COLUMNS[by], "leads", "MQL", "SQL", "won", f"revenue ({currency})",
        f"cost ({currency})", "per lead", "per MQL", "per SQL", "ROI %",
    )  # fmt: skip
    title = f"Sources, {attribution}-touch attribution, {period}, by {by}"
    return table(title, columns, lines, notes)


def _line(
    key: tuple[str, ...], counts: dict[str, int], revenue: Decimal | None, cost: Decimal | None
) -> tuple[object, ...]:
    leads, mqls, sqls, won = (counts.get(step, 0) for step in STEPS)
    earned = revenue if revenue is not None else money(0)
    roi = percent(earned - cost, cost) if cost else None
    return (
        *key,
        leads,
        mqls,
        sqls,
        won,
        earned,
        money(cost),
        ratio(cost, leads),
        ratio(cost, mqls),
        ratio(cost, sqls),
        roi,
    )
