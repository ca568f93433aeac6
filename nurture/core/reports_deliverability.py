"""Deliverability: bounce and complaint rates per day, against the bulk-sender limits.

Gmail and Yahoo ask bulk senders to keep their spam-complaint rate under 0.1 % and
never to reach 0.3 %; a sender above that loses the inbox. The same two lines are
drawn for bounces, which mailbox providers read as a sign of a bought or stale list.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from nurture.core.reports import ALL, Period, percent
from nurture.core.tables import Table, table

WARN_AT = Decimal("0.1")  # percent: keep under it
LIMIT_AT = Decimal("0.3")  # percent: never reach it
PLACES = 3  # 0.05 % must not show as 0.1 %
MEASURES = ("sent", "bounced", "complained")


@dataclass(frozen=True)
class DayCount:
    day: str  # YYYY-MM-DD, UTC
    measure: str  # sent | bounced | complained
    count: int


def crossed(rate: Decimal | None) -> Decimal | None:
    """The highest limit `rate` (a percentage) reached, if any."""
    if rate is None:
        return None
    return LIMIT_AT if rate >= LIMIT_AT else WARN_AT if rate >= WARN_AT else None


def deliverability(rows: Iterable[DayCount], period: Period) -> Table:
    found: dict[str, dict[str, int]] = {}
    for row in rows:
        cell = found.setdefault(row.day, {})
        cell[row.measure] = cell.get(row.measure, 0) + row.count
    totals = {m: sum(cell.get(m, 0) for cell in found.values()) for m in MEASURES}
    lines, warnings = [], []
    for day, cell in [*sorted(found.items()), (ALL, totals)]:
        sent, bounced, complained = (cell.get(m, 0) for m in MEASURES)
        rates = {
            "bounce": percent(bounced, sent, PLACES),
            "complaint": percent(complained, sent, PLACES),
        }
        alerts = []
        for kind, rate in rates.items():
            limit = crossed(rate)
            if limit is not None:
                alerts.append(f"{kind}s >= {limit} %")
                when = "over the period" if day == ALL else f"on {day}"
                warnings.append(
                    f"WARNING: {kind} rate {rate} % {when}, at or above {limit} %"
                    + (" (never reach it)" if limit == LIMIT_AT else " (keep under it)")
                )
        lines.append((day, sent, bounced, rates["bounce"], complained, rates["complaint"],
                      "; ".join(alerts)))  # fmt: skip
    notes = [
        *warnings,
        f"limits: keep under {WARN_AT} %, never reach {LIMIT_AT} % (Gmail and Yahoo"
        " bulk-sender rules for complaints, applied to bounces too)",
        "per UTC day; sent: emails the relay took, or refused the address of; bounced: the"
        " relay refused the address, or a bounce was reported that day; complained: spam"
        " complaints reported that day (`complained` events); rates are of sent",
    ]
    columns = ("day", "sent", "bounced", "bounce %", "complained", "complaint %", "alert")
    return table(f"Deliverability, {period}", columns, lines, notes)
