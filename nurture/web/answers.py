"""The one definition of each answer the JSON API gives, and the lead's built from rows.

Every answer is made through these models, so what is sent is what the OpenAPI
document shows (their JSON Schema in serialization mode, nurture/web/openapi.py).
Answer objects list every field they carry; a later version may add fields.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema
from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture import models
from nurture.content import Content
from nurture.core.formats import OneOf
from nurture.core.qualification import CATEGORIES
from nurture.core.sales import STATUSES
from nurture.core.scoring import GRADES
from nurture.core.sequences import STAGES
from nurture.scores import explain

Time = Annotated[
    datetime,
    PlainSerializer(lambda at: at.isoformat(), return_type=str),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Stage = Annotated[str, OneOf(STAGES)]


class Answer(BaseModel):
    """An answer object: exactly these fields, each always present but those with a
    default, which are left out when they are None (and are optional in the schema)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _absent_if_none(value: Any) -> bool:
    return value is None


class Touch(Answer):
    """Attribution as it arrived (the keys of the payload's `touch` that were sent), and
    when."""

    channel: str | None = Field(None, exclude_if=_absent_if_none)
    campaign: str | None = Field(None, exclude_if=_absent_if_none)
    utm_source: str | None = Field(None, exclude_if=_absent_if_none)
    utm_medium: str | None = Field(None, exclude_if=_absent_if_none)
    utm_campaign: str | None = Field(None, exclude_if=_absent_if_none)
    utm_term: str | None = Field(None, exclude_if=_absent_if_none)
    utm_content: str | None = Field(None, exclude_if=_absent_if_none)
    at: str = Field(json_schema_extra={"format": "date-time"})


class Reason(Answer):
    code: str
    message: str


class Enrollment(Answer):
    sequence: str
    version: str
    status: Literal["active", "completed", "exited"]
    step: str
    due_at: Time | None
    note: str | None
    entered_at: Time
    exit_reason: str | None


class TimelineEvent(Answer):
    at: Time
    event: str
    properties: dict[str, Any]


class TimelineDelivery(Answer):
    at: Time
    delivery: Literal["claimed", "sending", "sent", "retry", "failed", "uncertain", "skipped"]
    sequence: str
    step: str
    subject: str | None


class ConsentRecord(Answer):
    purpose: str
    granted: bool
    source: str
    text_version: str | None
    at: Time


class StageChange(Answer):
    from_: Stage = Field(alias="from")
    to: Stage
    at: Time
    cause: str


class Lead(Answer):
    """A lead with its enrollments, timeline, score explained, stages and consents."""

    id: str = Field(
        description="The lead's opaque id (`ld_` and 20 characters): name the lead by it in URLs."
    )
    email: str
    first_name: str | None
    last_name: str | None
    company: str | None
    job_title: str | None
    company_size: int | None
    country: str | None
    timezone: str | None
    locale: str | None
    source: str | None
    campaign: str | None
    stage: Stage
    score: int
    grade: Annotated[str, OneOf(GRADES)] | None
    tags: list[str]
    fields: dict[str, str | int | float | bool | None]
    unsubscribed: bool
    category: Annotated[str, OneOf(CATEGORIES)] | None = Field(
        description="The qualification's verdict; null before any."
    )
    reasons: list[Reason] = Field(description="Why the lead is in its category.")
    first_touch: Touch | None
    latest_touch: Touch | None
    created_at: Time
    enrollments: list[Enrollment]
    timeline: list[TimelineEvent | TimelineDelivery] = Field(
        description="The latest 100 events and 100 deliveries, newest first."
    )
    score_explained: list[str] | None = Field(
        None,
        exclude_if=_absent_if_none,
        description='Why the score and grade ("why 72"): one line per change and per fit '
        "rule. Absent when no scoring file is configured.",
    )
    consents: list[ConsentRecord] = Field(
        description="Every consent decision, oldest first; the latest per purpose stands."
    )
    stage_history: list[StageChange]


class BatchItem(Answer):
    id: str
    email: str
    created: bool


class BatchResult(Answer):
    created: int = Field(ge=0)
    updated: int = Field(ge=0)
    results: list[BatchItem] = Field(description="One per item, in the order sent.")


class EventResult(Answer):
    recorded: str
    enrolled: list[str] = Field(description="The sequences the event made the lead enter.")


class FeedbackResult(Answer):
    promotion: int
    status: Annotated[str, OneOf(("pending", *STATUSES))]
    replay: bool = Field(description="This exact answer had been received before.")
    recycled_into: str | None = Field(description="The sequence a recycled lead entered, if any.")


class ErrorDetail(Answer):
    code: str
    message: str


