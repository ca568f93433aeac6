"""Leads in the database: create-or-update by email, the core's view of one, its events."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from nurture.core.intake import LeadInput
from nurture.core.profile import LeadProfile, Rep
from nurture.identifiers import new_lead_id
from nurture.models import Consent, Event, FieldHistory, Lead

# What `profile_of` reads: a select of these gives rows it takes as well as leads.
PROFILE_COLUMNS = (
    Lead.email,
    Lead.first_name,
    Lead.last_name,
    Lead.company,
    Lead.job_title,
    Lead.company_size,
    Lead.country,
    Lead.timezone,
    Lead.locale,
    Lead.source,
    Lead.campaign,
    Lead.stage,
    Lead.score,
    Lead.tags,
    Lead.fields,
    Lead.rep_name,
    Lead.rep_email,
    Lead.rep_phone,
)


# The columns a batch writes for a lead it creates (all but the id the database gives).
LEAD_COLUMNS = tuple(column.name for column in Lead.__table__.columns if column.name != "id")


class Draft:
    """A lead as a batch computes it before writing it (nurture.arrivals): the same
    attributes as a `Lead`, without the ORM's bookkeeping per attribute set."""

    __slots__ = ("id", *LEAD_COLUMNS, "enrolments")

    id: int | None
    public_id: str
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
    stage: str
    stage_since: datetime | None
    score: int
    grade: str | None
    behaviour_points: float
    last_activity_at: datetime | None
    cycle: int
    tags: list[str]
    fields: dict[str, Any]
    first_touch: dict[str, Any] | None
    latest_touch: dict[str, Any] | None
    category: str | None
    reasons: list[Any] | None
    rep_name: str | None
    rep_email: str | None
    rep_phone: str | None
    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    account_id: int | None
    created_at: datetime
    updated_at: datetime
    # Its enrolments as rows, when all of them are known (a lead created in this
    # batch); None for a lead stored before, whose enrolments are in the database.
    enrolments: list[dict[str, Any]] | None

    def __init__(self, values: Mapping[Any, Any], enrolments: list[dict[str, Any]] | None):
        for name in self.__slots__[:-1]:
            setattr(self, name, values[name])
        self.enrolments = enrolments

    @classmethod
    def new(cls, email: str, now: datetime) -> Draft:
        """A lead not stored yet, as `upsert_lead` starts one."""
        values = dict.fromkeys(("id", *LEAD_COLUMNS))
        values.update(
            public_id=new_lead_id(), email=email, stage="lead", score=0, behaviour_points=0.0,
            cycle=1, tags=[], fields={}, created_at=now, updated_at=now,
        )  # fmt: skip
        return cls(values, [])

    def copy(self) -> Draft:
        values = {name: getattr(self, name) for name in self.__slots__[:-1]}
        enrolments = None if self.enrolments is None else [dict(e) for e in self.enrolments]
        return Draft(values, enrolments)

    def row(self, names: tuple[str, ...] = LEAD_COLUMNS) -> dict[str, Any]:
        return {name: getattr(self, name) for name in names}


def profile_of(lead: Lead | Draft | Row[Any]) -> LeadProfile:
    rep = None
    if lead.rep_name and lead.rep_email:
        rep = Rep(name=lead.rep_name, email=lead.rep_email, phone=lead.rep_phone)
    return LeadProfile(
        email=lead.email,
        first_name=lead.first_name,
        last_name=lead.last_name,
        company=lead.company,
        job_title=lead.job_title,
        company_size=lead.company_size,
        country=lead.country,
        timezone=lead.timezone,
        locale=lead.locale,
        source=lead.source,
        campaign=lead.campaign,
        stage=lead.stage,
        score=lead.score,
        tags=frozenset(lead.tags or ()),
        fields=MappingProxyType(dict(lead.fields or {})),
        rep=rep,
    )


def find_lead(session: Session, email: str) -> Lead | None:
    return session.scalar(select(Lead).where(Lead.email == email))


