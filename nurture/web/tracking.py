"""Open pixel and click redirect: unauthenticated, signed, and never forgeable.

- The pixel always answers with the image, whatever the token.
- A click redirects only to an address we signed: the one its link carries (`/c/<token>`,
  campaign parameters included), or, for links sent before they carried it
  (`/c/<token>/<index>`), the URL stored for that link of that delivery plus our
  campaign parameters. A tampered, truncated or foreign token gets a 404 page, never a
  redirect; nothing in the request can choose the destination.
- A hit is written to this process's spool file before the answer (nurture/spool.py)
  and nothing else happens in the request: a worker classifies it and records its
  event, score and promotion about a second later (nurture/hits.py).
- Recording fails soft. A spool that cannot be written sends the hit straight to the
  database. When that fails too, the pixel still answers the image and counts the open
  as dropped; a click answers a page that retries by itself (503) rather than lose it.
- A click on an older link needs its delivery's links: from this process's cache, else
  one read. When the database cannot answer that read, the same retry page, never an
  error. A link that carries its target never needs the database before its answer.
See docs/tracking.md, "Faults".
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
from sqlalchemy.exc import SQLAlchemyError

from nurture.core.links import campaign_target, safe_redirect_target
from nurture.runtime import Runtime
from nurture.spool import Unrecorded
from nurture.tracking import Tokens, tokens_for
from nurture.web import request_now, runtime

log = logging.getLogger(__name__)
blueprint = Blueprint("tracking", __name__, template_folder="templates")

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NO_STORE = {"Cache-Control": "no-store, max-age=0", "Referrer-Policy": "no-referrer"}
# A PostgreSQL restart takes seconds: the retry page asks again after this many.
RETRY_AFTER = 5
# The retry page is static apart from its own link: nothing on it may run, and no other
# site may frame it (as every page: nurture.web.headers).
RETRY_PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; frame-ancestors 'none'"
)


class Faults:
    """What this process answered without recording it or reaching the link, for /metrics.

    Counters of this process since it started, like the spool's own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.opens_dropped = 0  # answered with the image, recorded nowhere
        self.retry_pages: dict[str, int] = {"links_unavailable": 0, "not_recorded": 0}

    def dropped(self) -> None:
        with self._lock:
            self.opens_dropped += 1

    def retried(self, reason: str) -> None:
        with self._lock:
            self.retry_pages[reason] += 1


def faults() -> Faults:
    found: Faults = current_app.extensions.setdefault("nurture.tracking_faults", Faults())
    return found


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
            _record(delivery_id, "open", None, None)
        except Exception:  # the image must always come back
            # A 503 would not bring the open back: mail clients and image proxies do
            # not fetch an image again, and a reader would see a broken image.
            faults().dropped()
            log.exception("open of delivery %s dropped: not recorded anywhere", delivery_id)
    return _pixel()


@blueprint.route("/c/<token>", methods=["GET", "HEAD"])
def click(token: str) -> Response:
    """A click link that carries its target: no database read on the way."""
    carried = _tokens().read_link(token)
    if carried is None:
        return _not_found()
    target = safe_redirect_target(carried.target)  # signed by us, and checked again
    if target is None:
        return _not_found()
    return _redirect(carried.delivery_id, carried.link, target)


@blueprint.route("/c/<token>/<int:link>", methods=["GET", "HEAD"])
def click_stored(token: str, link: int) -> Response:
    """A click link sent before links carried their target: the target is looked up."""
    delivery_id = _tokens().read_click(token)
    if delivery_id is None:
        return _not_found()
    rt = runtime()
    try:
        row = _links(rt, delivery_id)
    except (SQLAlchemyError, rt.reader.dialect.loaded_dbapi.Error) as error:
        log.warning("links of delivery %s unavailable, retry page: %s", delivery_id, error)
        return _retry_later("links_unavailable")
    if row is None or link >= len(row.links):
        return _not_found()
    target = safe_redirect_target(row.links[link])
    if target is None:
        return _not_found()
    target = campaign_target(target, row.sequence_id, row.step_id)
    return _redirect(delivery_id, link, target)


def _redirect(delivery_id: int, link: int, target: str) -> Response:
    try:
        _record(delivery_id, "click", link, target)
    except Unrecorded as error:  # the reader's retry will record it
        log.error("click of delivery %s not recorded, retry page: %s", delivery_id, error)
        return _retry_later("not_recorded")
    except Exception:  # a bug, not a fault: a retry would meet it again
        log.exception("could not record a click for delivery %s", delivery_id)
    return Response(status=302, headers={"Location": target, **NO_STORE})


def _not_found() -> Response:
    response = Response(render_template("link_invalid.html"), status=404)
    response.headers.update(NO_STORE)
    return response


def _retry_later(reason: str) -> Response:
    """A page that asks again by itself: a meta refresh, since it may run no script. The
    path is one of the click routes', its token already checked."""
    faults().retried(reason)
    again = request.path
    page = render_template("click_retry.html", seconds=RETRY_AFTER, again=again)
    response = Response(page, status=503)
    response.headers.update(NO_STORE)
    response.headers["Retry-After"] = str(RETRY_AFTER)
    response.headers["Content-Security-Policy"] = RETRY_PAGE_POLICY
    return response


def _record(delivery_id: int, kind: str, link: int | None, url: str | None) -> None:
    rt = runtime()
    recorded = rt.spool.record(
        delivery_id,
        kind,
        link,
        url,
        request.method,
        _client_ip(),
        request.environ.get("HTTP_USER_AGENT", ""),  # not `user_agent`: an object per hit
        request_now(),
    )
    if not recorded.spooled:
        log.error(
            "could not record %s for delivery %s in the spool (%s): written straight to"
            " the database",
            "an open" if kind == "open" else "a click",
            delivery_id,
            rt.spool.failure,
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
