"""Taking leads in, one at a time: the row path (single API calls, website forms).

Each arrival enriches the one lead of that email (progressive profiling), keeps its
attribution, is qualified, and lets sequences and scoring react. Batches (the API's,
CSV chunks) take the set-based path, nurture.intake_batch, whose outcome is this
one's row for row: `take_many`, lead by lead, is the reference it is tested against.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.accounts import assign
from nurture.config import Settings
from nurture.content import Content
from nurture.core.intake import LeadInput
from nurture.db import among, hold_people, plan_afresh
from nurture.enrollment import on_created, on_tags, set_stage
from nurture.leads import upsert_lead
from nurture.models import Lead
from nurture.qualifying import qualify_lead
from nurture.scores import follow
from nurture.suppression import list_key, suppressed, suppressed_among


def take(
    session: Session,
    content: Content,
    settings: Settings,
    data: LeadInput,
    now: datetime,
    source: str = "api",
    existing: Lead | None = None,
    looked_up: bool = False,
    blocked: set[str] | None = None,
) -> tuple[Lead, bool]:
    """Create or enrich the lead; returns it and whether it was created."""
    previous_stage = existing.stage if existing is not None else None
    if existing is None and not looked_up:
        # Held, then locked: two arrivals of the same person enrich it one after the other.
        hold_people(session, [data.email])
        found = session.scalar(select(Lead).where(Lead.email == data.email).with_for_update())
        previous_stage = found.stage if found is not None else None
        existing = found

    def is_suppressed(email: str) -> bool:  # asked for new leads only
        if blocked is not None:
            return email in blocked
        return suppressed(session, list_key(settings), email, now)

    lead, created, new_tags = upsert_lead(
        session, data, now, source, existing, looked_up=True, is_suppressed=is_suppressed
    )
    assign(session, content, lead, now)
    if created:
        on_created(session, content, lead, now)
    elif "stage" in data.values and data.values["stage"] != previous_stage:
        stage = lead.stage
        lead.stage = previous_stage or "lead"
        set_stage(session, content, lead, stage, now, cause=f"set by {source}")
    if new_tags:
        on_tags(session, content, lead, new_tags, now)
    qualify_lead(session, content, settings, lead, now)
    follow(session, content, lead, now, settings.sla)  # the fit may have changed
    return lead, created


def take_many(
    session: Session,
    content: Content,
    settings: Settings,
    items: list[LeadInput],
    now: datetime,
    source: str,
) -> list[tuple[Lead, bool]]:
    """Many leads in one transaction, lead by lead, with one query to find the known
    ones (the reference of nurture.intake_batch.take_batch)."""
    # A plan cached while `leads` was small would scan the table for every batch of a
    # large import (1 s a batch at 100,000 leads): plan for the table as it is.
    plan_afresh(session)
    emails = [item.email for item in items]
    hold_people(session, emails)
    # Locked, in id order: concurrent batches touching the same people don't deadlock.
    query = (
        select(Lead).where(among(session, Lead.email, emails)).order_by(Lead.id).with_for_update()
    )
    known = {lead.email: lead for lead in session.scalars(query)}
    blocked = suppressed_among(session, list_key(settings), emails, now)
    results = []
    for item in items:
        lead, created = take(
            session, content, settings, item, now, source, known.get(item.email), True, blocked
        )
        known[item.email] = lead  # the same email twice in one batch is one lead
        results.append((lead, created))
    return results
