"""The tables of intake's own bookkeeping: form submissions waiting for their
confirmation, and the progress of CSV imports. Imported by nurture.models, so every
table is on one `Base.metadata`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from nurture.model_base import Base, JSONType, UTCDateTime


class FormConfirmation(Base):
    """A website form awaiting double opt-in: the submission, kept aside until the
    person follows the emailed link (then it becomes a lead and this row goes), or
    until it expires (then the worker's retention purges it).

    `public_id` is the only thing a link carries: random, never the row's number.
    The send state guards the email: a worker claims a `pending` row by moving it
    to `sending`, so it leaves once; `sent` or `failed` after that.
    """

    __tablename__ = "form_confirmations"
    __table_args__ = (
        UniqueConstraint("email", "form"),  # a second submission updates the first
        Index("ix_form_confirmations_due", "send_state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    form: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(320))  # normalised, for erasure requests
    locale: Mapped[str | None] = mapped_column(String(16))  # picks the email's language
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the lead and the event
    # pending -> sending -> sent | failed; pending again after a retryable failure
    send_state: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the latest email asked for
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class ImportRun(Base):
    """A CSV import's progress, written with each chunk it commits: an interrupted
    import resumes after its last committed chunk (nurture.csvimport)."""

    __tablename__ = "import_runs"
    __table_args__ = (Index("ix_import_runs_file", "file", "fingerprint"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    file: Mapped[str] = mapped_column(String(1000))  # the resolved path
    fingerprint: Mapped[str] = mapped_column(String(64))  # its size and first bytes
    offset: Mapped[int] = mapped_column(BigInteger)  # bytes read through the last commit
    line: Mapped[int] = mapped_column(Integer)  # lines read through the last commit
    created: Mapped[int] = mapped_column(Integer)
    updated: Mapped[int] = mapped_column(Integer)
    refused: Mapped[int] = mapped_column(Integer)
    errors_size: Mapped[int] = mapped_column(BigInteger)  # bytes of FILE.errors.csv written
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An import split among processes (`--jobs N`): one row per part, `part` of `parts`.
    part: Mapped[int] = mapped_column(Integer, server_default="0")
    parts: Mapped[int] = mapped_column(Integer, server_default="1")
    size: Mapped[int | None] = mapped_column(BigInteger)  # the file's bytes
