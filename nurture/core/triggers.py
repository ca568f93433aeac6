"""When the periodic triggers fire: the days a date rule falls on, and how long ago a
lead must have left a sequence to enter it again. Pure: `now` is a parameter.

Days are UTC calendar days. A date rule fires on its day or, when no run saw that day
(the worker was stopped, the sequence was published a little later, the field was
filled in a little late), up to CATCH_UP_DAYS after it; never for older days, so that
publishing a renewal sequence does not write to every customer whose date is long past.
"""

from __future__ import annotations

import calendar
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType

from nurture.core.sequences import DateRule, Duration, Reentry

CATCH_UP_DAYS = 7

_PER_UNIT = {"minutes": 1, "hours": 60, "days": 1440, "weeks": 7 * 1440}


@dataclass(frozen=True)
class DateMatch:
    """What a date field must start with to fire now, and the day it fires for.

    `starts` maps a written "YYYY-MM-DD" (a single date) or "MM-DD" (an anniversary)
    to the occurrence day; for an anniversary, only a date from an earlier year than
    `years[written]` has one (the date itself is no anniversary).
    """

    starts: Mapping[str, date]
    years: Mapping[str, int]


def date_match(rule: DateRule, now: datetime) -> DateMatch:
    """The field values that make `rule` fire at `now` (with the catch-up days)."""
    today = now.astimezone(UTC).date()
    starts: dict[str, date] = {}
    years: dict[str, int] = {}
    for back in range(CATCH_UP_DAYS, -1, -1):
        day = today - timedelta(days=back)  # the occurrence day
        field_day = day - timedelta(days=rule.offset_days)
        if not rule.yearly:
            starts[field_day.isoformat()] = day
            continue
        written = [field_day.strftime("%m-%d")]
        if (field_day.month, field_day.day) == (2, 28) and not calendar.isleap(field_day.year):
            written.append("02-29")  # born on 29 February: its anniversary is the 28th
        for key in written:
            starts[key] = day
            years[key] = field_day.year
    return DateMatch(MappingProxyType(starts), MappingProxyType(years))


def midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def reentry_cutoff(reentry: Reentry, now: datetime) -> datetime | None:
    """A lead that left at or before this instant may enter again; None: never again.

    Set-based, the cool-down is read in UTC and a business day counts as 7/5 of a day
    (rounded up): a day early or late matters little against months of cool-down.
    """
    if not reentry.allowed:
        return None
    if reentry.cooldown is None:
        return now
    return now - approximate(reentry.cooldown)


def approximate(duration: Duration) -> timedelta:
    if duration.unit == "business_days":
        return timedelta(days=-(-duration.amount * 7 // 5))
    return timedelta(minutes=duration.amount * _PER_UNIT[duration.unit])
