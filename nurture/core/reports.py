"""What every report shares: the request (which report, which days, grouped how), the
percentile definition, and how rates, durations and amounts are shown.

Each report has a module of its own (`reports_funnel`, `reports_sla`,
`reports_velocity`, `reports_sources`, `reports_sequences`,
`reports_deliverability`): plain rows in, a `Table` out, its definitions in the
table's notes. The rows come from GROUP BY queries (nurture/reports/queries.py), so a report
over a year of a million leads reads a few thousand small rows, not the leads.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, ROUND_HALF_UP, Decimal
from typing import overload

from nurture.core.tables import FORMATS

NONE = "(none)"  # a lead without a source, a campaign, a sequence, a rep
ALL = "(all)"  # the total row

# The --by choices of each report, its default first.
GROUPINGS: Mapping[str, tuple[str, ...]] = {
    "funnel": ("source", "campaign", "sequence", "rep", "month"),
    "sla": ("rep", "source", "campaign", "sequence", "month"),
    "velocity": ("source", "sequence", "campaign", "rep", "month"),
    # Costs are known per source, campaign and month only.
    "sources": ("source", "campaign", "month"),
    # Per sequence and step, or per day: the unit is the report's own.
    "sequences": ("sequence",),
    "deliverability": ("day",),
}
REPORTS = tuple(GROUPINGS)
VIEWS = ("cohort", "period")
ATTRIBUTIONS = ("first", "last")

# The columns that name a group, per grouping.
GROUP_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "source": ("source",),
    "campaign": ("source", "campaign"),
    "sequence": ("sequence",),
    "rep": ("rep",),
    "month": ("month",),
    "day": ("day",),
}

# Lifecycle stages in the order a lead goes through them.
STAGES = ("subscriber", "lead", "mql", "sql", "opportunity", "customer", "recycled", "disqualified")
# A lead "reached MQL" when it crossed into one of these (a decisive event may promote
# a lead straight to sql): each step of the funnel is then part of the one before.
MQL_OR_LATER = ("mql", "sql", "opportunity", "customer")

CENT = Decimal("0.01")
DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


class ReportError(ValueError):
    """A report asked for wrongly; the message says what to give instead."""


@dataclass(frozen=True)
class Period:
    """From the first day to the last, both included, as UTC days."""

    first: date
    last: date

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), tzinfo=UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period (exclusive bound)."""
        return datetime.combine(self.last + timedelta(days=1), time(), tzinfo=UTC)

    @property
    def months(self) -> tuple[str, ...]:
        """Every month (YYYY-MM) the period touches."""
        found, year, month = [], self.first.year, self.first.month
        while (year, month) <= (self.last.year, self.last.month):
            found.append(f"{year:04d}-{month:02d}")
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        return tuple(found)

    def __str__(self) -> str:
        return f"{self.first.isoformat()} to {self.last.isoformat()} (UTC days)"


@dataclass(frozen=True)
class Request:
    name: str
    period: Period
    by: str
    form: str = "table"
    view: str = "cohort"  # funnel only
    attribution: str = "first"  # sources only
    live: bool = False  # every day from the history, not the daily summary


def parse_date(text: str | None, option: str) -> date:
    if not text:
        raise ReportError(f"{option} is required: a day as YYYY-MM-DD, such as 2026-03-01")
    try:
        # fromisoformat alone would also take 20260301 and 2026-W09-7.
        if DAY.fullmatch(text.strip()):
            return date.fromisoformat(text.strip())
    except ValueError:
        pass
    raise ReportError(f"{option}: expected a day as YYYY-MM-DD, such as 2026-03-01 (got {text!r})")


