"""Liveness and Prometheus metrics."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify
from sqlalchemy import func, select, text

from nurture.dispatch import due_count
from nurture.hits import waiting
from nurture.models import CrmPush, Delivery, Enrollment, Promotion, TrackingHit
from nurture.web import request_now, runtime

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz() -> Response:
    with runtime().sessions() as session:
        session.execute(text("SELECT 1"))
    return jsonify(status="ok")


@blueprint.get("/metrics")
def metrics() -> Response:
    now = request_now()
    lines = []
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
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
