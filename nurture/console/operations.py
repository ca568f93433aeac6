"""The Operations section, for admins: CRM outbox, uncertain deliveries, backlog, API keys."""

from __future__ import annotations

from flask import render_template

from nurture.console import blueprint
from nurture.console.auth import requires


@blueprint.get("/operations")
@requires("admin")
def operations() -> str:
    return render_template(
        "console/coming.html",
        title="Operations",
        summary="Deliveries to settle, the CRM outbox, workers and alarms.",
    )