def parse_request(
    name: str | None,
    first: str | None,
    last: str | None,
    by: str | None = None,
    form: str | None = None,
    view: str | None = None,
    attribution: str | None = None,
    live: bool = False,
) -> Request:
    """The report asked for, checked; raises ReportError saying what is wrong."""
    if name is None or name not in GROUPINGS:
        shown = f"unknown report {name!r}" if name else "which report?"
        raise ReportError(f"{shown}: expected one of {', '.join(REPORTS)}")
    period = Period(parse_date(first, "--from"), parse_date(last, "--to"))
    if period.first > period.last:
        raise ReportError(f"--from {period.first} is after --to {period.last}")
    allowed = GROUPINGS[name]
    if by is not None and by not in allowed:
        raise ReportError(f"{name} cannot be grouped --by {by}: expected {_one_of(allowed)}")
    if form is not None and form not in FORMATS:
        raise ReportError(f"--format {form}: expected {_one_of(FORMATS)}")
    if view is not None and (name != "funnel" or view not in VIEWS):
        raise ReportError(f"--view {view}: the funnel report takes {_one_of(VIEWS)}")
    if attribution is not None and (name != "sources" or attribution not in ATTRIBUTIONS):
        raise ReportError(
            f"--attribution {attribution}: the sources report takes {_one_of(ATTRIBUTIONS)}"
        )
    return Request(
        name,
        period,
        by or allowed[0],
        form or "table",
        view or "cohort",
        attribution or "first",
        live,
    )


def _one_of(choices: Sequence[str]) -> str:
    return " or ".join(", ".join(choices).rsplit(", ", 1))


# --- percentiles -------------------------------------------------------------------
#
# The q-th percentile of n sorted values sits at the 0-based position h = (n - 1) q / 100,
# read by linear interpolation between the two values around it: PostgreSQL's
# percentile_cont, numpy's default. The database side sorts a sample and returns only
# the values at `percentile_ranks` (a handful of rows, however large the sample);
# `percentile_from_ranks` finishes the job. `percentile` does the same on a list.


def percentile_ranks(n: int, q: int) -> tuple[int, ...]:
    """The 0-based ranks whose values the q-th percentile of n values needs."""
    if n <= 0:
        return ()
    low, rest = divmod(q * (n - 1), 100)
    return (low, low + 1) if rest else (low,)


def percentile_from_ranks(n: int, q: int, at: Mapping[int, float]) -> float | None:
    """The q-th percentile of n sorted values, given the values at `percentile_ranks`."""
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is from 0 to 100, got {q}")
    if n <= 0:
        return None
    low, rest = divmod(q * (n - 1), 100)
    if not rest:
        return at[low]
    return at[low] + (at[low + 1] - at[low]) * rest / 100


def percentile(values: Sequence[float], q: int) -> float | None:
    """The q-th percentile of `values` (any order); None for no values."""
    ordered = sorted(values)
    return percentile_from_ranks(
        len(ordered), q, {r: ordered[r] for r in percentile_ranks(len(ordered), q)}
    )


# --- how figures are shown -----------------------------------------------------------
# Decimal, not float: the text table prints a float with one decimal, which would show
# a 0.05 % complaint rate as 0.1; a Decimal keeps the places chosen here. Floats go
# through their shortest text (repr), so 2.675 rounds as written, not as its binary
# approximation 2.67499...


def percent(part: float | Decimal, whole: float | Decimal, places: int = 1) -> Decimal | None:
    """`part` as a percentage of `whole`; None when there is no whole."""
    if not whole:
        return None
    return _places(_decimal(part) * 100 / _decimal(whole), places)


def hours(seconds: float | None) -> Decimal | None:
    return None if seconds is None else _places(_decimal(seconds) / 3600, 1)


def days(seconds: float | None) -> Decimal | None:
    return None if seconds is None else _places(_decimal(seconds) / 86400, 2)


@overload
def money(amount: float | Decimal) -> Decimal: ...
@overload
def money(amount: None) -> None: ...
def money(amount: float | Decimal | None) -> Decimal | None:
    """An amount in the installation's currency, to the cent, rounded half to even as
    costs are (nurture/costs.py)."""
    if amount is None:
        return None
    return _decimal(amount).quantize(CENT, rounding=ROUND_HALF_EVEN)


def ratio(amount: Decimal | None, count: int) -> Decimal | None:
    """An amount per unit (cost per lead): None when there is nothing to divide by."""
    if amount is None or not count:
        return None
    return money(amount / count)


def _decimal(value: float | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def _places(value: Decimal, places: int) -> Decimal:
    """Rounded half up, as a reader checking a figure by hand does."""
    return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def group_label(key: Sequence[str | None]) -> tuple[str, ...]:
    return tuple(NONE if part in (None, "") else str(part) for part in key)
