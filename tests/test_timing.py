"""Durations, send windows, timezones and holidays, as a lead's clock sees them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from nurture.core.sequences import Duration, SendWindow
from nurture.core.timing import (
    add_duration,
    format_local,
    holiday_dates,
    in_window,
    is_valid_timezone,
    next_window_opening,
    parse_duration,
    parse_send_window,
    resolve_timezone,
    to_local,
)

PARIS = ZoneInfo("Europe/Paris")
NEW_YORK = ZoneInfo("America/New_York")
OFFICE_HOURS = SendWindow(days=frozenset(range(5)), start=time(9), end=time(17, 30))
FR_2026 = holiday_dates("FR", [2026])


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, us: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, us, tzinfo=UTC)


def paris(y: int, mo: int, d: int, h: int = 0, mi: int = 0, fold: int = 0) -> datetime:
    """A Paris wall time, as the UTC instant the engine works with."""
    return datetime(y, mo, d, h, mi, tzinfo=PARIS, fold=fold).astimezone(UTC)


# --- durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("30 minutes", 30, "minutes"),
        ("1 minute", 1, "minutes"),
        ("4 hours", 4, "hours"),
        ("2 days", 2, "days"),
        ("1 day", 1, "days"),
        ("1 week", 1, "weeks"),
        ("3 weeks", 3, "weeks"),
        ("3 business days", 3, "business_days"),
        ("1 business day", 1, "business_days"),
        ("  2   Days ", 2, "days"),
        ("3 BUSINESS  DAYS", 3, "business_days"),
        ("3650 days", 3650, "days"),
        ("521 weeks", 521, "weeks"),
    ],
)
def test_parse_duration_accepts_what_marketers_write(text: str, amount: int, unit: str) -> None:
    assert parse_duration(text) == Duration(amount, unit)


@pytest.mark.parametrize(
    "text",
    ["", "days", "2", "0 days", "-1 days", "1.5 days", "2days", "2 fortnights", "two days",
     "3651 days", "522 weeks", "2 business", "2 days later", "٣ days"],
)  # fmt: skip
def test_parse_duration_rejects_anything_else_and_says_what_it_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r'expected a duration such as "2 days"') as raised:
        parse_duration(text)
    assert repr(text) in str(raised.value)


def test_duration_reads_back_as_written() -> None:
    assert str(parse_duration("1 business day")) == "1 business day"
    assert str(parse_duration("3 weeks")) == "3 weeks"


# --- send windows ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ("mon-fri", {0, 1, 2, 3, 4}),
        ("Mon - Fri", {0, 1, 2, 3, 4}),
        ("mon,wed,fri", {0, 2, 4}),
        (["mon", "tue"], {0, 1}),
        (["Monday", "thursday"], {0, 3}),
        ("every day", set(range(7))),
        ("all", set(range(7))),
        ("fri-mon", {4, 5, 6, 0}),
        ("mon-wed,sat", {0, 1, 2, 5}),
    ],
)
def test_parse_send_window_days(days: str | list[str], expected: set[int]) -> None:
    assert parse_send_window(days, "09:00-17:30").days == frozenset(expected)


@pytest.mark.parametrize(
    ("hours", "start", "end"),
    [
        ("09:00-17:30", time(9), time(17, 30)),
        (" 8:15 - 12:00 ", time(8, 15), time(12)),
        ("00:00-24:00", time(0), time.max),
    ],
)
def test_parse_send_window_hours(hours: str, start: time, end: time) -> None:
    window = parse_send_window("mon-fri", hours)
    assert (window.start, window.end) == (start, end)


@pytest.mark.parametrize(
    ("days", "hours", "message"),
    [
        ("mon-fry", "09:00-17:00", "unknown day 'fry'"),
        ("", "09:00-17:00", "expected days such as"),
        ([], "09:00-17:00", "expected days such as"),
        ("mon,,fri", "09:00-17:00", "expected days such as"),
        ("mon-fri", "17:00-09:00", "closes before it opens"),
        ("mon-fri", "09:00-09:00", "closes before it opens"),
        ("mon-fri", "9am-5pm", "expected hours such as"),
        ("mon-fri", "25:00-26:00", "expected hours such as"),
        ("mon-fri", "09:00-24:30", "expected hours such as"),
        ("mon-fri", "09:60-17:00", "expected hours such as"),
    ],
)
def test_parse_send_window_says_what_was_expected(
    days: str | list[str], hours: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_send_window(days, hours)


# --- timezones -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lead_zone", "country", "default", "expected"),
    [
        ("America/Chicago", "FR", "UTC", "America/Chicago"),  # the lead's own zone wins
        (None, "FR", "UTC", "Europe/Paris"),
        (None, "us", "UTC", "America/New_York"),
        ("", " ca ", "UTC", "America/Toronto"),
        (None, "AU", "UTC", "Australia/Sydney"),
        (None, "UK", "UTC", "Europe/London"),
        ("Mars/Olympus_Mons", "DE", "UTC", "Europe/Berlin"),  # invalid lead zone falls back
        ("localtime", "JP", "UTC", "Asia/Tokyo"),  # never the machine's own zone
        ("europe/paris", None, "UTC", "Europe/Paris"),
        (None, None, "Europe/Lisbon", "Europe/Lisbon"),
        (None, "XX", "Asia/Singapore", "Asia/Singapore"),
        ("nonsense", "nowhere", "also/nonsense", "UTC"),
    ],
)
def test_resolve_timezone_chain(
    lead_zone: str | None, country: str | None, default: str, expected: str
) -> None:
    assert resolve_timezone(lead_zone, country, default) == ZoneInfo(expected)


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("Europe/Paris", True),
        ("UTC", True),
        ("Europe", False),
        ("", False),
        ("../etc/passwd", False),
        ("/etc/localtime", False),
        ("Paris", False),
    ],
)
def test_is_valid_timezone(name: str, valid: bool) -> None:
    assert is_valid_timezone(name) is valid


# --- adding durations ------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "text", "expected"),
    [
        # elapsed time: 4 hours across spring-forward is 4 real hours, 5 on the clock
        (paris(2026, 3, 29, 0, 30), "4 hours", paris(2026, 3, 29, 5, 30)),
        (paris(2026, 3, 29, 0, 30), "30 minutes", paris(2026, 3, 29, 1, 0)),
        # calendar days keep the wall time across both changes
        (paris(2026, 3, 28, 9, 30), "2 days", paris(2026, 3, 30, 9, 30)),
        (paris(2026, 10, 24, 9, 30), "2 days", paris(2026, 10, 26, 9, 30)),
        (paris(2026, 3, 20, 9, 30), "2 weeks", paris(2026, 4, 3, 9, 30)),
        # a wall time skipped by the change: the first instant after the gap
        (paris(2026, 3, 28, 2, 30), "1 day", paris(2026, 3, 29, 3, 0)),
        # a repeated wall time: its first occurrence (still summer time)
        (paris(2026, 10, 24, 2, 30), "1 day", paris(2026, 10, 25, 2, 30, fold=0)),
    ],
)
def test_add_duration(start: datetime, text: str, expected: datetime) -> None:
    assert add_duration(start, parse_duration(text), PARIS) == expected


def test_two_days_across_spring_forward_is_47_real_hours_at_the_same_clock_time() -> None:
    result = add_duration(utc(2026, 3, 28, 8, 30), parse_duration("2 days"), PARIS)
    assert result == utc(2026, 3, 30, 7, 30)
    assert format_local(result, PARIS) == "Mon 2026-03-30 09:30 CEST"


def test_two_days_across_fall_back_is_49_real_hours_at_the_same_clock_time() -> None:
    result = add_duration(utc(2026, 10, 24, 7, 30), parse_duration("2 days"), PARIS)
    assert result == utc(2026, 10, 26, 8, 30)
    assert format_local(result, PARIS) == "Mon 2026-10-26 09:30 CET"


@pytest.mark.parametrize(
    ("start", "text", "expected"),
    [
        (paris(2026, 3, 25, 10), "1 business day", paris(2026, 3, 26, 10)),  # Wed -> Thu
        (paris(2026, 3, 27, 10), "1 business day", paris(2026, 3, 30, 10)),  # Fri -> Mon
        (paris(2026, 3, 28, 10), "1 business day", paris(2026, 3, 30, 10)),  # Sat -> Mon
        (paris(2026, 3, 29, 10), "1 business day", paris(2026, 3, 30, 10)),  # Sun -> Mon
        (paris(2026, 3, 26, 10), "3 business days", paris(2026, 3, 31, 10)),  # Thu -> Tue
        (paris(2026, 3, 23, 10), "5 business days", paris(2026, 3, 30, 10)),  # a week
    ],
)
def test_business_days_skip_weekends(start: datetime, text: str, expected: datetime) -> None:
    assert add_duration(start, parse_duration(text), PARIS) == expected


@pytest.mark.parametrize(
    ("start", "text", "expected"),
    [
        # Thu 30 Apr + 1: Fri 1 May is Labour Day -> Mon 4 May
        (paris(2026, 4, 30, 9), "1 business day", paris(2026, 5, 4, 9)),
        # Wed 13 May + 1: Thu 14 May is Ascension -> Fri 15 May
        (paris(2026, 5, 13, 9), "1 business day", paris(2026, 5, 15, 9)),
        # Wed 29 Apr + 3: Thu 30, (Fri 1 May), Mon 4, Tue 5
        (paris(2026, 4, 29, 9), "3 business days", paris(2026, 5, 5, 9)),
    ],
)
def test_business_days_skip_french_public_holidays(
    start: datetime, text: str, expected: datetime
) -> None:
    assert add_duration(start, parse_duration(text), PARIS, FR_2026) == expected
    # without the calendar the holiday counts as a working day
    assert add_duration(start, parse_duration(text), PARIS) < expected


def test_holiday_dates() -> None:
    assert {date(2026, 5, 1), date(2026, 5, 14), date(2026, 7, 14)} <= FR_2026
    assert date(2026, 7, 4) in holiday_dates("us", [2026])
    assert date(2027, 12, 25) in holiday_dates("UK", [2026, 2027])
    assert holiday_dates(None, [2026]) == frozenset()
    assert holiday_dates("XX", [2026]) == frozenset()


# --- send windows in time --------------------------------------------------------


@pytest.mark.parametrize(
    ("moment", "expected", "why"),
    [
        (paris(2026, 3, 27, 18), paris(2026, 3, 30, 9), "Friday evening waits for Monday"),
        (paris(2026, 3, 25, 7), paris(2026, 3, 25, 9), "early morning waits for opening"),
        (paris(2026, 3, 25, 17, 30), paris(2026, 3, 26, 9), "closing time is closed"),
        (paris(2026, 3, 28, 12), paris(2026, 3, 30, 9), "Saturday waits for Monday"),
        (paris(2026, 3, 25, 9), paris(2026, 3, 25, 9), "opening time is open"),
        (paris(2026, 3, 25, 17, 29), paris(2026, 3, 25, 17, 29), "inside: unchanged"),
    ],
)
def test_next_window_opening(moment: datetime, expected: datetime, why: str) -> None:
    assert next_window_opening(moment, OFFICE_HOURS, PARIS) == expected, why


def test_friday_evening_in_paris_waits_for_monday_0900_paris_in_utc() -> None:
    opening = next_window_opening(utc(2026, 3, 27, 17, 0), OFFICE_HOURS, PARIS)
    # Friday was still winter time (UTC+1), Monday is summer time (UTC+2)
    assert opening == utc(2026, 3, 30, 7, 0)
    assert format_local(opening, PARIS) == "Mon 2026-03-30 09:00 CEST"


def test_no_window_means_now() -> None:
    moment = utc(2026, 3, 28, 3, 0)
    assert next_window_opening(moment, None, PARIS) == moment
    assert in_window(moment, None, PARIS)


def test_window_skips_a_public_holiday() -> None:
    # Thursday 30 April 18:00: Friday 1 May is a holiday, so Monday 4 May
    opening = next_window_opening(paris(2026, 4, 30, 18), OFFICE_HOURS, PARIS, FR_2026)
    assert opening == paris(2026, 5, 4, 9)
    assert not in_window(paris(2026, 5, 1, 10), OFFICE_HOURS, PARIS, FR_2026)


def test_window_follows_the_lead_timezone() -> None:
    # 14:00 UTC is 15:00 in Paris (open) but 10:00 in New York (before an 11:00 opening)
    window = parse_send_window("mon-fri", "11:00-16:00")
    moment = utc(2026, 3, 25, 14, 0)
    assert in_window(moment, window, PARIS)
    assert next_window_opening(moment, window, NEW_YORK) == utc(2026, 3, 25, 15, 0)


def test_window_opening_inside_the_spring_forward_gap_opens_after_the_gap() -> None:
    # On Sunday 29 March 2026 Paris clocks jump from 02:00 to 03:00: 02:30 never happens
    window = parse_send_window("every day", "02:30-06:00")
    opening = next_window_opening(paris(2026, 3, 29, 1, 0), window, PARIS)
    assert opening == utc(2026, 3, 29, 1, 0)
    assert format_local(opening, PARIS) == "Sun 2026-03-29 03:00 CEST"


def test_window_on_a_dst_day_opens_at_the_new_clock_time() -> None:
    window = parse_send_window("sun", "09:00-12:00")
    opening = next_window_opening(utc(2026, 3, 29, 0, 0), window, PARIS)
    assert opening == utc(2026, 3, 29, 7, 0)  # 09:00 CEST, not 09:00 CET


def test_window_reopens_when_the_clock_falls_back() -> None:
    # On Sunday 25 October 2026 Paris clocks go from 03:00 back to 02:00: 02:15 in
    # winter time comes after 02:30 in summer time, and 02:30 arrives again.
    window = parse_send_window("every day", "02:30-06:00")
    second_0215 = paris(2026, 10, 25, 2, 15, fold=1)
    opening = next_window_opening(second_0215, window, PARIS)
    assert opening == paris(2026, 10, 25, 2, 30, fold=1)
    assert opening - second_0215 == timedelta(minutes=15)


def test_whole_day_window_is_always_open() -> None:
    window = parse_send_window("every day", "00:00-24:00")
    for moment in (paris(2026, 3, 29, 0, 0), utc(2026, 3, 29, 21, 59, 59, 999999)):
        assert in_window(moment, window, PARIS)


def test_window_without_days_is_refused() -> None:
    window = SendWindow(days=frozenset(), start=time(9), end=time(17))
    with pytest.raises(ValueError, match="never opens"):
        next_window_opening(utc(2026, 3, 25, 20), window, PARIS)


# --- display and naive datetimes -------------------------------------------------


def test_to_local_and_format_local() -> None:
    moment = utc(2026, 3, 31, 7, 0)
    assert to_local(moment, PARIS) == moment
    assert to_local(moment, PARIS).hour == 9
    assert format_local(moment, PARIS) == "Tue 2026-03-31 09:00 CEST"
    assert format_local(utc(2026, 1, 6, 14, 5), NEW_YORK) == "Tue 2026-01-06 09:05 EST"


NAIVE = datetime(2026, 3, 25, 9, 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: add_duration(NAIVE, Duration(2, "days"), PARIS),
        lambda: next_window_opening(NAIVE, OFFICE_HOURS, PARIS),
        lambda: next_window_opening(NAIVE, None, PARIS),
        lambda: in_window(NAIVE, OFFICE_HOURS, PARIS),
        lambda: to_local(NAIVE, PARIS),
        lambda: format_local(NAIVE, PARIS),
    ],
)
def test_naive_datetimes_are_rejected(call: Callable[[], object]) -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        call()


@pytest.mark.parametrize(
    ("window", "off"),
    [
        (None, True),  # no window: business days still skip the country's holidays
        (parse_send_window("mon-fri", "09:00-17:30"), True),
        (replace(parse_send_window("every day", "09:00-17:30"), holidays=False), False),
    ],
)
def test_a_countrys_public_holidays_are_off_unless_the_window_says_not(
    window: Any, off: bool
) -> None:
    from datetime import date

    from nurture.core.timing import window_holidays

    found = window_holidays(window, "FR", [2026])
    assert (date(2026, 4, 6) in found) is off  # Easter Monday
    assert window_holidays(window, None, [2026]) == frozenset()  # no country, no calendar
