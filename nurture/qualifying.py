"""Qualification in the database: the category and reasons stored on the lead, and the
route each category takes (promotion, nurture, or nothing)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content
from nurture.models import Lead


def qualify_lead(
    session: Session, content: Content, settings: Settings, lead: Lead, now: datetime
) -> None:
    """Set the lead's category and reasons from the qualification rules (if any)."""
    return None
