"""Open pixel and click redirect: unauthenticated, signed, and never forgeable.

- The pixel always answers with the image, whatever the token.
- A click redirects only to the URL stored for that link of that delivery (plus our
  UTM parameters). A tampered, truncated or foreign token gets a 404 page, never a
  redirect; nothing in the request can choose the destination.
- Recording fails soft: a hit that cannot be stored is logged, the reader still
  gets the image or the page.
"""

from __future__ import annotations

import base64
import logging
from datetime import datetime, timedelta

from flask import Blueprint, Response, render_template, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from nurture.core.engagement import Click, Hit, Rules, Verdict, classify
from nurture.core.links import add_utm, safe_redirect_target
from nurture.evidence import record
from nurture.models import Delivery, Event, Lead, TrackingHit
from nurture.scores import rescore_leads
from nurture.tracking import Tokens
from nurture.web import request_now, runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("tracking", __name__, template_folder="templates")

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
RULES = Rules()
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}


def _tokens() -> Tokens:
    return Tokens(runtime().secret_key)


def _client_ip() -> str:
    # Behind a proxy, configure ProxyFix so remote_addr is the client's address.
    return request.remote_addr or ""


def _pixel() -> Response:
    return Response(PIXEL, mimetype="image/gif", headers=NO_STORE)


@blueprint.route("/o/<token>.gif", methods=["GET", "HEAD"])
def open_pixel(token: str) -> Response:
    delivery_id = _tokens().read_open(token)
    if delivery_id is not None:
        try:
            _record(delivery_id, "open", None, request_now())
        except Exception:  # the image must always come back
            log.exception("could not record an open for delivery %s", delivery_id)
    return _pixel()


@blueprint.route("/c/<token>/<int:link>", methods=["GET", "HEAD"])
def click(token: str, link: int) -> Response:
    delivery_id = _tokens().read_click(token)
    if delivery_id is None:
        return _not_found()
    now = request_now()
    with runtime().sessions() as session:
        row = session.execute(
            select(Delivery.links, Delivery.sequence_id, Delivery.step_id).where(
                Delivery.id == delivery_id
            )
        ).first()
    if row is None or link >= len(row.links or ()):
        return _not_found()
    target = safe_redirect_target(row.links[link])
    if target is None:
        return _not_found()
    target = add_utm(
        target,
        {
            "utm_source": "nurture",
            "utm_medium": "email",
            "utm_campaign": row.sequence_id,
            "utm_content": row.step_id,
        },
    )
    try:
        _record(delivery_id, "click", link, now, target)
    except Exception:  # the reader still goes where the link said
        log.exception("could not record a click for delivery %s", delivery_id)
    return Response(status=302, headers={"Location": target, **NO_STORE})


def _not_found() -> Response:
    response = Response(render_template("link_invalid.html"), status=404)
    response.headers.update(NO_STORE)
    return response


def _record(
    delivery_id: int, kind: str, link: int | None, now: datetime, url: str | None = None
) -> Verdict | None:
    rt = runtime()
    with rt.sessions.begin() as session:
        delivery = session.get(Delivery, delivery_id)
        if delivery is None:
            return None
        verdict = classify(_hit(session, delivery, kind, link, now), RULES)
        if verdict.classification == "scanner":
            _relabel(session, delivery, verdict, now)
        lead = session.get(Lead, delivery.lead_id)
        assert lead is not None
        event_name = "email_opened" if kind == "open" else "email_clicked"
        properties = {
            "message_id": delivery.message_id,
            "sequence": delivery.sequence_id,
            "step": delivery.step_id,
            "kind": delivery.kind,
            "template": delivery.template,
            "classification": verdict.classification,
        }
        if url is not None:
            properties.update(url=url, link=str(link))
        event, _ = record(
            session,
            rt.content,
            rt.settings,
            lead,
            event_name,
            properties,
            now,
            origin="tracking",
            delivery_id=delivery.id,
            classification=verdict.classification,
        )
        session.add(
            TrackingHit(
                delivery_id=delivery.id,
                lead_id=delivery.lead_id,
                kind=kind,
                link=link,
                url=url,
                method=request.method,
                ip=_client_ip()[:64],
                user_agent=(request.user_agent.string or "")[:1000],
                classification=verdict.classification,
                reasons=list(verdict.reasons),
                event_id=event.id,
                at=now,
            )
        )
        return verdict


def _relabel(session: Session, delivery: Delivery, verdict: Verdict, now: datetime) -> None:
    """A scanner caught now was also behind this delivery's "human" clicks just before
    (a gateway that walks every link): label them too, and re-score the lead."""
    earlier = list(
        session.scalars(
            select(TrackingHit).where(
                TrackingHit.delivery_id == delivery.id,
                TrackingHit.kind == "click",
                TrackingHit.classification != "scanner",
                TrackingHit.at >= now - RULES.lookback,
            )
        )
    )
    if not earlier:
        return
    for hit in earlier:
        hit.classification = "scanner"
        hit.reasons = [*hit.reasons, *(f"re-labelled: {r}" for r in verdict.reasons)]
    session.execute(
        update(Event)
        .where(Event.id.in_([h.event_id for h in earlier if h.event_id is not None]))
        .values(classification="scanner")
    )
    model = runtime().content.scoring
    if model is not None:
        rescore_leads(session, model, [delivery.lead_id], now)


def _hit(session: Session, delivery: Delivery, kind: str, link: int | None, now: datetime) -> Hit:
    others: tuple[Click, ...] = ()
    if kind == "click":
        since = now - RULES.lookback
        others = tuple(
            Click(at, index)
            for at, index in session.execute(
                select(TrackingHit.at, TrackingHit.link).where(
                    TrackingHit.delivery_id == delivery.id,
                    TrackingHit.kind == "click",
                    TrackingHit.at >= since,
                    TrackingHit.at <= now + timedelta(seconds=1),
                )
            )
            if index is not None
        )
    links = len(delivery.links or ()) - (1 if delivery.honeypot is not None else 0)
    return Hit(
        kind="open" if kind == "open" else "click",
        at=now,
        delivered_at=delivery.sent_at,
        method=request.method,
        user_agent=request.user_agent.string or "",
        ip=_client_ip(),
        link_index=link,
        links_in_email=max(links, 0),
        honeypot_index=delivery.honeypot,
        other_clicks=others,
    )


@blueprint.route("/c/<path:anything>", methods=["GET", "HEAD"])
def click_malformed(anything: str) -> Response:
    """A truncated or mangled click link: a page, never a redirect, never an error."""
    return _not_found()
