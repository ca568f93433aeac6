"""The tables of the nurture program around the journeys: accounts, template pins,
periodic trigger firings, broadcast occurrences and A/B split assignments. Imported by
nurture.models, so every table is on one `Base.metadata`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nurture.model_base import Base, UTCDateTime


class Account(Base):
    """A company: the leads sharing a company id, or an email domain (nurture.accounts).
    Holds no personal data of its own; its figures are computed from its contacts."""

    __tablename__ = "accounts"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # company_id | domain
    value: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountPromotion(Base):
    """An account handed to sales by the account rule, once per account per cycle: the
    unique key stops two workers, or two runs, promoting it twice."""

    __tablename__ = "account_promotions"
    __table_args__ = (UniqueConstraint("account_id", "cycle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    cycle: Mapped[int] = mapped_column(Integer)
    lead_id: Mapped[int | None] = mapped_column(
        ForeignKey("leads.id", ondelete="SET NULL"), index=True
    )  # the contact promoted
    promotion_id: Mapped[int | None] = mapped_column(
        ForeignKey("promotions.id", ondelete="SET NULL")
    )
    engaged: Mapped[int] = mapped_column(Integer)  # distinct contacts engaged in the window
    reason: Mapped[str] = mapped_column(String(500))
    run: Mapped[str] = mapped_column(String(32))  # the job run that found it
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class TemplateVersion(Base):
    """Every version of every email template folder ever published, with its files
    (layouts included): a pinned sequence version renders from these."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(32))
    files: Mapped[str] = mapped_column(Text)  # JSON: path under the templates folder -> text
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TemplatePin(Base):
    """The template version a sequence version renders: set when the sequence version is
    first published, moved only by `nurture apply` (nurture/deployment.py)."""

    __tablename__ = "template_pins"
    __table_args__ = (UniqueConstraint("sequence_id", "version", "template"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(32))
    template: Mapped[str] = mapped_column(String(200))
    template_version: Mapped[str] = mapped_column(String(32))
    pinned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TriggerFiring(Base):
    """A periodic trigger (inactivity, a date) found a lead: once per occurrence.

    `occurred` names the occurrence: when the lead's inactive spell began, or the day
    the date rule fell on (an anniversary comes back each year as a new occurrence).
    The unique key is what stops two workers, or two runs, enrolling it twice.
    """

    __tablename__ = "trigger_firings"
    __table_args__ = (
        UniqueConstraint("lead_id", "sequence_id", "trigger", "occurred"),
        Index("ix_trigger_firings_run", "run"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    sequence_id: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(200))
    occurred: Mapped[datetime] = mapped_column(UTCDateTime)
    run: Mapped[str] = mapped_column(String(32))  # the job run that found it
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class BroadcastOccurrence(Base):
    """A broadcast occurrence that was started: its segment enrolled, once.

    `occurrence` is the wall time of the file ("2026-12-10 09:00"), stored as if UTC;
    each lead gets it at that time in its own zone. The unique key is what stops two
    workers starting it twice, and so each lead getting it twice: its leads are
    enrolled in the transaction that writes this row (nurture.broadcasts).
    """

    __tablename__ = "broadcast_occurrences"
    __table_args__ = (UniqueConstraint("broadcast_id", "occurrence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[str] = mapped_column(String(100))
    occurrence: Mapped[datetime] = mapped_column(UTCDateTime)
    version: Mapped[str] = mapped_column(String(32))  # of the file, when it started
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recipients: Mapped[int] = mapped_column(Integer)  # leads enrolled


class SplitAssignment(Base):
    """The variant of an A/B split a lead was assigned, for good (nurture.experiments):
    a later weight change or a winner reshuffles nobody already here. The unique key
    keeps one assignment per lead per split, whatever the re-entries."""

    __tablename__ = "split_assignments"
    __table_args__ = (
        UniqueConstraint("sequence_id", "split_id", "lead_id"),
        Index("ix_split_assignments_lead", "lead_id"),
        # Deleting enrollments (erasure, retention) finds their assignments by it.
        Index("ix_split_assignments_enrollment", "enrollment_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    # The enrollment that was assigned: results count what the lead did in it.
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    sequence_id: Mapped[str] = mapped_column(String(100))
    split_id: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str] = mapped_column(String(100))
    assigned_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SplitWinner(Base):
    """A split's stop rule found a winner: new leads all get it from then on."""

    __tablename__ = "split_winners"
    __table_args__ = (UniqueConstraint("sequence_id", "split_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    sequence_id: Mapped[str] = mapped_column(String(100))
    split_id: Mapped[str] = mapped_column(String(100))
    variant: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(20))
    confidence: Mapped[float] = mapped_column(Float)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
