"""The charts of each dashboard, read off the report's own table: plain values that
`static/dashboards.js` draws. No figure is computed here that the table does not
show; a chart only picks columns and rows of it.

A chart is a category axis (groups, stages, days, periods), a few series on it, and
the lines a figure must stay on the right side of (the SLA's 80 %, the bulk-sender
0.1 % and 0.3 %), drawn across the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from nurture.core.reports import ALL, GROUP_COLUMNS
from nurture.core.reports_deliverability import LIMIT_AT, WARN_AT
from nurture.core.reports_funnel import STEP_NAMES
from nurture.core.tables import Table

Figure = float | None


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[Figure, ...]
    kind: str = "bar"  # bar | line
    stack: str = ""  # series with the same stack are piled up
    alerts: tuple[bool, ...] = ()  # per value: on the wrong side of a line (drawn red)


@dataclass(frozen=True)
class Line:
    """A threshold drawn across the chart, at `value` on its axis."""

    value: float
    label: str


@dataclass(frozen=True)
class Chart:
    key: str  # unique in the page: the element ids
    title: str
    categories: tuple[str, ...]
    series: tuple[Series, ...]
    unit: str = ""  # the value axis' name
    lines: tuple[Line, ...] = field(default=())

    def data(self) -> dict[str, Any]:
        """What the page's script reads (a JSON block beside the chart)."""
        return {
            "title": self.title,
            "categories": list(self.categories),
            "unit": self.unit,
            "series": [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "stack": s.stack,
                    "values": list(s.values),
                    "alerts": list(s.alerts),
                }
                for s in self.series
            ],
            "lines": [{"value": line.value, "label": line.label} for line in self.lines],
        }


def number(value: Any) -> Figure:
    if value is None or value == "":
        return None
    if isinstance(value, int | float | Decimal):
        return float(value)
    return None


def label(record: dict[str, Any], by: str) -> str:
    """The group a row is about, in one string ("linkedin / retargeting")."""
    parts = [str(record[c]) for c in GROUP_COLUMNS[by] if record.get(c) not in (None, "")]
    return " / ".join(parts)


def is_total(record: dict[str, Any], by: str) -> bool:
    return record.get(GROUP_COLUMNS[by][0]) == ALL


def _amount_column(data: Table, start: str) -> str:
    return next(c for c in data.columns if c.startswith(start))


# --- one function per report -------------------------------------------------------------


def funnel(data: Table, by: str, currency: str) -> tuple[Chart, ...]:
    amount = _amount_column(data, "amount (")
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for record in data.records():
        name = ALL if is_total(record, by) else label(record, by)
        groups.setdefault(name, {})[record["step"]] = record
    steps = tuple(STEP_NAMES.values())
    everyone = groups.get(ALL, {})
    shown = [g for g in groups if g != ALL]
    total = Chart(
        "funnel-all",
        "Everyone: leads at each step",
        steps,
        (Series("leads", tuple(number(everyone.get(s, {}).get("leads")) for s in steps)),),
        "leads",
    )
    per_group = Chart(
        "funnel-groups",
        f"Leads at each step, by {by}",
        tuple(shown),
        tuple(
            Series(step, tuple(number(groups[g].get(step, {}).get("leads")) for g in shown))
            for step in steps
        ),
        "leads",
    )
    money = Chart(
        "funnel-amounts",
        f"Opportunity and won amounts ({currency}), by {by}",
        tuple(shown),
        tuple(
            Series(step, tuple(number(groups[g].get(step, {}).get(amount)) for g in shown))
            for step in ("opportunity", "won")
        ),
        currency,
    )
    return total, per_group, money


def sla(data: Table, by: str, threshold: float) -> tuple[Chart, ...]:
    rows = data.records()
    names = tuple(label(r, by) for r in rows)
    line = round(threshold * 100, 6)  # 0.57 * 100 is 56.99999999999999
    rates = tuple(number(r["treatment %"]) for r in rows)
    alerts = tuple(bool(r["alert"]) for r in rows)
    treatment = Chart(
        "sla-treatment",
        f"Treatment rate, by {by}",
        names,
        (Series("treatment %", rates, alerts=alerts),),
        "%",
        (Line(line, f"alarm under {line:g} %"),),
    )
    states = ("in time", "late", "overdue", "not yet due")
    handoffs = Chart(
        "sla-states",
        f"Leads handed to sales, by {by}",
        names,
        tuple(Series(s, tuple(number(r[s]) for r in rows), stack="sent") for s in states),
        "promotions",
    )
    return treatment, handoffs


