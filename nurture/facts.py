"""What a batch of claimed enrollments is walked with, read in one query each: human
clicks and opens per enrollment, the emails counting against the frequency cap, and
the events since entry (only for sequences that look at events)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from collections.abc import Sequence as Sequence_
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nurture.core.journey import EventFact
from nurture.core.sequences import BranchStep, EventSeen, Sequence, WaitStep
from nurture.db import among
from nurture.models import Delivery, Event

COUNTED_BY_CAP = ("claimed", "sending", "sent", "uncertain")


class Entered(Protocol):
    id: int
    lead_id: int
    entered_at: datetime


def needs_events(sequence: Sequence) -> bool:
    for step in sequence.steps:
        if isinstance(step, WaitStep) and step.until_event:
            return True
        if isinstance(step, BranchStep) and any(
            isinstance(rule.condition, EventSeen) for rule in step.rules
        ):
            return True
    return False


def engagement(session: Session, ids: list[int]) -> dict[str, dict[int, frozenset[str]]]:
    """Per enrollment, the email steps a human clicked and opened."""
    found: dict[str, dict[int, set[str]]] = {"email_clicked": {}, "email_opened": {}}
    rows = session.execute(
        select(Delivery.enrollment_id, Delivery.step_id, Event.name)
        .join(Event, Event.delivery_id == Delivery.id)
        .where(
            among(session, Delivery.enrollment_id, ids),
            Event.name.in_(("email_clicked", "email_opened")),
            # Branches follow people: scanner clicks and machine opens don't count.
            Event.classification == "human",
        )
    )
    for enrollment_id, step_id, name in rows:
        found[name].setdefault(enrollment_id, set()).add(step_id)
    return {name: {k: frozenset(v) for k, v in by.items()} for name, by in found.items()}


def cap_times_of(
    session: Session, lead_ids: Iterable[int], now: datetime, days: int
) -> dict[int, list[tuple[datetime, str]]]:
    """Per lead, the emails that count against the cap: when, and from which sequence."""
    since = now - timedelta(days=days)
    moment = func.coalesce(Delivery.sent_at, Delivery.updated_at)
    times: dict[int, list[tuple[datetime, str]]] = defaultdict(list)
    rows = session.execute(
        select(Delivery.lead_id, Delivery.sent_at, Delivery.updated_at, Delivery.sequence_id).where(
            among(session, Delivery.lead_id, lead_ids),
            Delivery.status.in_(COUNTED_BY_CAP),
            moment > since,
        )
    )
    for lead_id, sent_at, updated_at, sequence_id in rows:
        times[lead_id].append((sent_at or updated_at, sequence_id))
    return times


def events_of(
    session: Session, enrollments: Sequence_[Entered], sequences: dict[int, Sequence]
) -> dict[int, list[EventFact]]:
    """The events since entry of the leads whose sequences look at events."""
    wanted = [e for e in enrollments if needs_events(sequences[e.id])]
    if not wanted:
        return {}
    since = min(e.entered_at for e in wanted)
    found: dict[int, list[EventFact]] = defaultdict(list)
    rows = session.scalars(
        select(Event).where(
            among(session, Event.lead_id, {e.lead_id for e in wanted}),
            Event.occurred_at >= since,
        )
    )
    for event in rows:
        found[event.lead_id].append(
            EventFact(event.name, event.occurred_at, dict(event.properties or {}))
        )
    return found
