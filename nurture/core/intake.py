"""Checking what arrives about a lead (API body, form, CSV row) into a typed value.

The formats are the payload models (nurture/core/payloads.py); this module checks
input against them and turns the result into the frozen values the rest of the code
takes. Every problem is reported with its field path; nothing is stored when any exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from nurture.core.formats import normalise_email
from nurture.core.payloads import (
    BatchPayload,
    EventPayload,
    FeedbackPayload,
    LeadPayload,
    LookupPayload,
)
from nurture.core.refusals import FieldError, InvalidInput, refused
from nurture.core.sales import Answer

__all__ = [
    "ConsentInput",
    "EventInput",
    "FieldError",
    "InvalidInput",
    "LeadInput",
    "checked",
    "normalise_email",
    "parse_batch",
    "parse_event",
    "parse_feedback",
    "parse_lead",
    "parse_lookup",
]

Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class LeadInput:
    """Known values only: a field absent here never blanks what is stored."""

    email: str
    values: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=dict)
    consent: ConsentInput | None = None
    touch: Mapping[str, str] | None = None


@dataclass(frozen=True)
class ConsentInput:
    """Consent given (or withdrawn) for a purpose, with the version of the text shown."""

    purpose: str
    granted: bool
    text_version: str | None = None
    source: str | None = None


@dataclass(frozen=True)
class EventInput:
    name: str
    properties: Mapping[str, Any]
    occurred_at: datetime | None


def checked(model: type[Model], data: Any, prefix: str = "", **context: Any) -> Model:
    """`data` as `model`; raises InvalidInput listing every problem with its path."""
    try:
        return model.model_validate(data, context=context)
    except ValidationError as error:
        raise refused(error, model, prefix) from None


def parse_lead(data: Any, prefix: str = "", fold_subaddress: bool = False) -> LeadInput:
    """Check a lead body such as the API receives; raises InvalidInput."""
    return _lead(checked(LeadPayload, data, prefix, fold_subaddress=fold_subaddress))


def parse_batch(data: Any, fold_subaddress: bool = False) -> list[LeadInput]:
    """`{"leads": [...]}`: every item checked; any problem refuses the whole batch."""
    batch = checked(BatchPayload, data, fold_subaddress=fold_subaddress)
    return [_lead(item) for item in batch.leads]


def parse_lookup(data: Any, fold_subaddress: bool = False) -> str:
    """The normalised address a lookup body names."""
    return checked(LookupPayload, data, fold_subaddress=fold_subaddress).email


def _lead(lead: LeadPayload) -> LeadInput:
    values = {
        name: value
        for name in (
            "first_name",
            "last_name",
            "company",
            "job_title",
            "source",
            "campaign",
            "company_size",
            "country",
            "timezone",
            "locale",
            "stage",
        )
        if (value := getattr(lead, name)) is not None
    }
    if lead.rep is not None:
        values.update(
            {f"rep_{key}": value for key, value in lead.rep.model_dump().items() if value}
        )
    consent = None
    if lead.consent is not None:
        given = lead.consent
        consent = ConsentInput(
            given.purpose or "marketing", given.granted, given.text_version, given.source
        )
    touch = None
    if lead.touch is not None:
        touch = {key: value for key, value in lead.touch.model_dump().items() if value} or None
    return LeadInput(
        email=lead.email,
        values=values,
        tags=tuple(lead.tags or ()),
        fields={k: v for k, v in (lead.fields or {}).items() if v not in (None, "")},
        consent=consent,
        touch=touch,
    )


def parse_event(data: Any, now: datetime) -> EventInput:
    """An event body; `occurred_at` may not be after `now`."""
    event = checked(EventPayload, data, now=now)
    return EventInput(event.name, dict(event.properties or {}), event.occurred_at)


def parse_feedback(data: Any, now: datetime) -> tuple[Answer, str | None]:
    """A CRM answer; `external_id` makes replays harmless (defaults to status + time)."""
    feedback = checked(FeedbackPayload, data)
    occurred = feedback.occurred_at or now
    external = feedback.external_id or f"{feedback.status}@{occurred.isoformat()}"
    answer = Answer(external, feedback.status, occurred, feedback.amount, feedback.reason)
    return answer, feedback.sequence
