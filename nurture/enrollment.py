"""Leads entering and leaving sequences, reacting to what they do.

The unique key (lead, sequence, cycle) is the guard: two processes reacting to the
same event enrol the lead once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.content import Content
from nurture.core.admission import (
    Occurrence,
    admission,
    exit_on_event,
    exit_on_stage,
    may_reenter,
)
from nurture.core.decisions import NOT_ENROLLED, Decision
from nurture.core.sequences import Sequence, TriggerKind
from nurture.core.timing import resolve_timezone
from nurture.decisions import note
from nurture.leads import add_event, profile_of
from nurture.models import Delivery, Enrollment, Event, Lead, StageChange
from nurture.suppression import ListKey, suppress

ENGAGEMENT = frozenset({"email_opened", "email_clicked"})
REPORTED = frozenset({"bounced", "complained", "unsubscribed"})  # about one email


def enrol(
    session: Session, content: Content, lead: Lead, occurrence: Occurrence, now: datetime
) -> list[Enrollment]:
    """Enrol the lead in every live sequence whose trigger and audience admit it; a
    trigger that fired for a lead kept out is written to the decision log, with why."""
    profile = profile_of(lead)
    entered: list[Enrollment] = []
    for sequence in content.live():
        trigger, refused = admission(sequence, occurrence, profile)
        if trigger is None:
            continue
        if refused is not None:
            why = f"not entered on {occurrence.describe()}: {refused}"
            note(session, lead.id, [Decision(NOT_ENROLLED, why, sequence.id)], now)
            continue
        enrollment = enter(session, content, lead, sequence, occurrence.describe(), now)
        if enrollment is not None:
            entered.append(enrollment)
    return entered


def enter(
    session: Session,
    content: Content,
    lead: Lead,
    sequence: Sequence,
    trigger: str,
    now: datetime,
) -> Enrollment | None:
    """Put the lead in this sequence unless it is inside, or its re-entry policy says no."""
    latest = session.scalar(
        select(Enrollment)
        .where(Enrollment.lead_id == lead.id, Enrollment.sequence_id == sequence.id)
        .order_by(Enrollment.cycle.desc())
        .limit(1)
    )
    tz = resolve_timezone(lead.timezone, lead.country, sequence.timezone)
    if latest is not None and latest.status == "active":
        return None  # inside already: nothing to decide
    if latest is not None and not may_reenter(sequence, latest.left_at, now, tz):
        why = refused_reentry(sequence, latest.left_at, trigger)
        note(session, lead.id, [Decision(NOT_ENROLLED, why, sequence.id)], now)
        return None
    content.store_versions(session, now)
    enrollment = Enrollment(
        lead_id=lead.id,
        sequence_id=sequence.id,
        version=sequence.version,
        cycle=(latest.cycle + 1) if latest else 1,
        status="active",
        step_id=sequence.first_step,
        step_started_at=now,
        due_at=now,
        priority=sequence.priority,
        trigger=trigger[:200],
        entered_at=now,
    )
    try:
        with session.begin_nested():
            session.add(enrollment)
    except IntegrityError:
        return None  # another process enrolled it first: once is what we want
    return enrollment


def refused_reentry(sequence: Sequence, left_at: datetime | None, trigger: str) -> str:
    """Why a lead that left `sequence` does not enter it again now."""
    policy = sequence.reentry
    rule = (
        "its re-entry policy does not allow entering again"
        if not policy.allowed
        else f"re-entry is allowed {policy.cooldown} after leaving"
    )
    left = f"{left_at:%Y-%m-%d}" if left_at else "?"
    return f"not entered on {trigger}: left on {left} and {rule}"


def leave(
    session: Session,
    lead_id: int,
    reason: str,
    now: datetime,
    sequence_ids: Iterable[str] | None = None,
) -> int:
    """End the lead's active enrollments (all, or those of `sequence_ids`)."""
    statement = (
        update(Enrollment)
        .where(Enrollment.lead_id == lead_id, Enrollment.status == "active")
        .values(status="exited", left_at=now, exit_reason=reason, due_at=None, waiting_for=None)
    )
    if sequence_ids is not None:
        statement = statement.where(Enrollment.sequence_id.in_(list(sequence_ids)))
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


def _active(session: Session, lead_id: int) -> list[Enrollment]:
    return list(
        session.scalars(
            select(Enrollment).where(Enrollment.lead_id == lead_id, Enrollment.status == "active")
        )
    )


def on_event(
    session: Session,
    content: Content,
    lead: Lead,
    name: str,
    properties: dict[str, Any],
    now: datetime,
    occurred_at: datetime | None = None,
    origin: str = "api",
    delivery_id: int | None = None,
) -> list[Enrollment]:
    """Record an event, exit on goals, wake waits on it, enrol on triggers."""
    if delivery_id is None:
        delivery_id = delivery_of(session, lead, name, properties)
    event = add_event(session, lead, name, now, properties, occurred_at, origin, delivery_id)
    return react(session, content, lead, event, now)


