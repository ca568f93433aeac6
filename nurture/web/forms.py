"""Website forms: a plain form-encoded POST creates or enriches the lead and records
`form_submitted`, then sends the visitor to the configured thank-you page.

A hidden honeypot field catches bots (they get the same answer, nothing is stored);
each address may post a few times a minute (per process). The thank-you address
comes from the settings only, never from the form: no open redirect.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, render_template, request
from sqlalchemy.exc import IntegrityError

from nurture.core.intake import InvalidInput, parse_lead
from nurture.evidence import record
from nurture.intake import take
from nurture.web import request_now, runtime
from nurture.web.ratelimit import RateLimit

blueprint = Blueprint("forms", __name__, template_folder="templates")

HONEYPOT = "website"  # hidden with CSS in the form; people leave it empty
FORM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
LEAD_FIELDS = ("email", "first_name", "last_name", "company", "job_title", "company_size",
               "country", "locale", "timezone")  # fmt: skip
TOUCH_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


LIMIT = RateLimit()


def _thanks() -> Response:
    target = runtime().settings.form_redirect_url
    if target:
        return Response(status=303, headers={"Location": target})
    return Response(render_template("form_thanks.html"), status=200)


@blueprint.post("/forms/<form>")
def submit(form: str) -> Response:
    if not FORM_NAME.match(form):
        return Response(render_template("form_error.html", problems=["unknown form"]), 404)
    now = request_now()
    if not LIMIT.allow(request.remote_addr or "", now):
        return Response(
            render_template("form_error.html", problems=["too many submissions, try later"]),
            status=429,
            headers={"Retry-After": "60"},
        )
    posted = request.form
    if posted.get(HONEYPOT):
        return _thanks()  # a bot: same answer, nothing stored
    data: dict[str, object] = {k: posted[k] for k in LEAD_FIELDS if posted.get(k)}
    touch = {k: posted[k] for k in TOUCH_FIELDS if posted.get(k)}
    data["touch"] = {"channel": "website form", "campaign": form, **touch}
    data.setdefault("source", "website")
    if "consent" in posted or "consent_text" in posted:
        data["consent"] = {
            "purpose": "marketing",
            "granted": posted.get("consent") in ("yes", "on", "true", "1"),
            "text_version": posted.get("consent_text") or None,
            "source": f"form {form}",
        }
    rt = runtime()
    try:
        lead_input = parse_lead(data, fold_subaddress=rt.settings.fold_subaddress)
    except InvalidInput as error:
        problems = [f"{e.path}: {e.message}" for e in error.errors]
        return Response(render_template("form_error.html", problems=problems), status=400)
    for attempt in range(3):
        try:
            with rt.sessions.begin() as session:
                lead, _ = take(session, rt.content, rt.settings, lead_input, now, f"form {form}")
                record(session, rt.content, rt.settings, lead, "form_submitted",
                       {"form": form, **touch}, now, origin="form")  # fmt: skip
            break
        except IntegrityError:  # the same person posting twice at once
            if attempt == 2:
                raise
    return _thanks()
