"""Floors for the tracking routes: the engine's app with its pixel and click views replaced.

Not a proposal to ship as is: each variant measures how fast a route could be if the
request did less, so the gap between the real routes and the bare one can be split.
`TRACKING_BENCH_VARIANT` picks one:

- `token`: the signed token is checked (and, for a click, the delivery's links are read
  and the redirect built); nothing is written. What Flask, the token and one lookup cost.
- `insert`: the same, plus one tracking-hit row per request in one short transaction
  (for a pixel, a single `INSERT ... SELECT`). The floor for "every hit durable now"
  with its event, score and stage effects left to a later batch.

Served by `gunicorn tracking_prototype:app` from this folder (bench/tracking.py
`--prototype VARIANT` starts it).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import bindparam, select, text

from nurture.app import create_app as create_engine_app
from nurture.core.links import add_utm, safe_redirect_target
from nurture.models import Delivery, UTCDateTime
from nurture.runtime import Runtime
from nurture.tracking import Tokens
from nurture.web.tracking import _not_found, _pixel

INSERT_OPEN = text(
    "INSERT INTO tracking_hits (delivery_id, lead_id, kind, method, ip, user_agent,"
    " classification, reasons, at)"
    " SELECT id, lead_id, 'open', :method, :ip, :agent, 'pending', '[]', :at"
    " FROM deliveries WHERE id = :id"
).bindparams(bindparam("at", type_=UTCDateTime()))
INSERT_CLICK = text(
    "INSERT INTO tracking_hits (delivery_id, lead_id, kind, link, url, method, ip,"
    " user_agent, classification, reasons, at)"
    " VALUES (:id, :lead, 'click', :link, :url, :method, :ip, :agent, 'pending', '[]', :at)"
).bindparams(bindparam("at", type_=UTCDateTime()))


def _request_values(delivery_id: int) -> dict[str, Any]:
    return {
        "id": delivery_id,
        "method": request.method,
        "ip": (request.remote_addr or "")[:64],
        "agent": (request.user_agent.string or "")[:1000],
        "at": datetime.now(UTC),
    }


def create_app() -> Flask:
    variant = os.environ.get("TRACKING_BENCH_VARIANT", "insert")
    if variant not in ("token", "insert"):
        raise SystemExit(f"TRACKING_BENCH_VARIANT={variant!r}: expected token or insert")
    app = create_engine_app()
    runtime: Runtime = app.extensions["nurture"]
    tokens = Tokens(runtime.secret_key)
    engine = runtime.engine

    def open_pixel(token: str) -> Response:
        delivery_id = tokens.read_open(token)
        if delivery_id is not None and variant == "insert":
            with engine.begin() as connection:
                connection.execute(INSERT_OPEN, _request_values(delivery_id))
        return _pixel()

    def click(token: str, link: int) -> Response:
        delivery_id = tokens.read_click(token)
        if delivery_id is None:
            return _not_found()
        with engine.begin() as connection:
            row = connection.execute(
                select(
                    Delivery.links, Delivery.sequence_id, Delivery.step_id, Delivery.lead_id
                ).where(Delivery.id == delivery_id)
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
            if variant == "insert":
                values = _request_values(delivery_id)
                connection.execute(
                    INSERT_CLICK, {**values, "lead": row.lead_id, "link": link, "url": target}
                )
        headers = {"Location": target, "Cache-Control": "no-store, max-age=0"}
        return Response(status=302, headers={**headers, "Referrer-Policy": "no-referrer"})

    app.view_functions["tracking.open_pixel"] = open_pixel
    app.view_functions["tracking.click"] = click
    return app


app = create_app()
