"""The Sequences section (viewers, marketers, admins; not sales): the list of every
sequence with its problems and enrollments, each sequence's page (flow diagram with
counts, per-step figures, versions and what changed, email previews), and the
preview of one email, framed by that page under a stricter policy of its own.
docs/console-sequences.md tells what each figure means."""

from __future__ import annotations

from html import escape
from typing import Any

from flask import Response, abort, render_template, request, url_for

from nurture.console import blueprint
from nurture.console.auth import now, requires, user
from nurture.console.sequence_list import listing
from nurture.console.sequence_page import build, drawn
from nurture.console.sequence_preview import reader, render
from nurture.console.sequence_versions import history
from nurture.core.wording import window_text
from nurture.web import runtime

# An email preview runs nothing, loads nothing but its own inline styles and inline
# images, and only the console's own pages may frame it (`frame-ancestors`, and
# X-Frame-Options for browsers without it: the console's DENY would refuse the frame).
# The `sandbox` of its frame takes scripts, forms, pop-ups and navigation away besides.
PREVIEW_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
FRAMED_BY = "frame-ancestors 'self'"
KEPT = ("version", "from", "to", "a", "b", "q", "lead")  # what the page's links carry on


@blueprint.get("/sequences")
@requires("viewer")
def sequences() -> str:
    rt = runtime()
    rt.content.reload()  # the files as they are now, as the next tick will see them
    with rt.sessions() as session:
        found = listing(session, rt.content, rt.settings)
    return render_template("console/sequences.html", listing=found)


@blueprint.get("/sequences/<sequence_id>")
@requires("viewer")
def sequences_page(sequence_id: str) -> tuple[str, int]:
    rt = runtime()
    rt.content.reload()
    args = {name: request.args.get(name, "") for name in KEPT}
    with rt.sessions() as session:
        page = build(session, rt.content, rt.settings, user(), sequence_id, args, now())
    if page is None:
        abort(404)

    def here(**changes: Any) -> str:
        """This page's address with its parameters, some of them changed."""
        kept: dict[str, Any] = {k: v for k, v in {**args, **changes}.items() if v}
        return url_for("console.sequences_page", sequence_id=sequence_id, **kept)

    def framed(step_id: str, locale: str) -> str:
        kept: dict[str, Any] = {k: args[k] for k in ("version", "lead") if args[k]}
        return url_for("console.sequences_preview", sequence_id=sequence_id, step_id=step_id,
                       locale=locale, **kept)  # fmt: skip

    window = window_text(page.sequence.window)
    body = render_template(
        "console/sequence.html", page=page, args=args, here=here, framed=framed, window=window
    )
    return body, 400 if page.period_problem else 200


@blueprint.get("/sequences/<sequence_id>/preview/<step_id>/<locale>")
@requires("viewer")
def sequences_preview(sequence_id: str, step_id: str, locale: str) -> Response:
    """One email's HTML part, for the frame on the sequence's page."""
    rt = runtime()
    content = rt.content
    content.reload()
    with rt.sessions() as session:
        versions = history(session, content, sequence_id)
        asked = request.args.get("version") or None
        if asked is not None and asked not in {v.version for v in versions}:
            abort(404)
        found = drawn(session, content, sequence_id, versions, asked)
        who = reader(session, user(), request.args.get("lead"))
    step = found.email(step_id) if found is not None else None  # a split's too
    if found is None or who is None or step is None:
        abort(404)
    if locale not in content.templates.locales(step.template):
        abort(404)
    shown = render(content, rt.settings, found, step, who, locale)
    if shown.problem is None:
        answer = Response(shown.html, mimetype="text/html")
    else:
        problem = f"<!doctype html><title>Not rendered</title><p>{escape(shown.problem)}</p>"
        answer = Response(problem, status=422, mimetype="text/html")
    # Set here, so the app's hook (which only fills in what is missing) keeps them.
    answer.headers["Content-Security-Policy"] = f"{PREVIEW_POLICY}; {FRAMED_BY}"
    answer.headers["X-Frame-Options"] = "SAMEORIGIN"
    return answer
