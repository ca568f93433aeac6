"""Unsubscribe: a GET page that changes nothing, a POST that confirms, RFC 8058 one-click.

Mail scanners follow links, so only a POST unsubscribes. The one-click POST needs no
cookie or CSRF token (the signed token is the proof) and answers without a redirect.
"""

from __future__ import annotations

from flask import Blueprint, Response, render_template, request
from sqlalchemy import select

from nurture.enrollment import unsubscribe
from nurture.models import Delivery, Lead
from nurture.scores import score_event
from nurture.suppression import list_key
from nurture.tracking import tokens_for
from nurture.web import request_now, runtime

blueprint = Blueprint("unsubscribe", __name__, template_folder="templates")


def _delivery_id(token: str) -> int | None:
    return tokens_for(runtime().secret_key).read_unsubscribe(token)


def _page(template: str, status: int = 200, **context: object) -> Response:
    response = Response(render_template(template, **context), status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@blueprint.get("/u/<token>")
def confirm_page(token: str) -> Response:
    delivery_id = _delivery_id(token)
    if delivery_id is None:
        return _page("unsubscribe_invalid.html", 404)
    with runtime().sessions() as session:
        row = session.execute(
            select(Lead.email, Lead.unsubscribed_at)
            .join(Delivery, Delivery.lead_id == Lead.id)
            .where(Delivery.id == delivery_id)
        ).first()
    if row is None:
        return _page("unsubscribe_invalid.html", 404)
    return _page("unsubscribe_confirm.html", email=row.email, done=row.unsubscribed_at is not None)


@blueprint.post("/u/<token>")
def confirm(token: str) -> Response:
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    delivery_id = _delivery_id(token)
    rt = runtime()
    found = False
    if delivery_id is not None:
        now = request_now()
        with rt.sessions.begin() as session:
            lead = session.scalar(
                select(Lead)
                .join(Delivery, Delivery.lead_id == Lead.id)
                .where(Delivery.id == delivery_id)
            )
            if lead is not None:
                found = True
                event = unsubscribe(session, list_key(rt.settings), lead, now, delivery_id)
                if event is not None:
                    score_event(session, rt.content, lead, event, now, rt.settings.sla)
    if one_click:
        status = 200 if found else 404
        return Response(
            "unsubscribed\n" if found else "unknown link\n", status=status, mimetype="text/plain"
        )
    if not found:
        return _page("unsubscribe_invalid.html", 404)
    return _page("unsubscribe_done.html")
