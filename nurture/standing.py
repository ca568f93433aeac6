"""Where a real lead stands with a sequence, for `nurture simulate --lead`: whether it
may be mailed, its latest enrollment there, and, when it is inside, its step and what
it did in that enrollment, read as the dispatcher reads them (nurture.facts)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.claims import SETTLED
from nurture.core.journey import Facts, Position
from nurture.core.profile import LeadProfile
from nurture.core.sequences import Sequence
from nurture.core.simulation import Standing
from nurture.experiments import assignments_of, winners_of
from nurture.facts import engagement, events_of
from nurture.models import Delivery, Enrollment, Lead
from nurture.suppression import SUPPRESSION_COLUMNS, suppression_reason


def standing_of(
    session: Session,
    lead_id: int,
    profile: LeadProfile,
    sequence: Sequence,
    consent_required: bool,
) -> Standing:
    # A split assigns a real lead as the dispatcher does: by its id, or as recorded.
    testing = {sequence.id} if sequence.splits() else set()
    splits = assignments_of(session, [lead_id], testing).get((lead_id, sequence.id), {})
    winners = winners_of(session, testing).get(sequence.id, {})
    return replace(
        _standing(session, lead_id, profile, sequence, consent_required),
        lead_key=str(lead_id),
        splits=splits,
        winners=winners,
    )


def _standing(
    session: Session,
    lead_id: int,
    profile: LeadProfile,
    sequence: Sequence,
    consent_required: bool,
) -> Standing:
    row = session.execute(select(*SUPPRESSION_COLUMNS).where(Lead.id == lead_id)).one()
    refusal = suppression_reason(row, consent_required)
    latest = session.scalars(
        select(Enrollment)
        .where(Enrollment.lead_id == lead_id, Enrollment.sequence_id == sequence.id)
        .order_by(Enrollment.cycle.desc())
        .limit(1)
    ).first()
    if latest is None:
        return Standing(mail_refusal=refusal)
    if latest.status != "active":
        return Standing(mail_refusal=refusal, status=latest.status, left_at=latest.left_at)
    done = frozenset(
        session.scalars(
            select(Delivery.step_id).where(
                Delivery.enrollment_id == latest.id, Delivery.status.in_(SETTLED)
            )
        )
    )
    engaged = engagement(session, [latest.id])
    events = events_of(session, [latest], {latest.id: sequence}).get(lead_id, [])
    facts = Facts(
        lead=profile,
        clicked=engaged["email_clicked"].get(latest.id, frozenset()),
        opened=engaged["email_opened"].get(latest.id, frozenset()),
        done=done,
        events=tuple(e for e in events if e.occurred_at >= latest.entered_at),
    )
    return Standing(
        mail_refusal=refusal,
        status="active",
        position=Position(latest.step_id, latest.step_started_at),
        facts=facts,
    )
