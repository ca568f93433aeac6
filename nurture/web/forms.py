"""Website forms: a plain form-encoded POST creates or enriches the lead and records
`form_submitted`, then sends the visitor to the configured thank-you page.

A hidden honeypot field catches bots (they get the same answer, nothing is stored);
each address may post a few times a minute (per process). The thank-you address
comes from the settings only, never from the form: no open redirect.

Forms named in `NURTURE_DOUBLE_OPT_IN_FORMS` store the submission aside instead
(nurture/confirmation.py) and a worker emails a link; `GET /forms/confirm/<token>`
shows a button and changes nothing (mail scanners follow links), its POST runs the
same intake as an ordinary form, with the consent proven by the confirmation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from flask import Blueprint, Response, render_template, request
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.confirmation import NotConfirmed, find, hold, read_token, take_pending
from nurture.core.confirmation import confirmed_lead, confirmed_properties, needs_confirmation
from nurture.core.intake import InvalidInput, LeadInput, parse_lead
from nurture.evidence import record
from nurture.intake import take
from nurture.runtime import Runtime
from nurture.web import request_now, runtime
from nurture.web.ratelimit import RateLimit

blueprint = Blueprint("forms", __name__, template_folder="templates")

HONEYPOT = "website"  # hidden with CSS in the form; people leave it empty
FORM_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
LEAD_FIELDS = ("email", "first_name", "last_name", "company", "job_title", "company_size",
               "country", "locale", "timezone")  # fmt: skip
TOUCH_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")


LIMIT = RateLimit()
T = TypeVar("T")


def _thanks(template: str = "form_thanks.html", **context: object) -> Response:
    target = runtime().settings.form_redirect_url
    if target:
        return Response(status=303, headers={"Location": target})
    return Response(render_template(template, **context), status=200)


def _page(template: str, status: int = 200, **context: object) -> Response:
    """A confirmation page: its URL holds a token, so it is neither cached nor referred."""
    response = Response(render_template(template, **context), status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _in_transaction(work: Callable[[Session], T]) -> T:
    """`work` in a transaction of its own, tried again when the same person posting
    twice at once made the other request create the row first."""
    sessions = runtime().sessions
    for attempt in range(3):
        try:
            with sessions.begin() as session:
                return work(session)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _intake(
    session: Session,
    rt: Runtime,
    form: str,
    lead_input: LeadInput,
    properties: dict[str, Any],
    now: datetime,
) -> None:
    """What a form submission does, at once or once confirmed: the lead, then the event."""
    lead, _ = take(session, rt.content, rt.settings, lead_input, now, f"form {form}")
    record(session, rt.content, rt.settings, lead, "form_submitted", properties, now, origin="form")


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
    properties: dict[str, Any] = {"form": form, **touch}
    settings = rt.settings
    if needs_confirmation(form, settings.double_opt_in_forms):
        # Nothing about the person in the leads tables until the address is confirmed.
        payload = {"lead": data, "properties": properties}
        locale = lead_input.values.get("locale")
        _in_transaction(
            lambda session: hold(session, settings, form, lead_input.email, locale, payload, now)
        )
        return _thanks("form_check_email.html", days=settings.double_opt_in_days)
    _in_transaction(lambda session: _intake(session, rt, form, lead_input, properties, now))
    return _thanks()


@blueprint.get("/forms/confirm/<token>")
def confirm_page(token: str) -> Response:
    rt = runtime()
    public_id = read_token(rt.secret_key, token)
    if public_id is None:
        return _page("link_invalid.html", 400)
    now = request_now()
    with rt.sessions() as session:
        pending = find(session, public_id)
        if pending is None or pending.expires_at <= now:
            return _page("form_confirm_gone.html", 404, expired=pending is not None)
        return _page("form_confirm.html", email=pending.email, form=pending.form)


@blueprint.post("/forms/confirm/<token>")
def confirm(token: str) -> Response:
    rt = runtime()
    public_id = read_token(rt.secret_key, token)
    if public_id is None:
        return _page("link_invalid.html", 400)
    now = request_now()

    def work(session: Session) -> NotConfirmed | None:
        found = take_pending(session, public_id, now)
        if isinstance(found, NotConfirmed):
            return found
        lead_input = parse_lead(
            confirmed_lead(found.lead, found.form), fold_subaddress=rt.settings.fold_subaddress
        )
        properties = confirmed_properties(found.properties, found.submitted_at)
        _intake(session, rt, found.form, lead_input, properties, now)
        return None

    try:
        refused = _in_transaction(work)
    except InvalidInput as error:  # checked when submitted; a stricter version may refuse it
        problems = [f"{e.path}: {e.message}" for e in error.errors]
        return _page("form_error.html", 400, problems=problems)
    if refused is not None:
        return _page("form_confirm_gone.html", 404, expired=refused.reason == "expired")
    return _thanks()
