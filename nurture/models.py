"""The database tables (SQLAlchemy 2 typed ORM). The schema itself lives in migrations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from nurture.identifiers import new_lead_id
from nurture.model_base import NAMING as NAMING
from nurture.model_base import Base as Base
from nurture.model_base import JSONType as JSONType
from nurture.model_base import UTCDateTime as UTCDateTime


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_created_at", "created_at"),  # reports: cohorts
        # The console's list of leads, one index per sort order: each page is a range of
        # it (keyset, docs/console-leads.md); the id breaks ties.
        Index("ix_leads_score_id", "score", "id"),
        Index("ix_leads_grade_id", "grade", "id"),
        Index("ix_leads_last_name_id", "last_name", "id"),
        Index("ix_leads_company_id", "company", "id"),
        # A sales user's leads, and the list's rep filter (nurture.console.users).
        Index("ix_leads_rep", func.lower(text("rep_email"))),
        Index("ix_leads_account_id", "account_id"),  # an account's contacts
        # The list's prefix search, any case: PostgreSQL only (SQLite reads the table).
        *(
            Index(
                f"ix_leads_search_{name}",
                func.lower(text(name)).label(f"{name}_lower"),
                postgresql_ops={f"{name}_lower": "text_pattern_ops"},
            ).ddl_if(dialect="postgresql")
            for name in ("email", "first_name", "last_name", "company")
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # What URLs, API answers and logs call the lead (see nurture.identifiers).
    public_id: Mapped[str] = mapped_column(String(24), unique=True, default=new_lead_id)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(300))
    job_title: Mapped[str | None] = mapped_column(String(300))
    company_size: Mapped[int | None] = mapped_column(Integer)
    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str | None] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16))
    source: Mapped[str | None] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(200))
    stage: Mapped[str] = mapped_column(String(20), default="lead")
    # When the lead reached its stage; null: at creation (kept by set_stage).
    stage_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    score: Mapped[int] = mapped_column(Integer, default=0)  # rounded, as last computed
    grade: Mapped[str | None] = mapped_column(String(1))
    behaviour_points: Mapped[float] = mapped_column(  # as of last_activity_at
        Float, default=0.0, server_default=text("0")
    )
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cycle: Mapped[int] = mapped_column(  # promotion cycle; recycling adds one
        Integer, default=1, server_default=text("1")
    )
    tags: Mapped[list[str]] = mapped_column(JSONType, default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    first_touch: Mapped[dict[str, Any] | None] = mapped_column(JSONType)  # channel, campaign, utm
    latest_touch: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    # sales_ready | long_term_nurture | no_interest, and the reasons behind it
    category: Mapped[str | None] = mapped_column(String(30))
    reasons: Mapped[list[Any] | None] = mapped_column(JSONType)
    rep_name: Mapped[str | None] = mapped_column(String(200))
    rep_email: Mapped[str | None] = mapped_column(String(320))
    rep_phone: Mapped[str | None] = mapped_column(String(50))
    unsubscribed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    bounced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # No sequence emails since: it finished a sunset sequence without engaging (why is
    # in the decision log); a form brings it back (nurture.triggers).
    sunset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The company it belongs to (nurture.accounts): from its company_id field, else its
    # email's domain; none for a personal mailbox. No foreign key: an account row goes
    # only once it has no contact left.
    account_id: Mapped[int | None] = mapped_column(Integer)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_lead_name_time", "lead_id", "name", "occurred_at"),
        Index("ix_events_name_time", "name", "occurred_at"),  # reports and alarms, by day
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    properties: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    classification: Mapped[str | None] = mapped_column(String(20))  # opens and clicks only
    origin: Mapped[str] = mapped_column(String(20), default="api")
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SequenceVersion(Base):
    """Every version of every sequence file ever loaded: pinned enrollments read it back."""

    __tablename__ = "sequence_versions"
    __table_args__ = (UniqueConstraint("sequence_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(500))
    source: Mapped[str] = mapped_column(Text)
    loaded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Enrollment(Base):
    """One lead inside one pinned version of one sequence; `due_at` is the schedule."""

    __tablename__ = "enrollments"
    __table_args__ = (
        UniqueConstraint("lead_id", "sequence_id", "cycle"),
        Index("ix_enrollments_claim", "status", "priority", "due_at", "id"),
        # The sequence report: who entered, and who left, in a period.
        Index("ix_enrollments_entered_at", "entered_at"),
        Index("ix_enrollments_left_at", "left_at"),
        Index("ix_enrollments_sequence_lead", "sequence_id", "lead_id"),  # console: filter
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    sequence_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(32))
    cycle: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default="active")  # active|completed|exited
    step_id: Mapped[str] = mapped_column(String(100))
    step_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    waiting_for: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(300))
    trigger: Mapped[str | None] = mapped_column(String(200))
    entered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    left_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    exit_reason: Mapped[str | None] = mapped_column(String(200))


ATTENTION_WHERE = "status IN ('retry', 'failed', 'uncertain')"
SENT_COVERING = (
    "id", "sequence_id", "step_id", "opened_at", "clicked_at", "machine_opened_at", "scanned_at",
)  # fmt: skip
HELD_WHERE = "status IN ('claimed', 'sending')"


class Delivery(Base):
    """One email of one step to one lead. The unique key is the guard against twice."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id"),
        Index("ix_deliveries_lead_sent", "lead_id", "sent_at"),
        # Reports and alarms, by day. Covering on PostgreSQL: a year of emails is
        # counted per step from the index alone (docs/performance.md, "Reports").
        Index(
            "ix_deliveries_sent_at",
            "sent_at",
            postgresql_include=list(SENT_COVERING),
            sqlite_where=text("status = 'sent'"),
            postgresql_where=text("status = 'sent'"),
        ),
        # Only the deliveries an operator must look at: most rows end `sent` and stay
        # out of it, so sending writes no entry here and no read by lead is tempted
        # to walk every sent row through it.
        Index(
            "ix_deliveries_attention",
            "status",
            sqlite_where=text(ATTENTION_WHERE),
            postgresql_where=text(ATTENTION_WHERE),
        ),
        # The rows a worker holds right now (a few hundred at most): its heartbeat
        # renews their leases by holder, and `deliveries list` shows them.
        Index(
            "ix_deliveries_held",
            "claimed_by",
            sqlite_where=text(HELD_WHERE),
            postgresql_where=text(HELD_WHERE),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    sequence_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(32))
    step_id: Mapped[str] = mapped_column(String(100))
    template: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    # claimed -> sending -> sent | retry | failed | uncertain | skipped
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(80))  # the holder's token
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message_id: Mapped[str] = mapped_column(String(300), unique=True)
    to_email: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(String(500))
    locale: Mapped[str | None] = mapped_column(String(16))
    last_error: Mapped[str | None] = mapped_column(Text)
    relay_reply: Mapped[str | None] = mapped_column(String(500))  # the relay's last answer
    links: Mapped[list[str]] = mapped_column(  # the original URLs, by index
        JSONType, default=list, server_default=text("'[]'")
    )
    honeypot: Mapped[int | None] = mapped_column(Integer)  # the index of the hidden link
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The email's engagement, from its tracking hits as classified (nurture/hits.py
    # keeps them, relabelled hits included): the first of each kind, so a report of a
    # year of emails reads the emails, not every open and click.
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # by a human
    clicked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # by a human
    machine_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scanned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    scopes: Mapped[str] = mapped_column(String(200))  # comma-separated, nurture/apikeys.py
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # to the minute


