"""One lead's page, read from the database: its profile, field history, consents,
suppression, score and its reasons, enrollments, the emails of its sequences with why
each was or wasn't sent, and its timeline (merged by nurture.core.timeline). No Flask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.console.users import visible_leads
from nurture.content import Content, UnknownVersion
from nurture.core import timeline as tl
from nurture.core.access import Account
from nurture.decisions import story
from nurture.models import (
    Consent,
    CrmPush,
    Delivery,
    Enrollment,
    Event,
    FieldHistory,
    Lead,
    Promotion,
    SalesFeedback,
    ScoreChange,
    Suppression,
    TrackingHit,
)
from nurture.scores import explain
from nurture.suppression import legacy_digest, list_key, suppression_reason

# The most recent rows of each kind the timeline shows: a scanner walking every link of
# every email makes thousands of hits, and the page must still open at once.
LATEST = 500
TRACKED = ("email_opened", "email_clicked")  # told by their hits, with the label


@dataclass(frozen=True)
class Place:
    sequence_id: str
    version: str
    cycle: int
    status: str
    step_id: str
    step_started_at: datetime
    due_at: datetime | None
    waiting_for: str | None
    note: str | None
    trigger: str | None
    entered_at: datetime
    left_at: datetime | None
    exit_reason: str | None
    emails: tuple[tl.EmailVerdict, ...]  # empty when its version is not stored


@dataclass(frozen=True)
class Suppressed:
    reason: str | None  # why the lead may not be mailed now (None: it may)
    listed: str | None  # the suppression list's reason for its address, if on it
    consent: bool | None  # the latest marketing consent decision


@dataclass
class _State:
    """What `suppression_reason` reads of a lead."""

    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    stage: str
    category: str | None
    consent: bool | None


@dataclass(frozen=True)
class LeadPage:
    lead: Lead
    profile: tuple[tuple[str, Any], ...]
    history: Sequence[FieldHistory]
    consents: Sequence[Consent]
    suppressed: Suppressed
    score_changes: Sequence[ScoreChange]
    score_explained: tuple[str, ...]
    places: tuple[Place, ...]
    timeline: tuple[tl.Moment, ...]


def visible_lead(session: Session, public_id: str, user: Account) -> Lead | None:
    """The lead with this id if `user` may see it; None whether it does not exist or
    is another rep's, so the answer does not tell which."""
    if len(public_id) > 24:
        return None
    return session.scalar(visible_leads(select(Lead).where(Lead.public_id == public_id), user))


def profile(lead: Lead) -> tuple[tuple[str, Any], ...]:
    """Every column of the lead, in the order a person reads them."""
    name = " ".join(filter(None, (lead.first_name, lead.last_name))) or None
    return (
        ("Name", name),
        ("Email", lead.email),
        ("Id", lead.public_id),
        ("Company", lead.company),
        ("Job title", lead.job_title),
        ("Company size", lead.company_size),
        ("Country", lead.country),
        ("Timezone", lead.timezone),
        ("Locale", lead.locale),
        ("Source", lead.source),
        ("Campaign", lead.campaign),
        ("Tags", ", ".join(lead.tags or ()) or None),
        ("Category", lead.category),
        ("Category reasons", "; ".join(_reason(r) for r in lead.reasons or ()) or None),
        ("Rep", " ".join(filter(None, (lead.rep_name, lead.rep_email, lead.rep_phone))) or None),
        ("Promotion cycle", lead.cycle),
        ("Behaviour points", round(lead.behaviour_points or 0.0, 2)),
        ("Last activity", lead.last_activity_at),
        ("First touch", _touch(lead.first_touch)),
        ("Latest touch", _touch(lead.latest_touch)),
        ("Unsubscribed", lead.unsubscribed_at),
        ("Bounced", lead.bounced_at),
        ("Created", lead.created_at),
        ("Updated", lead.updated_at),
        *((f"fields.{key}", value) for key, value in sorted((lead.fields or {}).items())),
    )


def _touch(touch: dict[str, Any] | None) -> str | None:
    if not touch:
        return None
    return ", ".join(f"{key} {value}" for key, value in touch.items() if key != "at") or None


def lead_page(
    session: Session, content: Content, settings: Settings, lead: Lead, now: datetime
) -> LeadPage:
    decisions = story(session, lead.id)
    deliveries = {
        d.id: d for d in session.scalars(select(Delivery).where(Delivery.lead_id == lead.id))
    }
    subjects = {(d.sequence_id, d.step_id): d.subject for d in deliveries.values() if d.subject}
    enrollments = list(
        session.scalars(
            select(Enrollment).where(Enrollment.lead_id == lead.id).order_by(Enrollment.id)
        )
    )
    history = _latest(session, FieldHistory, lead.id)
    consents = _latest(session, Consent, lead.id)
    changes = _latest(session, ScoreChange, lead.id)
    facts = tl.Facts(
        decisions=decisions,
        subjects=subjects,
        hits=_hits(session, lead.id, deliveries),
        scores=[tl.ScorePoints(c.at, c.points, c.rule, c.reason, c.score_after) for c in changes],
        pushes=_pushes(session, lead.id),
        answers=_answers(session, lead.id),
        fields=[tl.FieldChange(h.at, h.field, h.old_value, h.new_value, h.source) for h in history],
        consents=[
            tl.ConsentChange(c.at, c.purpose, c.granted, c.source, c.text_version) for c in consents
        ],
        events=_events(session, lead.id),
    )
    explained: list[str] = []
    if content.scoring is not None:
        explained = explain(session, content.scoring, lead, now)
    return LeadPage(
        lead=lead,
        profile=profile(lead),
        history=history,
        consents=consents,
        suppressed=_suppressed(session, settings, lead, consents),
        score_changes=changes,
        score_explained=tuple(explained),
        places=tuple(_place(session, content, e, decisions, subjects) for e in enrollments),
        timeline=tl.timeline(facts),
    )


