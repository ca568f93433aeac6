"""The Sequences section: each sequence, its flow diagram, versions and previews."""

from __future__ import annotations

from flask import render_template

from nurture.console import blueprint
from nurture.console.auth import requires


@blueprint.get("/sequences")
@requires("viewer")
def sequences() -> str:
    return render_template(
        "console/coming.html",
        title="Sequences",
        summary="Each sequence, its versions, and its steps' figures.",
    )
