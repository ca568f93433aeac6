"""The Dashboards section: the reports as charts and tables, with CSV downloads."""

from __future__ import annotations

from flask import render_template

from nurture.console import blueprint
from nurture.console.auth import requires


@blueprint.get("/dashboards")
@requires("viewer")
def dashboards() -> str:
    return render_template(
        "console/coming.html",
        title="Dashboards",
        summary="The funnel, sales' SLA, velocity, sources and costs.",
    )