def _latest(session: Session, model: Any, lead_id: int) -> list[Any]:
    """The latest rows of a per-lead table, newest first (each has `lead_id`, `at`)."""
    return list(
        session.scalars(
            select(model)
            .where(model.lead_id == lead_id)
            .order_by(model.at.desc(), model.id.desc())
            .limit(LATEST)
        )
    )


def _hits(session: Session, lead_id: int, deliveries: dict[int, Delivery]) -> list[tl.Hit]:
    rows = session.scalars(
        select(TrackingHit)
        .where(TrackingHit.lead_id == lead_id)
        .order_by(TrackingHit.at.desc(), TrackingHit.id.desc())
        .limit(LATEST)
    )
    found = []
    for hit in rows:
        email = deliveries.get(hit.delivery_id)
        if email is None:
            continue
        found.append(
            tl.Hit(
                hit.at,
                hit.kind,
                hit.classification,
                email.sequence_id,
                email.step_id,
                hit.url,
                tuple(hit.reasons or ()),
            )
        )
    return found


def _pushes(session: Session, lead_id: int) -> list[tl.Push]:
    rows = session.scalars(
        select(CrmPush)
        .join(Promotion, Promotion.id == CrmPush.promotion_id)
        .where(Promotion.lead_id == lead_id)
        .order_by(CrmPush.id)
    )
    return [
        tl.Push(
            p.created_at, p.kind, p.status, p.attempts, p.last_status, p.last_error, p.delivered_at
        )
        for p in rows
    ]


def _answers(session: Session, lead_id: int) -> list[tl.Answer]:
    rows = session.scalars(
        select(SalesFeedback)
        .join(Promotion, Promotion.id == SalesFeedback.promotion_id)
        .where(Promotion.lead_id == lead_id)
        .order_by(SalesFeedback.id)
    )
    return [tl.Answer(f.occurred_at, f.status, f.amount, f.reason) for f in rows]


def _events(session: Session, lead_id: int) -> list[tl.Happened]:
    rows = session.scalars(
        select(Event)
        .where(Event.lead_id == lead_id)
        .order_by(Event.occurred_at.desc(), Event.id.desc())
        .limit(LATEST)
    )
    found = []
    for event in rows:
        if event.name in TRACKED and event.origin == "tracking":
            continue  # told by its hit, with the label and the reasons
        details = tuple(
            (str(key), str(value))
            for key, value in sorted((event.properties or {}).items())
            if isinstance(value, str | int | float) and not isinstance(value, bool)
        )[:6]
        found.append(tl.Happened(event.occurred_at, event.name, event.origin, details))
    return found


def _suppressed(
    session: Session, settings: Settings, lead: Lead, consents: list[Consent]
) -> Suppressed:
    marketing = [c for c in consents if c.purpose == "marketing"]
    consent = marketing[0].granted if marketing else None  # newest first
    state = _State(lead.unsubscribed_at, lead.bounced_at, lead.stage, lead.category, consent)
    reason = suppression_reason(state, settings.consent_required)
    # Read only: the list is keyed; a page never re-keys or writes it.
    digests = (list_key(settings).digest(lead.email), legacy_digest(lead.email))
    listed = session.scalar(
        select(Suppression.reason).where(Suppression.email_hash.in_(digests)).limit(1)
    )
    return Suppressed(reason, listed, consent)


def _place(
    session: Session,
    content: Content,
    row: Enrollment,
    decisions: list[Any],
    subjects: dict[tuple[str, str], str],
) -> Place:
    try:
        sequence = content.pinned(session, row.sequence_id, row.version)
        steps = [tl.EmailStep(s.id, s.template) for s in sequence.email_steps()]
    except UnknownVersion:
        steps = []
    here = tl.Place(row.sequence_id, row.status, row.step_id, row.due_at, row.exit_reason, row.note)
    return Place(
        sequence_id=row.sequence_id,
        version=row.version,
        cycle=row.cycle,
        status=row.status,
        step_id=row.step_id,
        step_started_at=row.step_started_at,
        due_at=row.due_at,
        waiting_for=row.waiting_for,
        note=row.note,
        trigger=row.trigger,
        entered_at=row.entered_at,
        left_at=row.left_at,
        exit_reason=row.exit_reason,
        emails=tl.email_verdicts(here, steps, decisions, subjects),
    )


def _reason(reason: object) -> str:
    """A qualification reason as stored (`{"code", "message"}`), as a person reads it."""
    if isinstance(reason, dict):
        code, message = reason.get("code"), reason.get("message")
        return f"{message} ({code})" if message and code else str(message or code or "")
    return str(reason)
