"""The tables of reporting: the decision log, costs, alarms, and the daily summary
the reports read (nurture/reports/summary.py). Imported by nurture.models, so every
table is on one `Base.metadata`."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from nurture.model_base import Base, UTCDateTime


class DecisionLog(Base):
    """One decision the engine took about a lead, and why (nurture.core.decisions).
    Append-only; erased and purged with the lead."""

    __tablename__ = "decisions"
    __table_args__ = (Index("ix_decisions_lead_at", "lead_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(20))
    sequence_id: Mapped[str | None] = mapped_column(String(100))
    step_id: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(String(500))


class Cost(Base):
    """What a source (and campaign) cost in one month, in the installation's currency."""

    __tablename__ = "costs"
    __table_args__ = (UniqueConstraint("source", "campaign", "month"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str] = mapped_column(String(200))  # "" for the whole source
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    # Entered in another currency and converted explicitly: what was entered, and how.
    original_amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    original_currency: Mapped[str | None] = mapped_column(String(3))
    rate: Mapped[Decimal | None] = mapped_column(Numeric(14, 6))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AlarmState(Base):
    """Where an alarm stands (nurture.core.alarms): it turns once each way."""

    __tablename__ = "alarms"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    raised: Mapped[bool] = mapped_column()
    value: Mapped[float | None] = mapped_column(Float)  # the last reading
    detail: Mapped[str] = mapped_column(String(300))
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReportDay(Base):
    """How many leads of one group reached one funnel step on one day, and the amount of
    their deals. `view` says which day: `cohort`, the day the leads were created;
    `period`, the day the step was reached. `kind` says what the keys are: `lead`
    (source, campaign, rep), `sequence` (a sequence the lead entered), `first` and
    `last` (the source and campaign of the first and latest touch). An absent key is
    '' (part of the primary key)."""

    __tablename__ = "report_days"

    view: Mapped[str] = mapped_column(String(10), primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    k0: Mapped[str] = mapped_column(String(320), primary_key=True)
    k1: Mapped[str] = mapped_column(String(320), primary_key=True)
    k2: Mapped[str] = mapped_column(String(320), primary_key=True)
    step: Mapped[str] = mapped_column(String(20), primary_key=True)
    leads: Mapped[int] = mapped_column(Integer)
    amount: Mapped[float | None] = mapped_column(Float)


class ReportStay(Base):
    """A stay in a stage (or a lead's way to its first win) that ended on a closed day,
    with its lead's groups as of the summary: the velocity report's sample, without
    joining every lead. `kind` says what the keys are: `lead` (k0 source, k1 campaign,
    k2 rep), `sequence` (k0 a sequence the lead entered); None where absent."""

    __tablename__ = "report_stays"
    __table_args__ = (Index("ix_report_stays_kind_day", "kind", "day"),)

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True
    )
    kind: Mapped[str] = mapped_column(String(10))
    day: Mapped[date] = mapped_column(Date)  # the day it ended
    stage: Mapped[str] = mapped_column(String(30))
    k0: Mapped[str | None] = mapped_column(String(320))
    k1: Mapped[str | None] = mapped_column(String(320))
    k2: Mapped[str | None] = mapped_column(String(320))
    seconds: Mapped[float] = mapped_column(Float)


class ReportSummary(Base):
    """Which days the summary holds: every UTC day up to `through`, as of `made_at`;
    `rebuilt_at` is the last time every day was summed again (one row)."""

    __tablename__ = "report_summaries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    through: Mapped[date] = mapped_column(Date)
    made_at: Mapped[datetime] = mapped_column(UTCDateTime)
    rebuilt_at: Mapped[datetime] = mapped_column(UTCDateTime)
