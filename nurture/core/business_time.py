"""Business time on a sales rep's calendar: how much of an interval sales owed.

A working day is a Monday to Friday that is not a public holiday of the rep's
country, on the rep's clock (their timezone). All of a working day counts, so the
engine's `sla_hours` = 24 still means one working day; Saturdays, Sundays and
holidays count for nothing. A lead received on Friday evening and answered on
Monday morning was therefore answered within a few business hours.

Local midnights are found with the zone's rules, so a working day on which the
clocks change lasts 23 or 25 hours, as it did for the rep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from nurture.core.timing import COUNTRY_TIMEZONES, holiday_dates, resolve_timezone

WEEKEND = frozenset({5, 6})
_LIMIT_DAYS = 3660  # no deadline is searched for further than ten years ahead

# The country whose holidays a zone keeps: the reverse of timing's country -> zone map
# (the first country listed wins: GB before its alias UK).
ZONE_COUNTRIES = {zone: country for country, zone in reversed(COUNTRY_TIMEZONES.items())}


@dataclass(frozen=True)
class WorkCalendar:
    zone: ZoneInfo
    country: str | None  # whose public holidays are days off; None: weekends only
    holidays: frozenset[date] = frozenset()

    def working(self, day: date) -> bool:
        return day.weekday() not in WEEKEND and day not in self.holidays

    def __str__(self) -> str:
        return f"{self.zone.key} {self.country or '(no holidays)'}"


def calendar_for(timezone: str | None, default: str, years: Iterable[int]) -> WorkCalendar:
    """The calendar of someone on `timezone` (else `default`): its country's holidays
    in `years` (give a year either side of the dates looked at)."""
    zone = resolve_timezone(timezone, None, default)
    country = ZONE_COUNTRIES.get(zone.key)
    return WorkCalendar(zone, country, holiday_dates(country, years))


def business_seconds(start: datetime, end: datetime, calendar: WorkCalendar) -> float:
    """The seconds of working days between two instants (0 if `end` is not after)."""
    _aware(start, end)
    total = 0.0
    if end <= start:
        return total
    day, last = start.astimezone(calendar.zone).date(), end.astimezone(calendar.zone).date()
    while day <= last:
        if calendar.working(day):
            opens, closes = _day_bounds(day, calendar.zone)
            total += max(0.0, (min(end, closes) - max(start, opens)).total_seconds())
        day += timedelta(days=1)
    return total


def business_deadline(start: datetime, hours: float, calendar: WorkCalendar) -> datetime:
    """The instant (aware UTC) when `hours` business hours have passed since `start`."""
    _aware(start, start)
    left = timedelta(hours=hours)
    day = start.astimezone(calendar.zone).date()
    for _ in range(_LIMIT_DAYS):
        if calendar.working(day):
            opens, closes = _day_bounds(day, calendar.zone)
            begin = max(start, opens)
            if begin < closes:
                if begin + left <= closes:
                    return (begin + left).astimezone(UTC)
                left -= closes - begin
        day += timedelta(days=1)
    raise ValueError(f"no {hours} business hours after {start.isoformat()} within ten years")


def _day_bounds(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Local midnight of `day` and of the next day, as UTC instants."""
    return (
        datetime.combine(day, time(), tzinfo=zone).astimezone(UTC),
        datetime.combine(day + timedelta(days=1), time(), tzinfo=zone).astimezone(UTC),
    )


def _aware(*moments: datetime) -> None:
    for moment in moments:
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"naive datetime: {moment.isoformat()} (expected aware UTC)")
