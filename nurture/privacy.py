"""Personal data rights: export everything held on a person, erase it, and purge
prospects who have shown no interest for the retention period.

Erasing keeps one thing: the hash of the address on the suppression list, so the
person is never mailed again even if their address comes back. Every export,
erasure and purge is logged, without personal data (the log holds the hash).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.orm import Session

from nurture.idempotency import forget
from nurture.leads import email_hash, find_lead, suppress
from nurture.models import (
    Base,
    Consent,
    CrmPush,
    Delivery,
    Enrollment,
    Event,
    FieldHistory,
    Lead,
    PrivacyLog,
    Promotion,
    SalesFeedback,
    ScoreChange,
    StageChange,
    TrackingHit,
)

PROSPECT_STAGES = ("subscriber", "lead", "mql", "recycled", "disqualified")
# What a prospect does that shows interest; opens don't count (machines open mail).
PASSIVE_EVENTS = ("email_opened", "stage_changed", "unsubscribed", "bounced")


def _row(item: Base) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in item.__table__.columns:
        value = getattr(item, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return values


def export(session: Session, email: str, now: datetime) -> dict[str, Any] | None:
    """Everything held on the person with this address, as JSON-ready values."""
    lead = find_lead(session, email)
    if lead is None:
        return None

    def rows(model: type[Base], *where: Any) -> list[dict[str, Any]]:
        return [_row(item) for item in session.scalars(select(model).where(*where))]

    promotion_ids = select(Promotion.id).where(Promotion.lead_id == lead.id)
    data = {
        "exported_at": now.isoformat(),
        "lead": _row(lead),
        "consents": rows(Consent, Consent.lead_id == lead.id),
        "field_history": rows(FieldHistory, FieldHistory.lead_id == lead.id),
        "enrollments": rows(Enrollment, Enrollment.lead_id == lead.id),
        "deliveries": rows(Delivery, Delivery.lead_id == lead.id),
        "events": rows(Event, Event.lead_id == lead.id),
        "tracking_hits": rows(TrackingHit, TrackingHit.lead_id == lead.id),
        "score_changes": rows(ScoreChange, ScoreChange.lead_id == lead.id),
        "stage_changes": rows(StageChange, StageChange.lead_id == lead.id),
        "promotions": rows(Promotion, Promotion.lead_id == lead.id),
        "sales_feedback": rows(SalesFeedback, SalesFeedback.promotion_id.in_(promotion_ids)),
        "crm_pushes": rows(CrmPush, CrmPush.promotion_id.in_(promotion_ids)),
    }
    session.add(PrivacyLog(action="export", email_hash=email_hash(lead.email), detail="", at=now))
    return data


def erase(session: Session, email: str, now: datetime, reason: str = "erasure request") -> bool:
    """Remove everything held on the person; keep only the hashed suppression entry."""
    lead = find_lead(session, email)
    suppress(session, email, "erased", now)
    if lead is None:
        session.add(
            PrivacyLog(action="erase", email_hash=email_hash(email), detail="no data held", at=now)
        )
        return False
    hashed = email_hash(lead.email)
    forget(session, lead.email)  # API answers that carried the lead
    _delete(session, [lead.id])
    session.add(PrivacyLog(action="erase", email_hash=hashed, detail=reason[:500], at=now))
    return True


def _delete(session: Session, lead_ids: list[int]) -> None:
    """Delete leads and everything hanging from them (children first: no FK surprises)."""
    promotions = select(Promotion.id).where(Promotion.lead_id.in_(lead_ids))
    for statement in (
        delete(SalesFeedback).where(SalesFeedback.promotion_id.in_(promotions)),
        delete(CrmPush).where(CrmPush.promotion_id.in_(promotions)),
        delete(Promotion).where(Promotion.lead_id.in_(lead_ids)),
        delete(TrackingHit).where(TrackingHit.lead_id.in_(lead_ids)),
        delete(ScoreChange).where(ScoreChange.lead_id.in_(lead_ids)),
        delete(StageChange).where(StageChange.lead_id.in_(lead_ids)),
        delete(Event).where(Event.lead_id.in_(lead_ids)),
        delete(Delivery).where(Delivery.lead_id.in_(lead_ids)),
        delete(Enrollment).where(Enrollment.lead_id.in_(lead_ids)),
        delete(Consent).where(Consent.lead_id.in_(lead_ids)),
        delete(FieldHistory).where(FieldHistory.lead_id.in_(lead_ids)),
        delete(Lead).where(Lead.id.in_(lead_ids)),
    ):
        session.execute(statement.execution_options(synchronize_session=False))
    session.expire_all()


def expired(session: Session, now: datetime, days: int, limit: int = 500) -> list[Lead]:
    """Prospects with no sign of interest (a click, a reply, a form…) for `days` days."""
    cutoff = now - timedelta(days=days)
    interest = exists().where(
        Event.lead_id == Lead.id,
        Event.occurred_at >= cutoff,
        Event.name.not_in(PASSIVE_EVENTS),
        or_(Event.classification.is_(None), Event.classification == "human"),
    )
    return list(
        session.scalars(
            select(Lead)
            .where(and_(Lead.stage.in_(PROSPECT_STAGES), Lead.created_at < cutoff, ~interest))
            .order_by(Lead.id)
            .limit(limit)
        )
    )


def purge(session: Session, now: datetime, days: int, dry_run: bool = False) -> list[str]:
    """Delete expired prospects (no suppression: they did not object); their addresses."""
    leads = expired(session, now, days)
    emails = [lead.email for lead in leads]
    if dry_run or not leads:
        return emails
    ids = [lead.id for lead in leads]
    for lead in leads:  # logged before the rows go
        session.add(
            PrivacyLog(
                action="retention",
                email_hash=email_hash(lead.email),
                detail=f"no interest shown for {days} days",
                at=now,
            )
        )
    _delete(session, ids)
    return emails
