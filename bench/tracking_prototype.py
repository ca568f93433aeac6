"""Floors for the tracking routes: the engine's app with its pixel and click views replaced.

Not a proposal to ship as is: each variant measures how fast a route could be if the
request did less, so the gap between the real routes and the bare one can be split.
`TRACKING_BENCH_VARIANT` picks one:

- `token`: the signed token is checked (and, for a click, the delivery's links are read
  and the redirect built); nothing is written. What Flask, the token and one lookup cost.
- `insert`: the same, plus one tracking-hit row per request in one short transaction
  (for a pixel, a single `INSERT ... SELECT`). The floor for "every hit durable now"
  with its event, score and stage effects left to a later batch.
- `batch`: the same rows, but the request only queues them; a thread of the worker
  writes whatever has queued up in one transaction (a worker that stops writes the
  rest first). A hit is durable a few milliseconds after its answer instead of before.
- `group`: as `batch`, but each request waits for the commit of the transaction that
  holds its row before answering (group commit): durable before the answer, as now.

Served by `gunicorn tracking_prototype:app` from this folder (bench/tracking.py
`--prototype VARIANT` starts it).
"""

from __future__ import annotations

import atexit
import os
import queue
import threading
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import Engine, TextClause, bindparam, create_engine, select, text

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


Row = tuple[TextClause, dict[str, Any], threading.Event]


class Batcher:
    """Rows queued by requests, written by one thread, many per transaction; each row's
    event is set once its transaction has committed."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.pending: queue.SimpleQueue[Row] = queue.SimpleQueue()
        self.lock = threading.Lock()  # one writer at a time: the thread, or the last flush
        self.thread: threading.Thread | None = None

    def add(self, statement: TextClause, values: dict[str, Any]) -> threading.Event:
        with self.lock:
            if self.thread is None:  # started in the worker, after gunicorn's fork
                self.thread = threading.Thread(target=self._run, daemon=True)
                self.thread.start()
                atexit.register(self.flush)
        done = threading.Event()
        self.pending.put((statement, values, done))
        return done

    def _run(self) -> None:
        while True:
            first = self.pending.get()
            with self.lock:
                self._write([first])

    def flush(self) -> None:
        with self.lock:
            self._write([])

    def _write(self, rows: list[Row]) -> None:
        while True:
            try:
                rows.append(self.pending.get_nowait())
            except queue.Empty:
                break
        if not rows:
            return
        by_statement: dict[TextClause, list[dict[str, Any]]] = {}
        for statement, values, _ in rows:
            by_statement.setdefault(statement, []).append(values)
        with self.engine.begin() as connection:
            for statement, many in by_statement.items():
                connection.execute(statement, many)
        for _, _, done in rows:
            done.set()


def create_app() -> Flask:
    variant = os.environ.get("TRACKING_BENCH_VARIANT", "insert")
    if variant not in ("token", "insert", "batch", "group"):
        raise SystemExit(
            f"TRACKING_BENCH_VARIANT={variant!r}: expected token, insert, batch or group"
        )
    queued = variant in ("batch", "group")
    app = create_engine_app()
    runtime: Runtime = app.extensions["nurture"]
    tokens = Tokens(runtime.secret_key)
    engine = runtime.engine
    batcher = Batcher(engine)
    # The engine's SQLite transactions all begin IMMEDIATE (the write lock); a click's
    # lookup needs no lock when its row is written later, by the batcher.
    reader = engine
    if queued and engine.dialect.name == "sqlite":
        reader = create_engine(runtime.settings.database_url, connect_args={"timeout": 60})

    def open_pixel(token: str) -> Response:
        delivery_id = tokens.read_open(token)
        if delivery_id is None or variant == "token":
            return _pixel()
        if queued:
            done = batcher.add(INSERT_OPEN, _request_values(delivery_id))
            if variant == "group":
                done.wait(timeout=30)
        else:
            with engine.begin() as connection:
                connection.execute(INSERT_OPEN, _request_values(delivery_id))
        return _pixel()

    def click(token: str, link: int) -> Response:
        delivery_id = tokens.read_click(token)
        if delivery_id is None:
            return _not_found()
        # `insert`: the lookup and the row in one transaction; `batch`: a read, then the queue.
        with engine.begin() if variant == "insert" else reader.connect() as connection:
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
            values = {**_request_values(delivery_id), "lead": row.lead_id, "link": link}
            values["url"] = target
            if variant == "insert":
                connection.execute(INSERT_CLICK, values)
        if queued:
            done = batcher.add(INSERT_CLICK, values)
            if variant == "group":
                done.wait(timeout=30)
        headers = {"Location": target, "Cache-Control": "no-store, max-age=0"}
        return Response(status=302, headers={**headers, "Referrer-Policy": "no-referrer"})

    app.view_functions["tracking.open_pixel"] = open_pixel
    app.view_functions["tracking.click"] = click
    return app


app = create_app()
