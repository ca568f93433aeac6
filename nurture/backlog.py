"""The backlog: how much is due now, at which priorities, and what an operator must
look at. Read by the claim, `/metrics` and the CLI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from nurture.models import Delivery, Enrollment


def due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (Enrollment.status == "active", Enrollment.due_at <= now)


def priorities(session: Session) -> list[int]:
    """The priorities active enrollments hold, highest first.

    A loose index scan of `ix_enrollments_claim`: one probe per priority, however many
    enrollments each holds (sequences set a handful of priorities).
    """
    found: list[int] = []
    while True:
        query = select(Enrollment.priority).where(Enrollment.status == "active")
        if found:
            query = query.where(Enrollment.priority < found[-1])
        priority = session.scalar(query.order_by(Enrollment.priority.desc()).limit(1))
        if priority is None:
            return found
        found.append(priority)


def due_count(session: Session, now: datetime) -> int:
    """Enrollments due at `now`: counted per priority, each an index range."""
    return sum(
        session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(*due(now), Enrollment.priority == priority)
        )
        or 0
        for priority in priorities(session)
    )


def stuck(session: Session) -> list[Delivery]:
    """Deliveries an operator must look at."""
    return list(
        session.scalars(
            select(Delivery)
            .where(or_(Delivery.status == "uncertain", Delivery.status == "failed"))
            .order_by(Delivery.updated_at.desc())
        )
    )
