"""Leads in the database: create-or-update by email, the core's view of one, its events."""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.core.intake import LeadInput
from nurture.core.profile import LeadProfile, Rep
from nurture.models import Event, Lead


def profile_of(lead: Lead) -> LeadProfile:
    rep = None
    if lead.rep_name and lead.rep_email:
        rep = Rep(name=lead.rep_name, email=lead.rep_email, phone=lead.rep_phone)
    return LeadProfile(
        email=lead.email,
        first_name=lead.first_name,
        last_name=lead.last_name,
        company=lead.company,
        job_title=lead.job_title,
        company_size=lead.company_size,
        country=lead.country,
        timezone=lead.timezone,
        locale=lead.locale,
        source=lead.source,
        campaign=lead.campaign,
        stage=lead.stage,
        score=lead.score,
        tags=frozenset(lead.tags or ()),
        fields=MappingProxyType(dict(lead.fields or {})),
        rep=rep,
    )


def find_lead(session: Session, email: str) -> Lead | None:
    return session.scalar(select(Lead).where(Lead.email == email))


def upsert_lead(session: Session, data: LeadInput, now: datetime) -> tuple[Lead, bool, set[str]]:
    """Create or enrich the lead for `data.email`.

    Known values are never blanked (absent keys are left alone). Returns the lead,
    whether it was created, and the tags newly added.
    """
    lead = find_lead(session, data.email)
    created = lead is None
    if lead is None:
        lead = Lead(
            email=data.email,
            stage="lead",
            score=0,
            tags=[],
            fields={},
            created_at=now,
            updated_at=now,
        )
        session.add(lead)
    for name, value in data.values.items():
        setattr(lead, name, value)
    if data.fields:
        lead.fields = {**(lead.fields or {}), **data.fields}
    new_tags = set(data.tags) - set(lead.tags or ())
    if new_tags:
        lead.tags = sorted(set(lead.tags or ()) | new_tags)
    lead.updated_at = now
    session.flush()
    return lead, created, new_tags


def add_event(
    session: Session,
    lead: Lead,
    name: str,
    now: datetime,
    properties: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    origin: str = "api",
    delivery_id: int | None = None,
    classification: str | None = None,
) -> Event:
    event = Event(
        classification=classification,
        lead_id=lead.id,
        name=name,
        properties=properties or {},
        occurred_at=occurred_at or now,
        recorded_at=now,
        origin=origin,
        delivery_id=delivery_id,
    )
    session.add(event)
    session.flush()
    return event
