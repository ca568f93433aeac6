"""What a dashboard is asked for: its GET parameters, checked as `nurture report`
checks its options (the same `parse_request`), with the console's defaults: the last
90 days in the installation's timezone, the report's first grouping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from nurture.console.dashboard_timeline import default_every, slices
from nurture.core.reports import ReportError, Request, parse_request

DEFAULT_DAYS = 90
# The parameters each report takes besides from, to and by (and their CLI options).
EXTRA = {"funnel": "view", "sources": "attribution", "sequences": "every"}


@dataclass(frozen=True)
class Query:
    request: Request
    every: str | None = None  # sequences: the timeline's week or month

    def params(self) -> dict[str, Any]:
        """The GET parameters that ask for this very report (links, CSV downloads)."""
        request = self.request
        found: dict[str, Any] = {
            "from": request.period.first.isoformat(),
            "to": request.period.last.isoformat(),
            "by": request.by,
        }
        if request.name == "funnel":
            found["view"] = request.view
        if request.name == "sources":
            found["attribution"] = request.attribution
        if self.every is not None:
            found["every"] = self.every
        return found

    def command(self) -> str:
        """The command that writes the same CSV."""
        request = self.request
        words = ["nurture report", request.name, "--from", request.period.first.isoformat(),
                 "--to", request.period.last.isoformat(), "--by", request.by]  # fmt: skip
        if request.name == "funnel":
            words += ["--view", request.view]
        if request.name == "sources":
            words += ["--attribution", request.attribution]
        return " ".join([*words, "--format", "csv"])


def today(now: datetime, zone: str) -> date:
    return now.astimezone(ZoneInfo(zone)).date()


def default_period(now: datetime, zone: str) -> tuple[date, date]:
    """The last 90 days, today included, as days of the installation's timezone."""
    last = today(now, zone)
    return last - timedelta(days=DEFAULT_DAYS - 1), last


def read_query(name: str, args: Mapping[str, str], now: datetime, zone: str) -> Query:
    """The report asked for; ReportError (its message names the parameter) if wrong."""

    def given(key: str) -> str | None:
        value = args.get(key)
        return value.strip() if value and value.strip() else None

    first, last = default_period(now, zone)
    wanted = parse_request(
        name,
        given("from") or first.isoformat(),
        given("to") or last.isoformat(),
        given("by"),
        None,
        given("view"),
        given("attribution"),
    )
    every = given("every")
    if name != "sequences":
        if every is not None:
            raise ReportError(f"every {every}: only the sequences dashboard takes it")
        return Query(wanted)
    every = every or default_every(wanted.period)
    slices(wanted.period, every)  # refused here, before anything is read
    return Query(wanted, every)


def said(error: ReportError) -> str:
    """The command's message in the form's words: `from`, not `--from`."""
    return str(error).replace("--", "")