class Error(Answer):
    error: ErrorDetail


class FieldProblem(Answer):
    path: str
    message: str


class InvalidDetail(Answer):
    code: Literal["invalid"]
    message: str
    fields: list[FieldProblem] = Field(
        min_length=1,
        description='Every refused field: `email`, `fields.industry`, `leads[3].email`; "$" '
        "is the body itself.",
    )


class InvalidError(Answer):
    error: InvalidDetail


def lead(session: Session, row: models.Lead, content: Content | None, now: datetime) -> Lead:
    """The whole lead as the API answers it."""
    enrollments = session.scalars(
        select(models.Enrollment)
        .where(models.Enrollment.lead_id == row.id)
        .order_by(models.Enrollment.id)
    )
    events = session.scalars(
        select(models.Event)
        .where(models.Event.lead_id == row.id)
        .order_by(models.Event.occurred_at.desc())
        .limit(100)
    )
    deliveries = session.scalars(
        select(models.Delivery)
        .where(models.Delivery.lead_id == row.id)
        .order_by(models.Delivery.id.desc())
        .limit(100)
    )
    timeline: list[TimelineEvent | TimelineDelivery] = [
        TimelineEvent(at=e.occurred_at, event=e.name, properties=e.properties) for e in events
    ]
    timeline += [
        TimelineDelivery.model_validate(
            {
                "at": d.sent_at or d.updated_at,
                "delivery": d.status,
                "sequence": d.sequence_id,
                "step": d.step_id,
                "subject": d.subject,
            }
        )
        for d in deliveries
    ]
    consents = session.scalars(
        select(models.Consent).where(models.Consent.lead_id == row.id).order_by(models.Consent.at)
    )
    stages = session.scalars(
        select(models.StageChange)
        .where(models.StageChange.lead_id == row.id)
        .order_by(models.StageChange.at)
    )
    explained = None
    if content is not None and content.scoring is not None:
        # "Why 72": every change behind the score, decayed to now, and the fit.
        explained = explain(session, content.scoring, row, now)
    return Lead.model_validate(
        {
            "id": row.public_id,
            "email": row.email,
            "first_name": row.first_name,
            "last_name": row.last_name,
            "company": row.company,
            "job_title": row.job_title,
            "company_size": row.company_size,
            "country": row.country,
            "timezone": row.timezone,
            "locale": row.locale,
            "source": row.source,
            "campaign": row.campaign,
            "stage": row.stage,
            "score": row.score,
            "grade": row.grade,
            "tags": row.tags or [],
            "fields": row.fields or {},
            "unsubscribed": row.unsubscribed_at is not None,
            "category": row.category,
            "reasons": row.reasons or [],
            "first_touch": _touch(row.first_touch),
            "latest_touch": _touch(row.latest_touch),
            "created_at": row.created_at,
            "enrollments": [
                Enrollment(
                    sequence=e.sequence_id,
                    version=e.version,
                    status=e.status,  # type: ignore[arg-type]  # checked by the model
                    step=e.step_id,
                    due_at=e.due_at,
                    note=e.note,
                    entered_at=e.entered_at,
                    exit_reason=e.exit_reason,
                )
                for e in enrollments
            ],
            "timeline": sorted(timeline, key=lambda item: item.at, reverse=True),
            "score_explained": explained,
            "consents": [
                ConsentRecord(
                    purpose=c.purpose,
                    granted=c.granted,
                    source=c.source,
                    text_version=c.text_version,
                    at=c.at,
                )
                for c in consents
            ],
            "stage_history": [
                {"from": c.from_stage, "to": c.to_stage, "at": c.at, "cause": c.cause}
                for c in stages
            ],
        }
    )


def _touch(stored: dict[str, Any] | None) -> Touch | None:
    if stored is None:
        return None
    return Touch.model_validate({key: stored.get(key) for key in Touch.model_fields})


def dumped(answer: BaseModel) -> dict[str, Any]:
    """An answer as JSON-ready values, with the field names clients see."""
    return answer.model_dump(mode="json", by_alias=True)


class TableAnswer(Answer):
    """A report: its title, the definitions it uses, and its rows by column name."""

    title: str
    notes: list[str]
    columns: list[str]
    rows: list[dict[str, Any]]


class DecisionEntry(Answer):
    at: Time
    kind: str
    sequence: str | None = None
    step: str | None = None
    reason: str


class Decisions(Answer):
    """Every decision about the lead, oldest first, and the same as sentences."""

    lead: str
    decisions: list[DecisionEntry]
    sentences: list[str]


class CostRecorded(Answer):
    source: str
    campaign: str | None = None
    month: str
    amount: float
    currency: str
    replaced: float | None = None
