"""The figures on the console's home page, as the signed-in user may see them: leads,
active enrollments, promotions this month, the latest leads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.console.users import visible_leads
from nurture.core.access import Account
from nurture.models import Enrollment, Lead, Promotion

RECENT = 10


@dataclass(frozen=True)
class RecentLead:
    name: str | None
    email: str
    company: str | None
    stage: str
    score: int
    rep_email: str | None
    created_at: datetime


@dataclass(frozen=True)
class Overview:
    leads: int
    active_enrollments: int
    promotions_this_month: int
    month_start: datetime  # local midnight on the 1st, in the installation's timezone
    recent: tuple[RecentLead, ...]


def month_start(now: datetime, zone: str) -> datetime:
    """Midnight on the first of `now`'s month in `zone` (aware, in that zone)."""
    local = now.astimezone(ZoneInfo(zone))
    return datetime(local.year, local.month, 1, tzinfo=local.tzinfo)


def overview(session: Session, user: Account, now: datetime, zone: str) -> Overview:
    start = month_start(now, zone)
    leads = session.scalar(visible_leads(select(func.count(Lead.id)), user))
    active = session.scalar(
        visible_leads(
            select(func.count(Enrollment.id))
            .join(Lead, Lead.id == Enrollment.lead_id)
            .where(Enrollment.status == "active"),
            user,
        )
    )
    promotions = session.scalar(
        visible_leads(
            select(func.count(Promotion.id))
            .join(Lead, Lead.id == Promotion.lead_id)
            .where(Promotion.created_at >= start.astimezone(UTC), Promotion.created_at <= now),
            user,
        )
    )
    latest = session.scalars(
        visible_leads(select(Lead), user).order_by(Lead.created_at.desc(), Lead.id.desc())
        .limit(RECENT)
    )  # fmt: skip
    recent = tuple(
        RecentLead(
            name=" ".join(filter(None, (lead.first_name, lead.last_name))) or None,
            email=lead.email,
            company=lead.company,
            stage=lead.stage,
            score=lead.score,
            rep_email=lead.rep_email,
            created_at=lead.created_at,
        )
        for lead in latest
    )
    return Overview(leads or 0, active or 0, promotions or 0, start, recent)