def upsert_lead(
    session: Session,
    data: LeadInput,
    now: datetime,
    source: str = "api",
    existing: Lead | None = None,
    looked_up: bool = False,
    is_suppressed: Callable[[str], bool] = lambda email: False,
) -> tuple[Lead, bool, set[str]]:
    """Create or enrich the lead for `data.email` (progressive profiling).

    Absent or empty values never blank what is known; a different non-empty value
    replaces the known one, and the old one goes to the field history. Returns the
    lead, whether it was created, and the tags newly added.
    """
    # `looked_up`: the caller already searched (batches look a whole chunk up at once).
    lead = existing if existing is not None or looked_up else find_lead(session, data.email)
    created = lead is None
    if lead is None:
        lead = Lead(
            email=data.email,
            stage="lead",
            score=0,
            behaviour_points=0.0,
            cycle=1,
            tags=[],
            fields={},
            created_at=now,
            updated_at=now,
        )
        if is_suppressed(data.email):
            # Unsubscribed or erased before: known again, but never mailed again.
            lead.unsubscribed_at = now
        session.add(lead)
    changes, new_tags = merge(lead, data, created, now)
    history = [_change(lead, name, old, new, source, now) for name, old, new in changes]
    if created or history or data.consent is not None:
        session.flush()  # the lead's id is needed by every row that follows
    for row in history:
        row.lead_id = lead.id
        session.add(row)
    if data.consent is not None:
        session.add(
            Consent(
                lead_id=lead.id,
                purpose=data.consent.purpose,
                granted=data.consent.granted,
                source=data.consent.source or source,
                text_version=data.consent.text_version,
                at=now,
            )
        )
    return lead, created, new_tags


def merge(
    lead: Lead | Draft, data: LeadInput, created: bool, now: datetime
) -> tuple[list[tuple[str, Any, Any]], set[str]]:
    """Apply `data` to `lead` (progressive profiling): the values replaced, as (field,
    old, new) for the field history, and the tags newly added."""
    changes: list[tuple[str, Any, Any]] = []
    for name, value in data.values.items():
        old = getattr(lead, name)
        if not created and old not in (None, "") and old != value:
            changes.append((name, old, value))
        setattr(lead, name, value)
    if data.fields:
        merged = dict(lead.fields or {})
        for name, value in data.fields.items():
            old = merged.get(name)
            if not created and old not in (None, "") and old != value:
                changes.append((f"fields.{name}", old, value))
            merged[name] = value
        lead.fields = merged
    new_tags = set(data.tags) - set(lead.tags or ())
    if new_tags:
        lead.tags = sorted(set(lead.tags or ()) | new_tags)
    touch = dict(data.touch or {})
    for key, attribute in (("channel", "source"), ("campaign", "campaign")):
        if key not in touch and data.values.get(attribute):
            touch[key] = str(data.values[attribute])
    if touch:
        touch["at"] = now.isoformat()
        if lead.first_touch is None:
            lead.first_touch = touch
        lead.latest_touch = touch
    lead.updated_at = now
    return changes, new_tags


def shown(value: Any) -> str | None:
    """A value as the field history keeps it."""
    return None if value is None else str(value)


def _change(lead: Lead, name: str, old: Any, new: Any, source: str, now: datetime) -> FieldHistory:
    return FieldHistory(
        lead_id=lead.id or 0,
        field=name,
        old_value=shown(old),
        new_value=shown(new),
        source=source,
        at=now,
    )


def consent_state(session: Session, lead: Lead, purpose: str = "marketing") -> bool | None:
    """The latest consent decision for `purpose`: True, False, or None (never asked)."""
    latest = session.scalar(
        select(Consent.granted)
        .where(Consent.lead_id == lead.id, Consent.purpose == purpose)
        .order_by(Consent.at.desc(), Consent.id.desc())
        .limit(1)
    )
    return latest


def add_event(
    session: Session,
    lead: Lead,
    name: str,
    now: datetime,
    properties: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    origin: str = "api",
    delivery_id: int | None = None,
    classification: str | None = None,
) -> Event:
    event = Event(
        classification=classification,
        lead_id=lead.id,
        name=name,
        properties=properties or {},
        occurred_at=occurred_at or now,
        recorded_at=now,
        origin=origin,
        delivery_id=delivery_id,
    )
    session.add(event)
    session.flush()
    return event
