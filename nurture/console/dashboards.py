"""The Dashboards section: each report as charts and the table behind them, over the
days and the grouping picked in a plain GET form; every table downloads as the CSV
`nurture report NAME --format csv` writes, through the same function
(nurture/reports/output.py), byte for byte. Costs are entered on their own page
(costs_page.py). See docs/console-dashboards.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Response, abort, render_template, request, url_for
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.console import blueprint, costs_page
from nurture.console.auth import now, requires
from nurture.console.dashboard_charts import charts_for, timeline_charts
from nurture.console.dashboard_query import Query, default_period, read_query, said
from nurture.console.dashboard_tables import csv_download, figure, numeric
from nurture.console.dashboard_timeline import timeline
from nurture.core.alarms import percent
from nurture.core.reports import ATTRIBUTIONS, GROUPINGS, REPORTS, VIEWS, ReportError
from nurture.core.tables import as_csv
from nurture.models import AlarmState
from nurture.reports.output import report_table, report_text
from nurture.web import runtime

assert costs_page  # its routes join the section when imported

# Each dashboard: its title and what it shows, in the section's order.
PAGES = {
    "funnel": ("Funnel", "Leads, MQL, SQL, accepted, opportunities and wins, with amounts"),
    "sla": ("Sales SLA", "Leads answered by sales in time, per rep or over time; the alarm"),
    "velocity": ("Velocity", "Days spent in each stage: median and 90th percentile"),
    "sources": ("Sources", "Leads, revenue and cost per source; cost per lead, MQL, SQL; ROI"),
    "sequences": ("Sequences", "Each sequence's emails, opens, clicks and unsubscribes over time"),
    "deliverability": ("Deliverability", "Bounce and complaint rates per day against the limits"),
}  # fmt: skip
assert tuple(PAGES) == REPORTS
# The worker's alarm that watches each dashboard's figure (nurture/alarms.py).
ALARMS = {"sla": "treatment_rate", "deliverability": "complaint_rate"}


@dataclass(frozen=True)
class AlarmShown:
    """An alarm as the worker last left it, for the page."""

    name: str
    label: str
    line: str  # "80 %"
    side: str  # "under" or "over"
    raised: bool | None  # None: never checked yet
    value: str | None
    detail: str
    checked_at: datetime | None
    changed_at: datetime | None


def alarm_shown(session: Session, settings: Settings, name: str) -> AlarmShown:
    from nurture.alarms import complaint_alarm, treatment_alarm

    alarm = treatment_alarm(settings) if name == "treatment_rate" else complaint_alarm(settings)
    state = session.get(AlarmState, name)
    zone = ZoneInfo(settings.default_timezone)

    def local(moment: datetime | None) -> datetime | None:
        return None if moment is None else moment.astimezone(zone)

    return AlarmShown(
        name,
        alarm.label,
        percent(alarm.threshold),
        "under" if alarm.low_is_bad else "over",
        None if state is None else state.raised,
        None if state is None or state.value is None else percent(state.value),
        "" if state is None else state.detail,
        None if state is None else local(state.checked_at),
        None if state is None else local(state.changed_at),
    )


def _known(report: str) -> None:
    if report not in PAGES:
        abort(404)


def _page(report: str, status: int = 200, **context: Any) -> tuple[str, int]:
    settings = runtime().settings
    context.setdefault("values", dict(request.args.items()))
    query: Query | None = context.get("query")
    # The tabs keep the days picked (not the grouping: each report has its own).
    period = {k: v for k, v in query.params().items() if k in ("from", "to")} if query else {}
    page = render_template(
        "console/dashboard.html",
        report=report,
        period=period,
        figure=figure,
        numeric=numeric,
        pages=PAGES,
        groupings=GROUPINGS[report],
        views=VIEWS,
        attributions=ATTRIBUTIONS,
        zone=settings.default_timezone,
        currency=settings.currency,
        **context,
    )
    return page, status


@blueprint.get("/dashboards")
@requires("viewer")
def dashboards() -> str:
    rt = runtime()
    settings = rt.settings
    with rt.sessions() as session:
        alarms = [alarm_shown(session, settings, name) for name in ALARMS.values()]
    first, last = default_period(now(), settings.default_timezone)
    return render_template(
        "console/dashboards.html",
        pages=PAGES,
        alarms=alarms,
        first=first,
        last=last,
        zone=settings.default_timezone,
    )


@blueprint.get("/dashboards/<report>")
@requires("viewer")
def dashboard(report: str) -> tuple[str, int]:
    _known(report)
    rt = runtime()
    settings = rt.settings
    try:
        query = read_query(report, request.args, now(), settings.default_timezone)
    except ReportError as error:
        return _page(report, 400, problem=said(error))
    wanted = query.request
    steps = None
    with rt.sessions() as session:
        data = report_table(session, wanted, settings, now())
        if query.every is not None:
            steps = timeline(session, settings, now(), wanted.period, query.every)
        alarm = alarm_shown(session, settings, ALARMS[report]) if report in ALARMS else None
    charts = list(charts_for(report, data, wanted.by, settings.currency,
                             settings.treatment_alarm))  # fmt: skip
    return _page(
        report,
        query=query,
        values=query.params(),
        data=data,
        charts=charts,
        timeline=steps,
        timeline_charts=timeline_charts(steps, query.every) if query.every and steps else [],
        alarm=alarm,
        alarms_in_report=[n for n in data.notes if n.startswith(("ALARM", "WARNING"))],
        csv_url=url_for("console.dashboard_csv", report=report, **query.params()),
        timeline_csv_url=url_for("console.timeline_csv", **query.params()),
    )


def _file_name(query: Query, *extra: str) -> str:
    wanted = query.request
    return "-".join(("nurture", wanted.name, *extra, wanted.period.first.isoformat(),
                     wanted.period.last.isoformat(), "by", wanted.by))  # fmt: skip


@blueprint.get("/dashboards/<report>/csv")
@requires("viewer")
def dashboard_csv(report: str) -> Response | tuple[str, int]:
    """The table of the dashboard, as `nurture report REPORT --format csv` writes it."""
    _known(report)
    rt = runtime()
    try:
        query = read_query(report, request.args, now(), rt.settings.default_timezone)
    except ReportError as error:
        return _page(report, 400, problem=said(error))
    with rt.sessions() as session:
        text = report_text(session, query.request, rt.settings, now(), "csv")
    return csv_download(text, _file_name(query))


@blueprint.get("/dashboards/sequences/timeline/csv")
@requires("viewer")
def timeline_csv() -> Response | tuple[str, int]:
    """The sequences' timeline, written by the same CSV writer as the reports."""
    rt = runtime()
    try:
        query = read_query("sequences", request.args, now(), rt.settings.default_timezone)
    except ReportError as error:
        return _page("sequences", 400, problem=said(error))
    assert query.every is not None
    with rt.sessions() as session:
        steps = timeline(session, rt.settings, now(), query.request.period, query.every)
    return csv_download(as_csv(steps), _file_name(query, "per", query.every))
