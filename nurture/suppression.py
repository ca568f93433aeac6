"""Whether a lead may be mailed now: unsubscribed, bounced, disqualified, consent.

Read at the claim and again just before each chunk is handed to SMTP, with the latest
marketing consent decision read alongside the lead in one statement.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from sqlalchemy import select

from nurture.models import Consent, Lead


class Suppressible(Protocol):
    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    stage: str
    category: str | None
    consent: bool | None  # the latest marketing decision, if any


# The latest marketing consent decision, read with the lead (one index probe each).
LATEST_CONSENT = (
    select(Consent.granted)
    .where(Consent.lead_id == Lead.id, Consent.purpose == "marketing")
    .order_by(Consent.at.desc(), Consent.id.desc())
    .limit(1)
    .scalar_subquery()
    .label("consent")
)

# What `_suppression` reads, when the rest of the lead is not needed.
SUPPRESSION_COLUMNS = (
    Lead.id,
    Lead.unsubscribed_at,
    Lead.bounced_at,
    Lead.stage,
    Lead.category,
    LATEST_CONSENT,
)


def suppression_reason(lead: Suppressible, consent_required: bool) -> str | None:
    """Why this lead must not be mailed now, or None."""
    consent = lead.consent
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    if lead.stage == "disqualified" or lead.category == "no_interest":
        return "disqualified"
    if consent is False:
        return "consent withdrawn"
    if consent_required and consent is not True:
        return "no consent"
    return None
