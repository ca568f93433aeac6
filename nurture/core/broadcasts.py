"""A parsed broadcast and when it goes: frozen values and pure time arithmetic.

An occurrence is a wall time ("2026-12-10 09:00") that each lead receives at that time
in its own time zone. It may start (its segment enrolled) from the moment the first
time zone on Earth reaches it, STARTS_BEFORE ahead of UTC, until CATCH_UP after the
last one did: a worker stopped for an afternoon still sends the day's newsletter, one
stopped for a week does not send last week's. `now` is always a parameter.

A broadcast is sent by the sequence machinery: `journey` writes it as a one-email
sequence (the dispatcher, the frequency cap and the reports see a sequence like any
other, named `broadcast-<id>`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, MONTHLY, WEEKLY, rrule

from nurture.core.sequences import Audience, EmailStep, IntRange, SendWindow

STARTS_BEFORE = timedelta(hours=14)  # UTC+14, the first zone to reach a wall time
LAST_ZONE = timedelta(hours=12)  # UTC-12, the last
CATCH_UP = timedelta(days=1)
PREFIX = "broadcast-"  # of the sequence a broadcast is sent as
_FREQUENCIES: dict[str, Literal[0, 1, 2, 3, 4, 5, 6]] = {
    "day": DAILY,
    "week": WEEKLY,
    "month": MONTHLY,
}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Segment:
    """Who receives a broadcast: a sequence audience, and tags, score, recent activity."""

    audience: Audience = field(default_factory=Audience)
    tags: frozenset[str] | None = None  # at least one of them
    score: IntRange | None = None
    active_within_days: int | None = None  # a human click or a form in that many days


@dataclass(frozen=True)
class Schedule:
    """Once at `once`, or `every` day/week/month at `at` (local wall times)."""

    at: time
    once: datetime | None = None  # naive: a wall time, in every lead's zone
    every: str | None = None  # day | week | month
    day: int | None = None  # month day (1-31) or weekday (0 = Monday)
    starting: date | None = None
    until: date | None = None

    def __str__(self) -> str:
        if self.once is not None:
            return f"once, {self.once:%Y-%m-%d %H:%M} local time"
        on = ""
        if self.every == "month":
            on = f" on day {self.day}"
        elif self.every == "week" and self.day is not None:
            on = f" on {WEEKDAYS[self.day]}"
        return f"every {self.every}{on} at {self.at:%H:%M} local time"


@dataclass(frozen=True)
class Broadcast:
    id: str
    name: str
    path: str
    version: str
    source: str
    segment: Segment
    schedule: Schedule
    email: EmailStep
    window: SendWindow | None = None
    timezone: str = "UTC"
    priority: int = 0
    locales: tuple[str, ...] = ("en",)
    enabled: bool = True
    line: int = 1  # of `send`, for problems about the schedule

    @property
    def sequence_id(self) -> str:
        return PREFIX + self.id


def wall_times(schedule: Schedule, since: datetime, until: datetime) -> list[datetime]:
    """The occurrences (naive wall times) from `since` to `until` inclusive (naive)."""
    if schedule.once is not None:
        return [schedule.once] if since <= schedule.once <= until else []
    assert schedule.every is not None
    first = since.date() - timedelta(days=1)
    if schedule.starting is not None:
        first = max(first, schedule.starting)
    rule = rrule(
        _FREQUENCIES[schedule.every],
        dtstart=datetime.combine(first, time(0)),
        byhour=schedule.at.hour,
        byminute=schedule.at.minute,
        bysecond=0,
        bymonthday=schedule.day if schedule.every == "month" else None,
        byweekday=schedule.day if schedule.every == "week" else None,
    )
    found = rule.between(since, until, inc=True)
    if schedule.until is not None:
        found = [w for w in found if w.date() <= schedule.until]
    return found


def startable(schedule: Schedule, now: datetime) -> list[datetime]:
    """The occurrences that may start at `now` (see the module docstring), oldest first."""
    utc = now.astimezone(UTC).replace(tzinfo=None)
    return wall_times(schedule, utc - LAST_ZONE - CATCH_UP, utc + STARTS_BEFORE)


def next_wall_time(schedule: Schedule, now: datetime) -> datetime | None:
    """The next occurrence that has not begun anywhere yet, for `nurture broadcasts list`."""
    utc = now.astimezone(UTC).replace(tzinfo=None)
    found = wall_times(schedule, utc + STARTS_BEFORE, utc + timedelta(days=800))
    return found[0] if found else None


def local_instant(wall: datetime, zone: ZoneInfo) -> datetime:
    """When `wall` happens in `zone`, as aware UTC (in a spring-forward gap, the wall
    time is read with the offset before the change: a little later, never skipped)."""
    return wall.replace(tzinfo=zone).astimezone(UTC)


def occurrence_key(wall: datetime) -> datetime:
    """How an occurrence is stored: its wall time, written as if it were UTC."""
    return wall.replace(tzinfo=UTC)


def journey(broadcast: Broadcast) -> str:
    """The broadcast as a sequence file: one email. Stored as the sequence version its
    leads follow, so any worker reads it back with the sequence parser."""
    email = broadcast.email
    lines = [
        f"id: {broadcast.sequence_id}",
        f"name: {_quoted(broadcast.name)}",
        f"priority: {broadcast.priority}",
        f"locales: [{', '.join(broadcast.locales)}]",
        f"timezone: {broadcast.timezone}",
        "entry:",
        "  triggers:",
        f"    - event: {{name: {broadcast.sequence_id}}}  # entered by its occurrences only",
    ]
    if broadcast.window is not None:
        window = broadcast.window
        days = ", ".join(WEEKDAYS[d] for d in sorted(window.days))
        lines += [
            "send_window:",
            f"  days: [{days}]",
            f'  hours: "{window.start:%H:%M}-{window.end:%H:%M}"',
            f"  holidays: {'true' if window.holidays else 'false'}",
        ]
    lines += [
        "steps:",
        f"  - id: {email.id}",
        "    email:",
        f"      template: {email.template}",
        f"      kind: {email.kind}",
    ]
    if email.subject is not None:
        lines.append(f"      subject: {_quoted(email.subject)}")
    return "\n".join(lines) + "\n"


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML string
