"""Qualification in the database: the category and reasons stored on the lead, and the
route each category takes.

- no_interest: the lead is disqualified (stage `disqualified`): it leaves every
  sequence, is never mailed and never promoted; the reason codes stay on it.
- sales_ready: promoted to sales at once (with its reasons).
- long_term_nurture: nothing special: sequences and scoring take it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content
from nurture.core import scoring
from nurture.core.qualification import NO_INTEREST, SALES_READY, qualify
from nurture.enrollment import set_stage
from nurture.leads import Draft, profile_of
from nurture.models import Lead


@dataclass(frozen=True)
class Assessment:
    """What the rules say of a lead now, and the move it calls for (at most one)."""

    grade: str | None
    category: str
    reasons: list[dict[str, str]]
    disqualify: str | None = None  # the stage change's cause
    promote: str | None = None  # the promotion's reason


def assess(content: Content, lead: Lead | Draft) -> Assessment | None:
    """The lead's grade, category and reasons, and whether it is to be disqualified or
    promoted; None without qualification rules."""
    model = content.qualification
    if model is None:
        return None
    profile = profile_of(lead)
    grade = lead.grade
    if content.scoring is not None:
        # Kept on the lead now, not at its first scored event: a lead promoted here is
        # pushed to the CRM (and shown) with the grade its rules were checked against.
        grade = scoring.grade(content.scoring, profile).grade
    verdict = qualify(model, profile, grade=grade, score=lead.score)
    reasons = [reason.as_dict() for reason in verdict.reasons]
    if verdict.category == NO_INTEREST and lead.stage not in ("disqualified", "customer"):
        cause = "qualification: " + ", ".join(reason.code for reason in verdict.reasons)
        return Assessment(grade, verdict.category, reasons, disqualify=cause)
    if verdict.category == SALES_READY and lead.stage in ("subscriber", "lead", "mql", "recycled"):
        reason = "qualified sales-ready: " + "; ".join(r.message for r in verdict.reasons)
        return Assessment(grade, verdict.category, reasons, promote=reason)
    return Assessment(grade, verdict.category, reasons)


def qualify_lead(
    session: Session, content: Content, settings: Settings, lead: Lead, now: datetime
) -> None:
    """Set the lead's category and reasons from the qualification rules (if any)."""
    found = assess(content, lead)
    if found is None:
        return
    lead.grade = found.grade
    lead.category = found.category
    lead.reasons = found.reasons
    if found.disqualify is not None:
        set_stage(session, content, lead, "disqualified", now, cause=found.disqualify)
    elif found.promote is not None:
        from nurture.promotion import promote

        promote(session, content, lead, found.promote, now, settings.sla)
