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

from bisect import bisect_left, bisect_right
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


class Ledger:
    """A calendar's working time laid out over a range of days, to measure many
    intervals fast (a report's year of hand-offs): the business seconds counted from
    the first local midnight to each next one. Gives what business_seconds and
    business_deadline give, to the microsecond; outside its days it asks them."""

    def __init__(self, calendar: WorkCalendar, first: date, last: date) -> None:
        self.calendar = calendar
        self.midnights: list[int] = []  # microseconds since the epoch, UTC
        self._counts: list[int] = []  # business microseconds from midnights[0]
        total, day = 0, first
        while day <= last + timedelta(days=1):
            opens, closes = _day_bounds(day, calendar.zone)
            self.midnights.append(_micros(opens))
            self._counts.append(total)
            if calendar.working(day):
                total += _micros(closes) - _micros(opens)
            day += timedelta(days=1)

    def _covers(self, moment: int) -> bool:
        return self.midnights[0] <= moment < self.midnights[-1]

    def counted(self, moment: datetime) -> int | None:
        """Business microseconds from the first day's midnight to `moment` (None
        outside the days laid out)."""
        at = _micros(moment)
        return self._counted_at(at) if self._covers(at) else None

    def _counted_at(self, moment: int) -> int:
        i = bisect_right(self.midnights, moment) - 1
        if self._counts[i + 1] == self._counts[i]:  # a day off adds nothing
            return self._counts[i]
        return self._counts[i] + moment - self.midnights[i]

    def seconds(self, start: datetime, end: datetime) -> float:
        begin, finish = _micros(start), _micros(end)
        if not (self._covers(begin) and self._covers(finish)):
            return business_seconds(start, end, self.calendar)
        return max(0, self._counted_at(finish) - self._counted_at(begin)) / 1_000_000

    def deadline(self, start: datetime, hours: float) -> datetime:
        return self.measure(start, None, hours)[1]

    def measure(
        self, start: datetime, end: datetime | None, hours: float
    ) -> tuple[float | None, datetime]:
        """The business seconds from `start` to `end` (None without an end), and when
        `hours` business hours have passed since `start`: both in one look-up."""
        begin = _micros(start)
        if not self._covers(begin):
            return self._asked(start, end, hours)
        counted = self._counted_at(begin)
        waited = None
        if end is not None:
            finish = _micros(end)
            if not self._covers(finish):
                return self._asked(start, end, hours)
            waited = max(0, self._counted_at(finish) - counted) / 1_000_000
        target = counted + round(hours * 3_600_000_000)
        j = bisect_left(self._counts, target)
        if hours <= 0 or not 0 < j < len(self._counts):  # not within the days laid out
            return waited, business_deadline(start, hours, self.calendar)
        moment = self.midnights[j - 1] + target - self._counts[j - 1]
        return waited, datetime.fromtimestamp(moment / 1_000_000, UTC)

    def _asked(
        self, start: datetime, end: datetime | None, hours: float
    ) -> tuple[float | None, datetime]:
        waited = None if end is None else business_seconds(start, end, self.calendar)
        return waited, business_deadline(start, hours, self.calendar)


def _micros(moment: datetime) -> int:
    # Exact: a float carries today's instants to a quarter of a microsecond.
    return round(moment.timestamp() * 1_000_000)


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
