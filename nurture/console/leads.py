"""The Leads section: the list of leads and each lead's page and timeline."""

from __future__ import annotations

from flask import render_template

from nurture.console import blueprint
from nurture.console.auth import requires


@blueprint.get("/leads")
@requires("viewer", "sales")
def leads() -> str:
    return render_template(
        "console/coming.html",
        title="Leads",
        summary="Finding a lead, its timeline, score and decisions.",
    )
