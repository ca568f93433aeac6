"""Time arithmetic for the engine: durations, send windows, timezones and holidays.

Every function here is pure. Instants go in and come out as aware UTC datetimes;
local wall time (a lead's timezone) is used only where a marketer thinks in it:
"2 days" keeps the hour of day, a send window opens at 09:00 on the lead's clock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, available_timezones

from holidays import country_holidays

from nurture.core.sequences import Duration, SendWindow

UNITS = ("minutes", "hours", "days", "weeks", "business_days")

_MAX_DAYS = 3650
_MAX_AMOUNT = {
    "minutes": _MAX_DAYS * 24 * 60,
    "hours": _MAX_DAYS * 24,
    "days": _MAX_DAYS,
    "weeks": _MAX_DAYS // 7,
    "business_days": _MAX_DAYS,  # a business day counts as one day
}
_DURATION = re.compile(
    r"\s*([0-9]+)\s+(business\s+days?|minutes?|hours?|days?|weeks?)\s*", re.IGNORECASE
)
_DURATION_HINT = 'expected a duration such as "2 days", "1 week" or "3 business days"'

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAY_NUMBERS = {name: i for names in (_DAY_NAMES, _FULL_DAY_NAMES) for i, name in enumerate(names)}
_DAY_SETS = {
    "every day": frozenset(range(7)),
    "everyday": frozenset(range(7)),
    "daily": frozenset(range(7)),
    "all": frozenset(range(7)),
    "weekdays": frozenset(range(5)),
    "weekends": frozenset({5, 6}),
}
_DAYS_HINT = (
    'expected days such as "mon-fri", "mon,wed,fri", ["mon", "tue"] or "every day" '
    "(mon, tue, wed, thu, fri, sat, sun or full names)"
)
_HOURS = re.compile(r"\s*([0-9]{1,2}):([0-9]{2})\s*[-–]\s*([0-9]{1,2}):([0-9]{2})\s*")
_HOURS_HINT = 'expected hours such as "09:00-17:30" (24-hour clock, start before end)'

# One representative zone per country: the capital's, or the most populous region's.
COUNTRY_TIMEZONES: dict[str, str] = {
    # EU and EEA
    "AT": "Europe/Vienna",
    "BE": "Europe/Brussels",
    "BG": "Europe/Sofia",
    "HR": "Europe/Zagreb",
    "CY": "Asia/Nicosia",
    "CZ": "Europe/Prague",
    "DK": "Europe/Copenhagen",
    "EE": "Europe/Tallinn",
    "FI": "Europe/Helsinki",
    "FR": "Europe/Paris",
    "DE": "Europe/Berlin",
    "GR": "Europe/Athens",
    "HU": "Europe/Budapest",
    "IE": "Europe/Dublin",
    "IT": "Europe/Rome",
    "LV": "Europe/Riga",
    "LT": "Europe/Vilnius",
    "LU": "Europe/Luxembourg",
    "MT": "Europe/Malta",
    "NL": "Europe/Amsterdam",
    "PL": "Europe/Warsaw",
    "PT": "Europe/Lisbon",
    "RO": "Europe/Bucharest",
    "SK": "Europe/Bratislava",
    "SI": "Europe/Ljubljana",
    "ES": "Europe/Madrid",
    "SE": "Europe/Stockholm",
    "IS": "Atlantic/Reykjavik",
    "LI": "Europe/Vaduz",
    "NO": "Europe/Oslo",
    # rest of Europe
    "GB": "Europe/London",
    "UK": "Europe/London",
    "CH": "Europe/Zurich",
    "MC": "Europe/Monaco",
    "AD": "Europe/Andorra",
    # Americas
    "US": "America/New_York",
    "CA": "America/Toronto",
    "BR": "America/Sao_Paulo",
    "MX": "America/Mexico_City",
    # Asia-Pacific
    "AU": "Australia/Sydney",
    "NZ": "Pacific/Auckland",
    "JP": "Asia/Tokyo",
    "CN": "Asia/Shanghai",
    "HK": "Asia/Hong_Kong",
    "IN": "Asia/Kolkata",
    "SG": "Asia/Singapore",
    "AE": "Asia/Dubai",
    # Africa
    "ZA": "Africa/Johannesburg",
    "MA": "Africa/Casablanca",
    "TN": "Africa/Tunis",
    "DZ": "Africa/Algiers",
    "SN": "Africa/Dakar",
    "CI": "Africa/Abidjan",
}

# Holiday calendars know the United Kingdom as GB only.
_HOLIDAY_COUNTRY_ALIASES = {"UK": "GB"}

_SEARCH_DAYS = 400

# Files of the system's zone folder that are not places: the machine's own zone,
# a template for POSIX rules, and a zone whose name reads "-00".
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


# --- parsing -------------------------------------------------------------------


def parse_duration(text: str) -> Duration:
    """Parse "30 minutes", "1 week", "3 business days"... into a Duration.

    Raises ValueError, saying what was expected, for anything else.
    """
    match = _DURATION.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{_DURATION_HINT}, got {text!r}")
    unit = " ".join(match.group(2).lower().split()).replace(" ", "_")
    if not unit.endswith("s"):
        unit += "s"
    amount = int(match.group(1))
    if not 1 <= amount <= _MAX_AMOUNT[unit]:
        raise ValueError(
            f"{_DURATION_HINT}, got {text!r} (the amount must be between 1 and "
            f"{_MAX_AMOUNT[unit]} {unit.replace('_', ' ')})"
        )
    return Duration(amount=amount, unit=unit)


def parse_send_window(days: str | list[str], hours: str) -> SendWindow:
    """Days ("mon-fri", "mon,wed,fri", a list, "every day") and hours ("09:00-17:30").

    A range may wrap over the weekend ("fri-mon"). "00:00-24:00" allows the whole day.
    """
    bounds = _parse_hours(hours)
    return SendWindow(days=_parse_days(days), start=bounds["start"], end=bounds["end"])


def _parse_days(days: str | list[str]) -> frozenset[int]:
    if isinstance(days, str):
        spoken = " ".join(days.lower().split())
        if spoken in _DAY_SETS:
            return _DAY_SETS[spoken]
        parts = spoken.split(",")
    elif isinstance(days, list | tuple) and all(isinstance(d, str) for d in days):
        parts = [p for item in days for p in item.lower().split(",")]
    else:
        raise ValueError(f"{_DAYS_HINT}, got {days!r}")
    found: set[int] = set()
    for part in parts:
        first, sep, last = part.partition("-")
        start, end = _day_number(first, days), _day_number(last if sep else first, days)
        found.update((start + i) % 7 for i in range((end - start) % 7 + 1))
    if not found:
        raise ValueError(f"{_DAYS_HINT}, got {days!r}")
    return frozenset(found)


def _day_number(name: str, days: object) -> int:
    number = _DAY_NUMBERS.get(name.strip())
    if number is None:
        raise ValueError(f"{_DAYS_HINT}, got {days!r} (unknown day {name.strip()!r})")
    return number


def _parse_hours(hours: str) -> dict[str, time]:
    match = _HOURS.fullmatch(hours) if isinstance(hours, str) else None
    if match is None:
        raise ValueError(f"{_HOURS_HINT}, got {hours!r}")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2 != 0):
        raise ValueError(f"{_HOURS_HINT}, got {hours!r}")
    start = time(h1, m1)
    end = time.max if h2 == 24 else time(h2, m2)
    if start >= end:
        raise ValueError(f"{_HOURS_HINT}, got {hours!r} (the window closes before it opens)")
    return {"start": start, "end": end}


# --- timezones -----------------------------------------------------------------


@lru_cache(maxsize=1)
def _zone_keys() -> dict[str, str]:
    # Only IANA keys: ZoneInfo alone would fail on a folder name such as "Europe",
    # and the system's list also holds files that are not zones a lead lives in.
    return {
        key.lower(): key
        for key in available_timezones()
        if key not in _NOT_ZONES and not key.startswith(("posix/", "right/"))
    }


def _zone(name: str | None) -> ZoneInfo | None:
    if not isinstance(name, str):
        return None
    key = _zone_keys().get(name.strip().lower())
    return ZoneInfo(key) if key else None


def is_valid_timezone(name: str) -> bool:
    """Whether `name` is an IANA zone such as "Europe/Paris" (case and spaces forgiven)."""
    return _zone(name) is not None


def resolve_timezone(lead_timezone: str | None, country: str | None, default: str) -> ZoneInfo:
    """The lead's own zone, else its country's main zone, else `default`, else UTC.

    Never raises: an unknown name falls through to the next choice.
    """
    country_zone = COUNTRY_TIMEZONES.get(country.strip().upper()) if country else None
    for name in (lead_timezone, country_zone, default):
        zone = _zone(name)
        if zone is not None:
            return zone
    return ZoneInfo("UTC")


def holiday_dates(country: str | None, years: Iterable[int]) -> frozenset[date]:
    """The national public holidays of `country` (ISO code) in `years`; empty if unknown."""
    if not country:
        return frozenset()
    code = country.strip().upper()
    return _holidays(_HOLIDAY_COUNTRY_ALIASES.get(code, code), tuple(sorted(set(years))))


@lru_cache(maxsize=256)
def _holidays(code: str, years: tuple[int, ...]) -> frozenset[date]:
    try:
        return frozenset(country_holidays(code, years=years).keys())
    except NotImplementedError:  # the calendar library's answer for an unknown country
        return frozenset()


# --- arithmetic ----------------------------------------------------------------


def add_duration(
    start: datetime, duration: Duration, tz: ZoneInfo, holidays: frozenset[date] = frozenset()
) -> datetime:
    """The instant `duration` after `start`, as aware UTC.

    - minutes, hours: elapsed time, whatever the clocks do.
    - days, weeks: the same wall time in `tz`, that many calendar days later.
    - business_days: the N-th weekday (Mon-Fri, not in `holidays`) strictly after
      start's local date, at the same wall time. So 1 business day after Friday or
      Saturday 10:00 is Monday 10:00.

    A wall time skipped by a spring-forward change becomes the first instant after
    the gap; one repeated by a fall-back change is taken at its first occurrence.
    """
    _require_aware(start, "start")
    if duration.unit not in UNITS or duration.amount < 0:
        raise ValueError(f"cannot add a duration of {duration.amount} {duration.unit!r}")
    try:
        if duration.unit in ("minutes", "hours"):
            return start.astimezone(UTC) + timedelta(**{duration.unit: duration.amount})
        local = start.astimezone(tz).replace(tzinfo=None)
        if duration.unit == "days":
            return _instants(local + timedelta(days=duration.amount), tz)[0]
        if duration.unit == "weeks":
            return _instants(local + timedelta(weeks=duration.amount), tz)[0]
        day, left = local.date(), duration.amount
        while left:
            day += timedelta(days=1)
            if day.weekday() < 5 and day not in holidays:
                left -= 1
        return _instants(datetime.combine(day, local.time()), tz)[0]
    except OverflowError:
        raise ValueError(f"{duration} after {start.isoformat()} is past year 9999") from None


def in_window(
    moment: datetime,
    window: SendWindow | None,
    tz: ZoneInfo,
    holidays: frozenset[date] = frozenset(),
) -> bool:
    """Whether an email may leave at `moment` (no window: always)."""
    _require_aware(moment, "moment")
    if window is None:
        return True
    local = moment.astimezone(tz)
    clock = local.time()
    # "24:00" is stored as time.max, and the last microsecond of the day belongs to it.
    before_end = clock <= window.end if window.end == time.max else clock < window.end
    return (
        local.weekday() in window.days
        and local.date() not in holidays
        and window.start <= clock
        and before_end
    )


def next_window_opening(
    moment: datetime,
    window: SendWindow | None,
    tz: ZoneInfo,
    holidays: frozenset[date] = frozenset(),
) -> datetime:
    """`moment` if the window is open then, else the next instant it opens (aware UTC).

    The window opens at its start time on the next allowed, non-holiday day; when
    that wall time is skipped by a spring-forward change, at the first instant after
    the gap. Raises ValueError for a window that never opens.
    """
    _require_aware(moment, "moment")
    if window is None or in_window(moment, window, tz, holidays):
        return moment.astimezone(UTC)
    if not window.days or window.start >= window.end:
        raise ValueError(f"send window never opens: {window}")
    first_day = moment.astimezone(tz).date()
    for offset in range(_SEARCH_DAYS + 1):
        day = first_day + timedelta(days=offset)
        if day.weekday() not in window.days or day in holidays:
            continue
        # Besides the start time (seen twice on a fall-back day), a fall-back change
        # can bring the clock back into the window.
        candidates = _instants(datetime.combine(day, window.start), tz) + _transition_on(day, tz)
        opening = [t for t in candidates if t > moment and in_window(t, window, tz, holidays)]
        if opening:
            return min(opening)
    raise ValueError(f"send window never opens within {_SEARCH_DAYS} days of {moment}")


# --- display -------------------------------------------------------------------


def to_local(moment: datetime, tz: ZoneInfo) -> datetime:
    """`moment` on the clock of `tz`."""
    _require_aware(moment, "moment")
    return moment.astimezone(tz)


def format_local(moment: datetime, tz: ZoneInfo) -> str:
    """Like "Tue 2026-03-31 09:00 CEST", the same in every locale."""
    local = to_local(moment, tz)
    return f"{_DAY_NAMES[local.weekday()].title()} {local:%Y-%m-%d %H:%M} {local.tzname()}"


# --- helpers -------------------------------------------------------------------


def _require_aware(moment: datetime, name: str) -> None:
    if not isinstance(moment, datetime):
        raise ValueError(f"expected an aware UTC datetime for {name}, got {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime: {name}={moment.isoformat()} (expected aware UTC)")


def _instants(wall: datetime, tz: ZoneInfo) -> list[datetime]:
    """The UTC instants whose clock in `tz` shows the naive `wall`, earliest first.

    Two on a fall-back repeat; for a wall time inside a spring-forward gap, the
    single first instant after the gap.
    """
    found = []
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(UTC)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in found:
            found.append(instant)
    if found:
        return sorted(found)
    # In a gap the two folds land on either side of the change; find the change.
    a, b = (wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))
    lo, hi = min(a, b), max(a, b)
    return [_first_second(lo, hi, lambda t: t.astimezone(tz).replace(tzinfo=None) >= wall)]


def _transition_on(day: date, tz: ZoneInfo) -> list[datetime]:
    """The instant the UTC offset of `tz` changes during local `day`, if it does."""
    lo = _instants(datetime.combine(day, time()), tz)[0]
    hi = _instants(datetime.combine(day + timedelta(days=1), time()), tz)[0]
    after = hi.astimezone(tz).utcoffset()
    if lo.astimezone(tz).utcoffset() == after:
        return []
    return [_first_second(lo, hi, lambda t: t.astimezone(tz).utcoffset() == after)]


def _first_second(lo: datetime, hi: datetime, reached: Callable[[datetime], bool]) -> datetime:
    """The earliest whole second in (lo, hi] where `reached` holds, given it is false at
    `lo` and stays true from its first true second to `hi`. Offset changes fall on
    whole seconds in the tz database."""
    low, high = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if reached(datetime.fromtimestamp(middle, UTC)):
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def window_holidays(
    window: SendWindow | None, country: str | None, years: Iterable[int]
) -> frozenset[date]:
    """The public holidays of the lead's `country` that close the send window and that
    business days skip: always, unless the window says `holidays: false`."""
    if window is not None and not window.holidays:
        return frozenset()
    return holiday_dates(country, years)
