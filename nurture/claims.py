"""What a claim holds: the enrollments it read, the deliveries already recorded for
their steps, and the emails it will send (`nurture.dispatch` claims, `nurture.sending`
sends and records).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from nurture.core.journey import Facts
from nurture.core.message import Envelope, OutgoingEmail
from nurture.core.sequences import EmailStep, Sequence
from nurture.mail import SendResult

SETTLED = ("sent", "skipped")


@dataclass
class Job:
    """One email to render and hand to SMTP."""

    delivery_id: int
    enrollment_id: int
    lead_id: int
    sequence: Sequence
    step: EmailStep
    facts: Facts
    tz: ZoneInfo
    message_id: str
    attempts: int
    rendered: OutgoingEmail | None = None
    message: Envelope | None = None
    links: list[str] = field(default_factory=list)
    honeypot: int | None = None
    error: str | None = None
    events: list[str] = field(default_factory=list)
    on_wire: bool = False  # the SMTP thread began sending it (and said so in the journal)
    result: SendResult | None = None
    outage: str | None = None  # not attempted: the relay was unavailable


@dataclass
class Claimed:
    """An enrollment as the claim reads it (fields named and ordered as the columns read);
    what `_advance` changes is written in one go."""

    id: int
    lead_id: int
    sequence_id: str
    version: str
    status: str
    step_id: str
    step_started_at: datetime
    due_at: datetime | None
    waiting_for: str | None
    note: str | None
    entered_at: datetime
    left_at: datetime | None
    exit_reason: str | None

    WRITTEN = (  # what a walk may change
        "status",
        "step_id",
        "step_started_at",
        "due_at",
        "waiting_for",
        "note",
        "left_at",
        "exit_reason",
    )

    def changes(self) -> dict[str, Any]:
        return {"id": self.id, **{name: getattr(self, name) for name in self.WRITTEN}}


@dataclass
class Known:
    """A delivery already recorded for a claimed enrollment's step."""

    id: int
    enrollment_id: int
    step_id: str
    status: str
    attempts: int
    message_id: str
    last_error: str | None
    next_attempt_at: datetime | None
    claimed_by: str | None
    lease_until: datetime | None
    updated_at: datetime
    sent_at: datetime | None


def columns_of(model: type[Any], row: type[Any]) -> list[Any]:
    """The model's columns named like the row type's fields, in their order."""
    return [getattr(model, f.name) for f in fields(row)]
