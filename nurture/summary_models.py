"""The reports' daily summary (nurture/reports/summary.py): what the funnel and the
sources report add up, per closed UTC day, kept by the worker. Imported by
nurture.models, so every table is on one `Base.metadata`."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from nurture.model_base import Base, UTCDateTime


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