def velocity(data: Table, by: str) -> tuple[Chart, ...]:
    everyone = [r for r in data.records() if is_total(r, by)]
    stages = tuple(str(r["stage"]) for r in everyone)
    return (
        Chart(
            "velocity-stages",
            "Everyone: days in each stage",
            stages,
            (
                Series("median", tuple(number(r["median (days)"]) for r in everyone)),
                Series("90th percentile", tuple(number(r["p90 (days)"]) for r in everyone)),
            ),
            "days",
        ),
    )


def sources(data: Table, by: str, currency: str) -> tuple[Chart, ...]:
    rows = [r for r in data.records() if not is_total(r, by)]
    names = tuple(label(r, by) for r in rows)
    revenue = _amount_column(data, "revenue (")
    cost = _amount_column(data, "cost (")
    money = Chart(
        "sources-money",
        f"Revenue and cost ({currency}), by {by}",
        names,
        (
            Series("revenue", tuple(number(r[revenue]) for r in rows)),
            Series("cost", tuple(number(r[cost]) for r in rows)),
        ),
        currency,
    )
    rois = tuple(number(r["ROI %"]) for r in rows)
    roi = Chart(
        "sources-roi",
        f"ROI, by {by}",
        names,
        (Series("ROI %", rois, alerts=tuple(v is not None and v < 0 for v in rois)),),
        "%",
        (Line(0, "break-even"),),
    )
    return money, roi


def sequences(data: Table) -> tuple[Chart, ...]:
    wholes = [r for r in data.records() if r["step"] == ALL]
    names = tuple(str(r["sequence"]) for r in wholes)
    measures = ("sent", "opened", "clicked", "unsubscribed")
    return (
        Chart(
            "sequences-period",
            "Emails of each sequence over the period",
            names,
            tuple(Series(m, tuple(number(r[m]) for r in wholes)) for m in measures),
            "emails",
        ),
    )


def timeline_charts(data: Table, unit: str) -> tuple[Chart, ...]:
    """One chart per sequence: its emails per week or month (the timeline's table)."""
    rows = data.records()
    periods = tuple(dict.fromkeys(str(r[unit]) for r in rows))
    charts = []
    for n, sequence in enumerate(dict.fromkeys(str(r["sequence"]) for r in rows)):
        mine = {str(r[unit]): r for r in rows if r["sequence"] == sequence}
        charts.append(
            Chart(
                f"timeline-{n}",
                f"{sequence}, per {unit}",
                periods,
                tuple(
                    Series(m, tuple(number(mine.get(p, {}).get(m, 0)) for p in periods), "line")
                    for m in ("sent", "opened", "clicked", "unsubscribed")
                ),
                "emails",
            )
        )
    return tuple(charts)


def deliverability(data: Table) -> tuple[Chart, ...]:
    days = [r for r in data.records() if r["day"] != ALL]
    names = tuple(str(r["day"]) for r in days)
    lines = (
        Line(float(WARN_AT), f"{WARN_AT} %: keep under it"),
        Line(float(LIMIT_AT), f"{LIMIT_AT} %: never reach it"),
    )
    rates = Chart(
        "deliverability-rates",
        "Bounce and complaint rates per day",
        names,
        (
            Series("bounce %", tuple(number(r["bounce %"]) for r in days), "line"),
            Series("complaint %", tuple(number(r["complaint %"]) for r in days), "line"),
        ),
        "%",
        lines,
    )
    sent = Chart(
        "deliverability-sent",
        "Emails sent per day",
        names,
        (Series("sent", tuple(number(r["sent"]) for r in days)),),
        "emails",
    )
    return rates, sent


def charts_for(name: str, data: Table, by: str, currency: str, threshold: float) -> Sequence[Chart]:
    if name == "funnel":
        return funnel(data, by, currency)
    if name == "sla":
        return sla(data, by, threshold)
    if name == "velocity":
        return velocity(data, by)
    if name == "sources":
        return sources(data, by, currency)
    if name == "sequences":
        return sequences(data)
    if name == "deliverability":
        return deliverability(data)
    raise ValueError(f"no charts for {name!r}")
