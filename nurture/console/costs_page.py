"""Costs in the console: the list of what each source (and campaign) cost per month,
and, for marketers and admins, the form that sets one — the function and the checks
of `nurture costs set` (nurture/costs.py). A refused value is shown beside its field
and nothing is stored; a cost set changes the sources dashboard's cost per lead and
ROI at once.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import Response, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response as Answer

from nurture.console import blueprint
from nurture.console.auth import now, requires, user
from nurture.console.dashboard_query import today
from nurture.console.dashboard_tables import csv_download, figure
from nurture.core.tables import as_csv
from nurture.costs import CostError, parse_month, record
from nurture.reports.output import cost_table
from nurture.web import runtime

FIELDS = ("source", "campaign", "month", "amount", "currency", "rate")


def _page(status: int = 200, **context: Any) -> tuple[str, int]:
    rt = runtime()
    settings = rt.settings
    with rt.sessions() as session:
        costs = cost_table(session, settings.currency)
    # The newest months first: the one being entered is usually there.
    shown = sorted(costs.rows, key=lambda row: row[0], reverse=True)
    last_month = today(now(), settings.default_timezone).replace(day=1) - timedelta(days=1)
    context.setdefault("values", {"month": last_month.strftime("%Y-%m"),
                                  "currency": settings.currency})  # fmt: skip
    context.setdefault("problem", None)
    context.setdefault("sources_url", _sources_url(request.args.get("month", "")))
    page = render_template(
        "console/costs.html",
        costs=costs,
        rows=shown,
        currency=settings.currency,
        may_edit=user().may("marketer"),
        figure=figure,
        **context,
    )
    return page, status


def _sources_url(month: str) -> str | None:
    """The sources dashboard over the month just entered, to see its ROI."""
    try:
        first = date.fromisoformat(parse_month(month) + "-01")
    except CostError:
        return None
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    days: dict[str, Any] = {"from": first.isoformat(), "to": last.isoformat()}
    return url_for("console.dashboard", report="sources", **days)


@blueprint.get("/dashboards/costs")
@requires("viewer")
def costs() -> tuple[str, int]:
    return _page()


@blueprint.post("/dashboards/costs")
@requires("marketer")
def set_cost() -> Answer | tuple[str, int]:
    rt = runtime()
    currency = rt.settings.currency
    typed = {name: request.form.get(name, "").strip()[:300] for name in FIELDS}
    try:
        with rt.sessions.begin() as session:
            done = record(session, currency, typed["source"], typed["month"], typed["amount"],
                          now(), typed["campaign"] or None, typed["currency"] or None,
                          typed["rate"] or None)  # fmt: skip
            cost = done.cost
            said = cost.source + (f" / {cost.campaign}" if cost.campaign else "")
            line = f"{said} {cost.month}: {cost.amount} {currency}"
            month = cost.month
    except CostError as error:
        field, _, message = str(error).partition(": ")
        if field not in FIELDS:
            field, message = "amount", str(error)
        return _page(400, values=typed, problem=(field, message))
    if done.replaced is not None:
        line += f" (was {done.replaced} {currency})"
    flash(line, "done")
    return redirect(url_for("console.costs", month=month), code=303)


@blueprint.get("/dashboards/costs/csv")
@requires("viewer")
def costs_csv() -> Response:
    """Every cost, as `nurture costs list --format csv` writes it."""
    rt = runtime()
    with rt.sessions() as session:
        text = as_csv(cost_table(session, rt.settings.currency))
    return csv_download(text, "nurture-costs")
