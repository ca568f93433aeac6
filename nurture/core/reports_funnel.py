"""The funnel: leads -> MQL -> SQL -> accepted -> opportunity -> won, per group, with the
conversion rate of each step from the one before and from leads.

Two views, named as such in the output: the cohort view follows the leads created in
the period to wherever they got since; the period view counts what happened in the
period, whoever it happened to.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from nurture.core.reports import (
    ALL,
    GROUP_COLUMNS,
    Period,
    group_label,
    money,
    percent,
)
from nurture.core.tables import Table, table

STEPS = ("leads", "mql", "sql", "accepted", "opportunity", "won")
STEP_NAMES = {
    "leads": "leads",
    "mql": "MQL",
    "sql": "SQL (promoted)",
    "accepted": "accepted",
    "opportunity": "opportunity",
    "won": "won",
}
WITH_AMOUNT = ("opportunity", "won")


@dataclass(frozen=True)
class Reached:
    """How many leads of a group reached a step, and the amount of their deals.

    `group` is () for the total over every group (counted on its own: with --by
    sequence a lead is in several groups, and the total counts it once)."""

    group: tuple[str | None, ...]
    step: str
    leads: int
    amount: float | None = None


DEFINITIONS = (
    "leads: leads created; MQL: crossed into mql or a later stage (a lead promoted"
    " straight to sql counts); SQL (promoted): handed to sales; accepted: sales took it"
    " (any answer but a rejection); opportunity: sales reported an opportunity or a win;"
    " won: sales reported it won",
    "% of previous step and % of leads are conversion rates",
)
VIEW_NOTES = {
    "cohort": "cohort view: the leads created in the period, and every step they reached"
    " since, up to now, each lead once per step (--by month: the month the lead was"
    " created)",
    "period": "period view: what happened in the period: leads created, and each arrival"
    " at a step in it (a lead promoted twice is two SQLs; --by month: the month the step"
    " was reached); the rates compare counts of the period, not the same leads",
}
BY_NOTES = {
    "sequence": "--by sequence: a lead counts in every sequence it was ever enrolled in;"
    " the total counts it once",
    "rep": "--by rep: the rep who holds the lead now",
}


def funnel(rows: Iterable[Reached], by: str, view: str, period: Period, currency: str) -> Table:
    found: dict[tuple[str, ...] | None, dict[str, Reached]] = {}
    for row in rows:
        key = None if row.group == () else group_label(row.group)
        found.setdefault(key, {})[row.step] = row
    groups = sorted(k for k in found if k is not None)
    lines = []
    width = len(GROUP_COLUMNS[by])
    keys: list[tuple[str, ...] | None] = [*groups, None]
    for key in keys:
        steps = found.get(key, {})
        label = key if key is not None else (ALL,) + ("",) * (width - 1)
        counts = [steps[s].leads if s in steps else 0 for s in STEPS]
        for i, step in enumerate(STEPS):
            amount = None
            if step in WITH_AMOUNT:
                amount = money((steps[step].amount if step in steps else None) or 0)
            lines.append(
                (
                    *label,
                    STEP_NAMES[step],
                    counts[i],
                    percent(counts[i], counts[i - 1]) if i else None,
                    percent(counts[i], counts[0]) if i else None,
                    amount,
                )
            )
    notes = [
        VIEW_NOTES[view],
        *DEFINITIONS,
        f"amounts in {currency}: opportunity, the deal's amount as sales last gave it;"
        " won, the amount won",
    ]
    if by in BY_NOTES:
        notes.append(BY_NOTES[by])
    columns = (*GROUP_COLUMNS[by], "step", "leads", "% of previous step", "% of leads",
               f"amount ({currency})")  # fmt: skip
    return table(f"Funnel, {view} view, {period}, by {by}", columns, lines, notes)