class TrackingHit(Base):
    """One open or click as it arrived, then its classification and the reasons.

    The web routes write the request down (through the spool, nurture/spool.py) with
    no classification; a worker fills in `classification`, `reasons` and `event_id`
    and sets `processed_at` (nurture/hits.py). `error` says why a hit was given up.
    """

    __tablename__ = "tracking_hits"
    __table_args__ = (
        Index("ix_tracking_hits_delivery_at", "delivery_id", "at"),
        # Only the hits still waiting for a worker: stays small however long the log.
        Index(
            "ix_tracking_hits_waiting",
            "id",
            sqlite_where=text("processed_at IS NULL"),
            postgresql_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    spool_key: Mapped[str | None] = mapped_column(String(40), unique=True)
    """The hit's key in the spool: ingesting the same line twice adds nothing."""
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # open | click
    link: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(10))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(Text)
    classification: Mapped[str | None] = mapped_column(String(20))  # None until processed
    reasons: Mapped[list[str]] = mapped_column(JSONType, default=list, server_default=text("'[]'"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(String(500))


class ScoreChange(Base):
    """Every change of a lead's score, with its reason and the event behind it."""

    __tablename__ = "score_changes"
    __table_args__ = (Index("ix_score_changes_lead_at", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    points: Mapped[float] = mapped_column(Float)
    rule: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(String(500))
    score_after: Mapped[float] = mapped_column(Float)
    model_version: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class StageChange(Base):
    """Every lifecycle transition: when, from, to, and why."""

    __tablename__ = "stage_changes"
    __table_args__ = (
        Index("ix_stage_changes_lead_at", "lead_id", "at"),
        Index("ix_stage_changes_to_stage_at", "to_stage", "at"),  # reports: who became MQL
        Index("ix_stage_changes_at", "at"),  # reports: the stays that ended in a period
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    from_stage: Mapped[str] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    cause: Mapped[str] = mapped_column(String(300))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    # When the lead had reached from_stage: the stay this change ends is since -> at,
    # read by velocity without sorting every change of every lead.
    since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Promotion(Base):
    """A lead handed to sales, once per lead per cycle; the CRM's answer lands here."""

    __tablename__ = "promotions"
    __table_args__ = (
        UniqueConstraint("lead_id", "cycle"),
        Index("ix_promotions_status", "status"),
        Index("ix_promotions_created_at", "created_at"),  # reports: SLA, SQL
        # reports: who was accepted, became an opportunity, was won in a period
        Index("ix_promotions_accepted_at", "accepted_at"),
        Index("ix_promotions_opportunity_at", "opportunity_at"),
        Index("ix_promotions_won_at", "won_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    cycle: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(500))
    rep_name: Mapped[str | None] = mapped_column(String(200))
    rep_email: Mapped[str | None] = mapped_column(String(320))
    routing_rule: Mapped[str | None] = mapped_column(String(200))
    # pending | accepted | rejected | opportunity | won | lost
    status: Mapped[str] = mapped_column(String(20), default="pending")
    status_at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[float | None] = mapped_column(Float)
    feedback_reason: Mapped[str | None] = mapped_column(String(500))
    escalations: Mapped[int] = mapped_column(Integer, default=0)
    sla_breached: Mapped[bool] = mapped_column(default=False)
    sla_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Sales' first answer, first opportunity (or win) and first win: kept with each answer.
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    opportunity_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The SLA report's measures, kept by the reports' summary (nurture/reports/sla.py):
    # the deadline on the rep's calendar, and the business seconds to the first answer.
    answer_deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answer_seconds: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CrmPush(Base):
    """The outbox: one row per message to the CRM, committed with the change it reports."""

    __tablename__ = "crm_pushes"
    __table_args__ = (Index("ix_crm_pushes_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    promotion_id: Mapped[int | None] = mapped_column(
        ForeignKey("promotions.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(40))  # e.g. lead.promoted, lead.escalated
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # pending | delivered | dead (retries exhausted or endpoint gone)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class EndpointState(Base):
    """An outgoing webhook endpoint the receiver told us to stop using (HTTP 410)."""

    __tablename__ = "endpoint_states"

    url: Mapped[str] = mapped_column(String(1000), primary_key=True)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(500))


class SalesFeedback(Base):
    """Each answer the CRM sent, as received (replays are recognised by `external_id`)."""

    __tablename__ = "sales_feedback"
    __table_args__ = (
        UniqueConstraint("external_id"),
        Index("ix_sales_feedback_promotion", "promotion_id"),  # first answers; a replay
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id", ondelete="CASCADE"))
    external_id: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    amount: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(500))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Digest(Base):
    """The daily top leads sent to one rep on one local day: sent once."""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("rep_email", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rep_email: Mapped[str] = mapped_column(String(320))
    day: Mapped[str] = mapped_column(String(10))  # the rep's local date, ISO
    leads: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class FieldHistory(Base):
    """A known value replaced by a newer, different one: the old value is kept here."""

    __tablename__ = "field_history"
    __table_args__ = (Index("ix_field_history_lead", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(100))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Consent(Base):
    """Consent given or withdrawn for one purpose: where, when, and which text was shown."""

    __tablename__ = "consents"
    __table_args__ = (Index("ix_consents_lead_purpose", "lead_id", "purpose", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(50))
    granted: Mapped[bool] = mapped_column()
    source: Mapped[str] = mapped_column(String(100))
    text_version: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class Suppression(Base):
    """An address that must never be mailed again, kept only as a keyed hash."""

    __tablename__ = "suppressions"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeyFingerprint(Base):
    """Which key a keyed list (the suppression list) was written with, so a changed
    secret is caught before it silently un-suppresses everyone."""

    __tablename__ = "key_fingerprints"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyKey(Base):
    """The answer given to a request with an Idempotency-Key, to give it again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PrivacyLog(Base):
    """Exports and erasures of personal data, for the record (no personal data in it)."""

    __tablename__ = "privacy_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    action: Mapped[str] = mapped_column(String(20))  # export | erase | retention
    email_hash: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(String(500))
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class User(Base):
    """A person who signs in to the web console (nurture/console/): an Argon2 hash of
    the password, never the password; disabled rather than deleted, for the record."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)  # lower-cased
    role: Mapped[str] = mapped_column(String(20))  # viewer | marketer | sales | admin
    password_hash: Mapped[str] = mapped_column(String(200))
    rep_email: Mapped[str | None] = mapped_column(String(320))  # sales: whose leads
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    signed_in_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # the latest
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# The program's tables join the metadata with the rest; importable from here too.
from nurture.intake_models import FormConfirmation as FormConfirmation  # noqa: E402
from nurture.intake_models import ImportRun as ImportRun  # noqa: E402
from nurture.program_models import Account as Account  # noqa: E402
from nurture.program_models import AccountPromotion as AccountPromotion  # noqa: E402
from nurture.program_models import BroadcastOccurrence as BroadcastOccurrence  # noqa: E402
from nurture.program_models import SplitAssignment as SplitAssignment  # noqa: E402
from nurture.program_models import SplitWinner as SplitWinner  # noqa: E402
from nurture.program_models import TemplatePin as TemplatePin  # noqa: E402
from nurture.program_models import TemplateVersion as TemplateVersion  # noqa: E402
from nurture.program_models import TriggerFiring as TriggerFiring  # noqa: E402

# The reports' tables (the decision log, costs, alarms, the daily summary) likewise.
from nurture.report_models import AlarmState as AlarmState  # noqa: E402
from nurture.report_models import Cost as Cost  # noqa: E402
from nurture.report_models import DecisionLog as DecisionLog  # noqa: E402
from nurture.report_models import ReportDay as ReportDay  # noqa: E402
from nurture.report_models import ReportStay as ReportStay  # noqa: E402
from nurture.report_models import ReportSummary as ReportSummary  # noqa: E402
