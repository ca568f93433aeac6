"""The console's pages: the home page, and the sections its navigation leads to.

The four sections are placeholders for now, each saying so on the page: their own
pages come next, on the access layer this package sets up.
"""

from __future__ import annotations

from flask import current_app, render_template, request, url_for
from flask_login import current_user

from nurture.console import blueprint
from nurture.console.auth import now, requires, user
from nurture.console.overview import overview
from nurture.web import runtime

# The navigation, in order: (label, endpoint). Who sees a link is who may open it.
SECTIONS = (
    ("Sequences", "console.sequences"),
    ("Leads", "console.leads"),
    ("Dashboards", "console.dashboards"),
    ("Operations", "console.operations"),
)


@blueprint.context_processor
def _navigation() -> dict[str, object]:
    if not current_user.is_authenticated:
        return {"nav": []}
    signed, views = user(), current_app.view_functions
    links = [
        (label, url_for(endpoint), endpoint == request.endpoint)
        for label, endpoint in SECTIONS
        if signed.may(*getattr(views[endpoint], "roles", ()))
    ]
    return {"nav": links}


@blueprint.get("/")
@requires()
def home() -> str:
    rt = runtime()
    with rt.sessions() as session:
        figures = overview(session, user(), now(), rt.settings.default_timezone)
    return render_template("console/home.html", figures=figures, zone=rt.settings.default_timezone)


def _coming(title: str, summary: str) -> str:
    return render_template("console/coming.html", title=title, summary=summary)


@blueprint.get("/sequences")
@requires("viewer")
def sequences() -> str:
    return _coming("Sequences", "Each sequence, its versions, and its steps' figures.")


@blueprint.get("/leads")
@requires("viewer", "sales")
def leads() -> str:
    return _coming("Leads", "Finding a lead, its timeline, score and decisions.")


@blueprint.get("/dashboards")
@requires("viewer")
def dashboards() -> str:
    return _coming("Dashboards", "The funnel, sales' SLA, velocity, sources and costs.")


@blueprint.get("/operations")
@requires("admin")
def operations() -> str:
    return _coming("Operations", "Deliveries to settle, the CRM outbox, workers and alarms.")
