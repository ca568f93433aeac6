"""The console's home page and its navigation; each section is a module of its own
(sequences, leads, dashboards, operations)."""

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
    ("Accounts", "console.accounts"),
    ("Dashboards", "console.dashboards"),
    ("Operations", "console.operations"),
)


@blueprint.context_processor
def _navigation() -> dict[str, object]:
    if not current_user.is_authenticated:
        return {"nav": []}
    signed, views = user(), current_app.view_functions
    here = request.endpoint or ""
    links = [
        # A section's own pages are named after it (`operations_keys`): its link stays lit.
        (label, url_for(endpoint), here == endpoint or here.startswith(endpoint + "_"))
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