def delivery_of(session: Session, lead: Lead, name: str, properties: dict[str, Any]) -> int | None:
    """Opens, clicks, bounces, complaints and unsubscribes reported from outside (an
    ESP, a proxy, a feedback loop) name the Message-ID: the event is the email's."""
    if name not in ENGAGEMENT | REPORTED or not properties.get("message_id"):
        return None
    return session.scalar(
        select(Delivery.id).where(
            Delivery.message_id == str(properties["message_id"]).strip("<>"),
            Delivery.lead_id == lead.id,
        )
    )


def react(
    session: Session, content: Content, lead: Lead, event: Event, now: datetime
) -> list[Enrollment]:
    """What an event does to sequences: exits on goals, wakes waits, entries on triggers.

    An open or a click counts only when a person made it: a link scanner's click or a
    privacy proxy's open neither meets a goal nor enters a sequence (as in branches)."""
    name = event.name
    if name in ENGAGEMENT and event.classification not in (None, "human"):
        return []
    for enrollment in _active(session, lead.id):
        sequence = content.pinned(session, enrollment.sequence_id, enrollment.version)
        reason = exit_on_event(sequence, name)
        if reason is not None:
            leave(session, lead.id, reason, now, [enrollment.sequence_id])
        elif enrollment.waiting_for == name:
            enrollment.due_at = now  # the wait re-checks its condition at the next tick
    occurrence = Occurrence(TriggerKind.EVENT, name, dict(event.properties or {}))
    return enrol(session, content, lead, occurrence, now)


def on_created(session: Session, content: Content, lead: Lead, now: datetime) -> list[Enrollment]:
    entered = enrol(session, content, lead, Occurrence(TriggerKind.LEAD_CREATED), now)
    if lead.stage != "lead":
        entered += on_stage(session, content, lead, lead.stage, now)
    return entered


def on_tags(
    session: Session, content: Content, lead: Lead, tags: Iterable[str], now: datetime
) -> list[Enrollment]:
    entered: list[Enrollment] = []
    for tag in sorted(tags):
        entered += enrol(session, content, lead, Occurrence(TriggerKind.TAG_ADDED, tag=tag), now)
    return entered


def on_stage(
    session: Session, content: Content, lead: Lead, stage: str, now: datetime
) -> list[Enrollment]:
    """A lifecycle stage was reached: exits first, then entries."""
    for enrollment in _active(session, lead.id):
        sequence = content.pinned(session, enrollment.sequence_id, enrollment.version)
        reason = exit_on_stage(sequence, stage)
        if reason is not None:
            leave(session, lead.id, reason, now, [enrollment.sequence_id])
    return enrol(session, content, lead, Occurrence(TriggerKind.STAGE_REACHED, stage=stage), now)


def set_stage(
    session: Session,
    content: Content,
    lead: Lead,
    stage: str,
    now: datetime,
    cause: str = "set by the API",
    event_id: int | None = None,
) -> list[Enrollment]:
    """Move the lead to `stage`, recording when, from where and why; then exits and entries."""
    if stage == lead.stage:
        return []
    previous = lead.stage
    since = lead.stage_since or lead.created_at
    lead.stage = stage
    lead.stage_since = now
    lead.updated_at = now
    session.add(
        StageChange(
            lead_id=lead.id,
            from_stage=previous,
            to_stage=stage,
            cause=cause[:300],
            event_id=event_id,
            since=since,
            at=now,
        )
    )
    add_event(
        session,
        lead,
        "stage_changed",
        now,
        {"from": previous, "to": stage, "cause": cause},
        origin="engine",
    )
    return on_stage(session, content, lead, stage, now)


def unsubscribe(
    session: Session, key: ListKey, lead: Lead, now: datetime, delivery_id: int | None = None
) -> Event | None:
    """Idempotent: the `unsubscribed` event the first time, None after. Every active
    enrollment ends at once, and the address joins the suppression list."""
    if lead.unsubscribed_at is not None:
        return None
    lead.unsubscribed_at = now
    lead.updated_at = now
    suppress(session, key, lead.email, "unsubscribed", now)
    event = add_event(
        session, lead, "unsubscribed", now, {}, origin="tracking", delivery_id=delivery_id
    )
    leave(session, lead.id, "unsubscribed", now)
    return event


def count_active(session: Session, sequence_id: str | None = None) -> int:
    query = select(func.count()).select_from(Enrollment).where(Enrollment.status == "active")
    if sequence_id is not None:
        query = query.where(Enrollment.sequence_id == sequence_id)
    return int(session.scalar(query) or 0)
