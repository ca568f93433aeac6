"""Promotion to sales: once per lead per cycle, with a rep, pushed to the CRM.

Everything happens in the caller's transaction: the promotion row (unique per lead
and cycle), the stage change, the exits from nurture sequences, the rep, and the
outbox row that the CRM pusher delivers. Either all of it is committed or none.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.accounts import block
from nurture.content import Content
from nurture.core.business_time import business_deadline, calendar_for
from nurture.core.routing import Assignment, NoRoute, route
from nurture.core.scoring import ScoringModel, grade
from nurture.core.timing import resolve_timezone
from nurture.crm import enqueue
from nurture.enrollment import leave, set_stage
from nurture.leads import profile_of
from nurture.models import Delivery, Event, Lead, Promotion, ScoreChange, StageChange

OPEN_STATUSES = ("pending", "accepted", "opportunity")
FALLBACK_ZONE = "Europe/Paris"  # a lead with no timezone nor country, and no rep


def rep_load(session: Session) -> dict[str, int]:
    """Open promotions per rep email: what round-robin weighs against capacity."""
    rows = session.execute(
        select(Promotion.rep_email, func.count())
        .where(Promotion.status.in_(OPEN_STATUSES), Promotion.rep_email.is_not(None))
        .group_by(Promotion.rep_email)
    )
    return {email: count for email, count in rows if email}


def promote(
    session: Session,
    content: Content,
    lead: Lead,
    reason: str,
    now: datetime,
    sla: timedelta,
    event_id: int | None = None,
) -> Promotion | None:
    """Hand the lead to sales; None when it already was in this cycle."""
    if lead.stage in ("sql", "opportunity", "customer", "disqualified"):
        return None
    promotion = Promotion(
        lead_id=lead.id,
        cycle=lead.cycle,
        reason=reason[:500],
        status="pending",
        status_at=now,
        escalations=0,
        sla_breached=False,
        sla_due_at=now + sla,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(promotion)
    except IntegrityError:
        return None  # promoted already in this cycle (maybe by another process just now)
    routing = content.routing
    assignment: Assignment | None = None
    if routing is not None:
        try:
            assignment = route(routing, profile_of(lead), rep_load(session))
        except NoRoute:
            assignment = None
        if assignment is not None:
            promotion.rep_name = assignment.rep.name
            promotion.rep_email = assignment.rep.email
            promotion.routing_rule = assignment.rule
            lead.rep_name = assignment.rep.name
            lead.rep_email = assignment.rep.email
            lead.rep_phone = assignment.rep.phone
    rep_zone = assignment.rep.timezone if assignment is not None else None
    promotion.sla_due_at = sla_deadline(now, sla, rep_zone, lead)
    leave(session, lead.id, "promoted to sales", now)
    set_stage(session, content, lead, "sql", now, cause=f"promoted: {reason}", event_id=event_id)
    session.flush()
    account = block(session, content, lead.account_id, now)
    body = payload(session, lead, promotion, now, content.scoring, account)
    enqueue(session, "lead.promoted", body, now, promotion.id)
    return promotion


def sla_deadline(start: datetime, sla: timedelta, rep_timezone: str | None, lead: Lead) -> datetime:
    """When sales must have answered: `sla` counted in business hours of the rep's
    calendar (their timezone, Monday to Friday, their country's public holidays), as
    the SLA report counts them. Without a rep, the lead's own calendar."""
    zone = rep_timezone or resolve_timezone(lead.timezone, lead.country, FALLBACK_ZONE).key
    calendar = calendar_for(zone, FALLBACK_ZONE, range(start.year - 1, start.year + 3))
    return business_deadline(start, sla.total_seconds() / 3600, calendar)


def payload(
    session: Session,
    lead: Lead,
    promotion: Promotion,
    now: datetime,
    scoring_model: ScoringModel | None = None,
    account: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """What the CRM receives: who, how hot and why, who handles it, what they read,
    and the company it belongs to (`account`: `nurture.accounts.block`).
    `fit` lists the fit rules that give the grade (the scoring model's, when there is
    one): a lead promoted at intake has no score change yet, and still a reason."""
    stages = session.scalars(
        select(StageChange).where(StageChange.lead_id == lead.id).order_by(StageChange.at)
    )
    changes = session.scalars(
        select(ScoreChange)
        .where(ScoreChange.lead_id == lead.id)
        .order_by(ScoreChange.at.desc())
        .limit(50)
    )
    clicks = session.execute(
        select(
            Event.occurred_at,
            Delivery.sequence_id,
            Delivery.step_id,
            Delivery.kind,
            Delivery.subject,
            Event.properties,
        )
        .join(Delivery, Delivery.id == Event.delivery_id)
        .where(
            Event.lead_id == lead.id,
            Event.name == "email_clicked",
            Event.classification == "human",
        )
        .order_by(Event.occurred_at.desc())
        .limit(20)
    )
    return payload_of(lead, promotion, stages, changes, clicks, scoring_model, account)


def payload_of(
    lead: Lead,
    promotion: Promotion,
    stages: Iterable[StageChange],
    changes: Iterable[ScoreChange],
    clicks: Iterable[Any],
    scoring_model: ScoringModel | None = None,
    account: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The payload from the rows `payload` reads (a batch passes those of the leads it
    created, which it has in memory: their stage changes, no score change, no click)."""
    return {
        "promotion": {
            "id": promotion.id,
            "cycle": promotion.cycle,
            "reason": promotion.reason,
            "promoted_at": promotion.created_at.isoformat(),
            "sla_due_at": promotion.sla_due_at.isoformat() if promotion.sla_due_at else None,
        },
        "lead": {
            "email": lead.email,
            "first_name": lead.first_name,
            "last_name": lead.last_name,
            "company": lead.company,
            "job_title": lead.job_title,
            "company_size": lead.company_size,
            "country": lead.country,
            "locale": lead.locale,
            "timezone": lead.timezone,
            "source": lead.source,
            "campaign": lead.campaign,
            "fields": lead.fields,
            "stage": lead.stage,
        },
        "score": {
            "value": lead.score,
            "grade": lead.grade,
            "fit": list(grade(scoring_model, profile_of(lead)).reasons) if scoring_model else [],
            "breakdown": [
                {
                    "points": round(c.points, 2),
                    "rule": c.rule,
                    "reason": c.reason,
                    "at": c.at.isoformat(),
                }
                for c in changes
            ],
        },
        "stage_history": [
            {"from": s.from_stage, "to": s.to_stage, "at": s.at.isoformat(), "cause": s.cause}
            for s in stages
        ],
        "rep": (
            {
                "name": promotion.rep_name,
                "email": promotion.rep_email,
                "rule": promotion.routing_rule,
            }
            if promotion.rep_email
            else None
        ),
        "engagement": [
            {
                "at": at.isoformat(),
                "sequence": sequence_id,
                "step": step_id,
                "content_kind": kind,
                "subject": subject,
                "url": (properties or {}).get("url"),
            }
            for at, sequence_id, step_id, kind, subject, properties in clicks
        ],
        "account": account,
    }
