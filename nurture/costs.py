"""What each source (and campaign) cost, per month: the other half of cost per lead and
ROI. Kept in the installation's one currency (`NURTURE_CURRENCY`); an amount in
another currency is taken only with the rate it is converted at, and both are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.models import Cost

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("999999999999.99")  # what the column holds


class CostError(ValueError):
    """A cost that cannot be recorded; the message says which value and what is expected."""


@dataclass(frozen=True)
class Recorded:
    cost: Cost
    replaced: Decimal | None  # the amount it replaced, if the month was known already


def parse_month(text: str, name: str = "month") -> str:
    if not MONTH.match(text.strip()):
        raise CostError(f"{name}: expected a month as YYYY-MM, such as 2026-11 (got {text!r})")
    return text.strip()


def parse_amount(text: str | Decimal | float, name: str = "amount") -> Decimal:
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise CostError(
            f"{name}: expected a number such as 1200 or 1200.50 (got {text!r})"
        ) from None
    if not value.is_finite() or value < 0 or value > MAX_AMOUNT:
        raise CostError(f"{name}: expected a number from 0 to {MAX_AMOUNT} (got {text!r})")
    return value


def _name(text: str | None, name: str, limit: int, required: bool) -> str:
    value = (text or "").strip()
    if required and not value:
        raise CostError(f"{name}: expected a name (it cannot be empty)")
    if len(value) > limit or CONTROL.search(value):
        raise CostError(f"{name}: expected at most {limit} characters, without control characters")
    return value


def record(
    session: Session,
    currency: str,
    source: str,
    month: str,
    amount: str | Decimal | float,
    now: datetime,
    campaign: str | None = None,
    entered_in: str | None = None,
    rate: str | Decimal | float | None = None,
) -> Recorded:
    """Set the cost of a source (or one of its campaigns) for a month; again replaces it."""
    source = _name(source, "source", 100, True)
    campaign = _name(campaign, "campaign", 200, False)
    month = parse_month(month)
    value = parse_amount(amount)
    original: tuple[Decimal, str, Decimal] | None = None
    entered = (entered_in or currency).strip().upper()
    if entered != currency:
        if rate is None:
            raise CostError(
                f"currency: costs are kept in {currency} (NURTURE_CURRENCY); to enter an amount"
                f" in {entered}, give the rate that converts it (--rate, {currency} per {entered})"
            )
        factor = parse_amount(rate, "rate")
        if factor == 0:
            raise CostError("rate: expected a rate above 0")
        original = (value, entered, factor)
        value = value * factor
    elif rate is not None:
        raise CostError(f"rate: only for an amount in another currency than {currency}")
    value = value.quantize(CENT, rounding=ROUND_HALF_EVEN)
    cost = session.scalar(
        select(Cost)
        .where(Cost.source == source, Cost.campaign == campaign, Cost.month == month)
        .with_for_update()
    )
    replaced = cost.amount if cost is not None else None
    if cost is None:
        cost = Cost(source=source, campaign=campaign, month=month)
        session.add(cost)
    cost.amount = value
    cost.original_amount, cost.original_currency, cost.rate = original or (None, None, None)
    cost.updated_at = now
    session.flush()
    return Recorded(cost, replaced)


def listed(session: Session, start: str | None = None, end: str | None = None) -> list[Cost]:
    """Costs of the months from `start` to `end` (YYYY-MM, both included), in order."""
    query = select(Cost).order_by(Cost.month, Cost.source, Cost.campaign)
    if start is not None:
        query = query.where(Cost.month >= parse_month(start, "from"))
    if end is not None:
        query = query.where(Cost.month <= parse_month(end, "to"))
    return list(session.scalars(query))
