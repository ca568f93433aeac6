"""Liveness and Prometheus metrics."""

from __future__ import annotations

import hmac
import ipaddress
import logging
from pathlib import Path

from flask import Blueprint, Response, jsonify, request
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from nurture.alarms import gauges
from nurture.backlog import due_count
from nurture.hits import waiting
from nurture.models import CrmPush, Delivery, Enrollment, Promotion, TrackingHit
from nurture.web import request_now, runtime
from nurture.web.tracking import faults

log = logging.getLogger(__name__)
blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    """`{"status": "ok"}`, or a 503 naming what fails: this process's spool folder (a
    tracking hit could not be written there), the database; with `refused_files`, the
    authored files that are not live, each with its line and problem."""
    rt = runtime()
    failing = {}
    spool = rt.spool.check()
    if spool is not None:
        failing["spool"] = spool
    try:
        with rt.sessions() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health: the database does not answer: %s", error)
        # The driver's message names hosts and ports: kept for the log.
        failing["database"] = f"does not answer ({type(error).__name__})"
    # A refused sequence file does not stop the process (the others run), but whoever
    # watches the health sees it, by file name and line, until it is fixed.
    refused = [f"{Path(p.path).name}:{p.line}: {p.message}" for p in rt.content.problems]
    extra = {"refused_files": refused} if refused else {}
    if failing:
        response = jsonify(status="failing", failing=failing, **extra)
        response.status_code = 503
        return response
    return jsonify(status="ok", **extra)


def _metrics_refusal() -> Response | None:
    """None when this request may read the metrics. With `NURTURE_METRICS_TOKEN` set, it
    must carry `Authorization: Bearer <token>`; without, only a peer on this machine
    (a local agent) may: the figures tell how much a company sends and to how many."""
    token = runtime().settings.metrics_token
    if token is not None:
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token):
            return None
        answer = Response("send Authorization: Bearer <NURTURE_METRICS_TOKEN>\n", 401)
        answer.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return answer
    try:
        local = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        local = False
    if local:
        return None
    return Response("set NURTURE_METRICS_TOKEN to read the metrics from elsewhere\n", 403)


@blueprint.get("/metrics")
def metrics() -> Response:
    refused = _metrics_refusal()
    if refused is not None:
        refused.mimetype = "text/plain"
        return refused
    now = request_now()
    lines = _spool_metrics()
    with runtime().sessions() as session:
        lines.append("# HELP nurture_deliveries Deliveries by status.")
        lines.append("# TYPE nurture_deliveries gauge")
        for status, count in session.execute(
            select(Delivery.status, func.count()).group_by(Delivery.status)
        ):
            lines.append(f'nurture_deliveries{{status="{status}"}} {count}')
        lines.append("# HELP nurture_enrollments Enrollments by status.")
        lines.append("# TYPE nurture_enrollments gauge")
        for status, count in session.execute(
            select(Enrollment.status, func.count()).group_by(Enrollment.status)
        ):
            lines.append(f'nurture_enrollments{{status="{status}"}} {count}')
        due = due_count(session, now)
        lines.append("# HELP nurture_due_steps Enrollments due now and not yet processed.")
        lines.append("# TYPE nurture_due_steps gauge")
        lines.append(f"nurture_due_steps {due or 0}")
        for name, model, help_text in (
            ("nurture_promotions", Promotion, "Promotions by status."),
            ("nurture_crm_pushes", CrmPush, "CRM outbox rows by status."),
        ):
            lines.append(f"# HELP {name} {help_text}")
            lines.append(f"# TYPE {name} gauge")
            for status, count in session.execute(
                select(model.status, func.count()).group_by(model.status)
            ):
                lines.append(f'{name}{{status="{status}"}} {count}')
        lines.append(
            "# HELP nurture_tracking_hits_waiting Tracking hits in the database that no"
            " worker has processed yet (their scores are still to come)."
        )
        lines.append("# TYPE nurture_tracking_hits_waiting gauge")
        lines.append(f"nurture_tracking_hits_waiting {waiting(session)}")
        failed = session.scalar(
            select(func.count()).select_from(TrackingHit).where(TrackingHit.error.is_not(None))
        )
        lines.append("# HELP nurture_tracking_hits_failed Tracking hits set aside with an error.")
        lines.append("# TYPE nurture_tracking_hits_failed gauge")
        lines.append(f"nurture_tracking_hits_failed {failed or 0}")
        breached = session.scalar(
            select(func.count()).select_from(Promotion).where(Promotion.sla_breached)
        )
        lines.append("# HELP nurture_sla_breached Promotions not accepted within the SLA.")
        lines.append("# TYPE nurture_sla_breached gauge")
        lines.append(f"nurture_sla_breached {breached or 0}")
        lines.extend(gauges(session))
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")


def _spool_metrics() -> list[str]:
    """This process's: each web process writes its own spool file and counts its own."""
    spool = runtime().spool
    unwritable = spool.check() is not None
    tracking = faults()
    return [
        "# HELP nurture_spool_unwritable 1 when this process cannot write tracking hits to"
        " its spool folder (they go straight to the database).",
        "# TYPE nurture_spool_unwritable gauge",
        f"nurture_spool_unwritable {int(unwritable)}",
        "# HELP nurture_spool_write_failures_total Tracking hits this process could not"
        " write to its spool folder.",
        "# TYPE nurture_spool_write_failures_total counter",
        f"nurture_spool_write_failures_total {spool.write_failures}",
        "# HELP nurture_tracking_hits_direct_total Of those, hits inserted straight into the"
        " database instead.",
        "# TYPE nurture_tracking_hits_direct_total counter",
        f"nurture_tracking_hits_direct_total {spool.direct}",
        "# HELP nurture_tracking_hits_dropped_total Opens answered with the image but"
        " recorded nowhere (neither the spool nor the database took them).",
        "# TYPE nurture_tracking_hits_dropped_total counter",
        f"nurture_tracking_hits_dropped_total {tracking.opens_dropped}",
        "# HELP nurture_tracking_click_retry_pages_total Clicks answered with the page that"
        " retries by itself: links_unavailable (the database could not give the delivery's"
        " links), not_recorded (neither the spool nor the database took the hit).",
        "# TYPE nurture_tracking_click_retry_pages_total counter",
        *(
            f'nurture_tracking_click_retry_pages_total{{reason="{reason}"}} {count}'
            for reason, count in sorted(tracking.retry_pages.items())
        ),
    ]
