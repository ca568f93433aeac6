"""Sequence performance over time: the sequences report run once per week or month of
the period, each sequence's whole row (`(all)`) kept. Each line of the timeline is
then what `nurture report sequences --from <its first day> --to <its last day>` shows
for that sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.core.reports import ALL, Period, ReportError, Request
from nurture.core.tables import Table, table

EVERY = ("week", "month")
MAX_SLICES = 60  # five years of months; a longer timeline is another question
MEASURES = ("sent", "delivered", "opened", "clicked", "unsubscribed", "open %", "click %")


@dataclass(frozen=True)
class Slice:
    name: str  # "2026-03", or a week by its Monday: "2026-03-02"
    period: Period


def default_every(period: Period) -> str:
    """Weeks for a quarter or so, months beyond."""
    return "week" if (period.last - period.first).days < 7 * 26 else "month"


def slices(period: Period, every: str) -> list[Slice]:
    """The weeks (from Monday) or months the period touches, cut to the period."""
    if every not in EVERY:
        raise ReportError(f"every {every}: expected week or month")
    found = []
    start = period.first
    while start <= period.last:
        if every == "week":
            first = start - timedelta(days=start.weekday())
            following = first + timedelta(days=7)
            name = first.isoformat()
        else:
            first = start.replace(day=1)
            following = (first + timedelta(days=32)).replace(day=1)
            name = first.strftime("%Y-%m")
        last = min(following - timedelta(days=1), period.last)
        found.append(Slice(name, Period(start, last)))
        start = following
        if len(found) > MAX_SLICES:
            raise ReportError(
                f"every {every}: more than {MAX_SLICES} {every}s in the period;"
                " choose a shorter period, or months"
            )
    return found


def timeline(
    session: Session, settings: Settings, now: datetime, period: Period, every: str
) -> Table:
    """Per week or month, per sequence: emails sent, delivered, opened, clicked (human
    hits) and unsubscribed, as the sequences report counts them."""
    from nurture.reports import build

    found: dict[str, dict[str, tuple[object, ...]]] = {}
    parts = slices(period, every)
    for part in parts:
        data = build(session, Request("sequences", part.period, "sequence"), settings, now)
        found[part.name] = {
            record["sequence"]: tuple(record[m] for m in MEASURES)
            for record in data.records()
            if record["step"] == ALL
        }
    # Every week or month for every sequence: a quiet one is a row of zeros, not a gap.
    names = sorted({name for figures in found.values() for name in figures})
    nothing = tuple(None if m.endswith("%") else 0 for m in MEASURES)
    rows = [
        (part.name, name, *found[part.name].get(name, nothing)) for part in parts for name in names
    ]
    notes = [
        f"the sequences report (docs/reports.md#sequences) run for each {every} of the"
        f" period, cut to the period; a {every} is named by its first day"
        + (" (a Monday)" if every == "week" else ""),
        "opened, clicked: emails a person opened or clicked (human hits only); the"
        " emails sent in that week or month, whenever they were opened",
    ]
    return table(f"Sequences per {every}, {period}", (every, "sequence", *MEASURES), rows, notes)
