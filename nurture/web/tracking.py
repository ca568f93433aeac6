"""Open pixel and click redirect: unauthenticated, signed, and never forgeable.

- The pixel always answers with the image, whatever the token.
- A click redirects only to the URL stored for that link of that delivery (plus our
  UTM parameters). A tampered, truncated or foreign token gets a 404 page, never a
  redirect; nothing in the request can choose the destination.
- A hit is written to this process's spool file before the answer (nurture/spool.py)
  and nothing else happens in the request: a worker classifies it and records its
  event, score and promotion about a second later (nurture/hits.py).
- Recording fails soft: a hit that cannot be written is logged, the reader still
  gets the image or the page.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from flask import Blueprint, Response, current_app, render_template, request
from sqlalchemy import Engine

from nurture.core.links import add_utm, safe_redirect_target
from nurture.runtime import Runtime
from nurture.tracking import Tokens, tokens_for
from nurture.web import request_now, runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("tracking", __name__, template_folder="templates")

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}


def _tokens() -> Tokens:
    return tokens_for(runtime().secret_key)


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
            _spool(delivery_id, "open", None, None)
        except Exception:  # the image must always come back
            log.exception("could not record an open for delivery %s", delivery_id)
    return _pixel()


@blueprint.route("/c/<token>/<int:link>", methods=["GET", "HEAD"])
def click(token: str, link: int) -> Response:
    delivery_id = _tokens().read_click(token)
    if delivery_id is None:
        return _not_found()
    row = _links(runtime(), delivery_id)
    if row is None or link >= len(row.links):
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
        _spool(delivery_id, "click", link, target)
    except Exception:  # the reader still goes where the link said
        log.exception("could not record a click for delivery %s", delivery_id)
    return Response(status=302, headers={"Location": target, **NO_STORE})


def _not_found() -> Response:
    response = Response(render_template("link_invalid.html"), status=404)
    response.headers.update(NO_STORE)
    return response


def _spool(delivery_id: int, kind: str, link: int | None, url: str | None) -> None:
    runtime().spool.append(
        delivery_id,
        kind,
        link,
        url,
        request.method,
        _client_ip(),
        request.user_agent.string or "",
        request_now(),
    )


class Links(NamedTuple):
    links: tuple[str, ...]
    sequence_id: str
    step_id: str


class LinkCache:
    """The stored links of recently clicked deliveries, least recently used out first.

    Links are stored before an email leaves and never change afterwards."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._found: OrderedDict[int, Links] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, delivery_id: int) -> Links | None:
        with self._lock:
            found = self._found.get(delivery_id)
            if found is not None:
                self._found.move_to_end(delivery_id)
            return found

    def put(self, delivery_id: int, links: Links) -> None:
        with self._lock:
            self._found[delivery_id] = links
            if len(self._found) > self.size:
                self._found.popitem(last=False)


def _links(rt: Runtime, delivery_id: int) -> Links | None:
    """A delivery's links: from the cache, or one read outside any write lock."""
    cache: LinkCache = current_app.extensions.setdefault("nurture.links", LinkCache())
    found = cache.get(delivery_id)
    if found is not None:
        return found
    row = _read_links(rt.reader, delivery_id)
    if row is None:
        return None
    links = row[0] if isinstance(row[0], list) else json.loads(row[0])  # SQLite: JSON text
    if not links:  # not sent yet: nothing to remember
        return None
    found = Links(tuple(links), row[1], row[2])
    cache.put(delivery_id, found)
    return found


LINKS_QMARK = "SELECT links, sequence_id, step_id FROM deliveries WHERE id = ?"  # sqlite3
LINKS_FORMAT = "SELECT links, sequence_id, step_id FROM deliveries WHERE id = %s"  # psycopg


def _read_links(reader: Engine, delivery_id: int) -> tuple[Any, ...] | None:
    """One statement on a pooled connection of the read engine, through the driver
    itself: this is every click's only database work, and SQLAlchemy's statement
    and result machinery cost more than the query (measured: about half the route)."""
    sql = LINKS_QMARK if reader.dialect.paramstyle == "qmark" else LINKS_FORMAT
    for attempt in (1, 2):
        connection = reader.raw_connection()
        try:
            cursor = connection.cursor()
            cursor.execute(sql, (delivery_id,))
            row = cursor.fetchone()
            cursor.close()
            return tuple(row) if row is not None else None
        except reader.dialect.loaded_dbapi.Error:
            # A pooled connection the server closed (a restart): drop it, try once more.
            connection.invalidate()
            if attempt == 2:
                raise
        finally:
            connection.close()
    return None


@blueprint.route("/c/<path:anything>", methods=["GET", "HEAD"])
def click_malformed(anything: str) -> Response:
    """A truncated or mangled click link: a page, never a redirect, never an error."""
    return _not_found()
