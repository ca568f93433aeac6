"""One path for everything a lead does: record the event, let sequences react, score it.

The API, the tracking routes and the unsubscribe pages all come through here, so an
event always has the same effects wherever it was observed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content
from nurture.enrollment import ENGAGEMENT, delivery_of, leave, react
from nurture.leads import add_event
from nurture.models import Enrollment, Event, Lead
from nurture.scores import score_event
from nurture.suppression import list_key, suppress


def record(
    session: Session,
    content: Content,
    settings: Settings,
    lead: Lead,
    name: str,
    properties: dict[str, Any],
    now: datetime,
    *,
    occurred_at: datetime | None = None,
    origin: str = "api",
    delivery_id: int | None = None,
    classification: str | None = None,
) -> tuple[Event, list[Enrollment]]:
    if delivery_id is None:
        delivery_id = delivery_of(session, lead, name, properties)
    if classification is None and name in ENGAGEMENT:
        # Opens and clicks reported through the API come from a system that vouches
        # for them (it can say otherwise in `properties.classification`).
        classification = str(properties.get("classification") or "human")
    event = add_event(
        session, lead, name, now, properties, occurred_at, origin, delivery_id, classification
    )
    _stop_mailing(session, settings, lead, name, now)
    entered = react(session, content, lead, event, now)
    score_event(session, content, lead, event, now, settings.sla)
    return event, entered


def _stop_mailing(
    session: Session, settings: Settings, lead: Lead, name: str, now: datetime
) -> None:
    """A bounce or a spam complaint reported from outside (the relay's or a mailbox
    provider's feedback) stops mail to the address, as a refusal at sending does: a
    bounced address is dead, a complaint is the strongest unsubscribe there is."""
    if name == "bounced" and lead.bounced_at is None:
        lead.bounced_at = now
    elif name == "complained" and lead.unsubscribed_at is None:
        lead.unsubscribed_at = now
    else:
        return
    lead.updated_at = now
    suppress(session, list_key(settings), lead.email, name, now)
    leave(session, lead.id, name, now)
