"""Deliveries an operator looks at, and how they are settled: one by one or in bulk.

Held rows (`claimed`, `sending`) show their holder and lease, so a crash's leftovers
are visible at once; uncertain, failed and retrying rows show the Message-ID and the
relay's last answer (with its queue id) to check against the relay's logs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from nurture.models import Delivery, Enrollment
from nurture.sending import queue_id

ATTENTION = ("uncertain", "failed", "retry")
HELD = ("claimed", "sending")
ACTIONS = ("mark-sent", "resend", "skip")
# What a failure for a passing reason looks like: worth sending again once it passed.
TRANSIENT = ("gave up after", "relay unavailable", "not attempted")


class ResolveError(ValueError):
    """A resolution that cannot be applied; the message says why."""


@dataclass(frozen=True)
class Row:
    id: int
    status: str
    to_email: str
    sequence_id: str
    step_id: str
    attempts: int
    message_id: str
    relay_reply: str | None
    claimed_by: str | None
    lease_until: datetime | None
    updated_at: datetime
    last_error: str | None

    @property
    def queue_id(self) -> str | None:
        return queue_id(self.relay_reply) if self.relay_reply else None


def listed(
    session: Session,
    statuses: Sequence[str],
    since: datetime | None = None,
    sequence: str | None = None,
    transient: bool = False,
    ids: Sequence[int] = (),
) -> list[Row]:
    query = select(
        Delivery.id,
        Delivery.status,
        Delivery.to_email,
        Delivery.sequence_id,
        Delivery.step_id,
        Delivery.attempts,
        Delivery.message_id,
        Delivery.relay_reply,
        Delivery.claimed_by,
        Delivery.lease_until,
        Delivery.updated_at,
        Delivery.last_error,
    ).where(Delivery.status.in_(statuses))
    if ids:
        query = query.where(Delivery.id.in_(ids))
    if since is not None:
        query = query.where(Delivery.updated_at >= since)
    if sequence is not None:
        query = query.where(Delivery.sequence_id == sequence)
    if transient:
        query = query.where(or_(*(Delivery.last_error.startswith(t) for t in TRANSIENT)))
    return [Row(*tuple(row)) for row in session.execute(query.order_by(Delivery.id))]


def check_found(rows: Sequence[Row], ids: Sequence[int]) -> None:
    """ResolveError naming the ids asked for that are not among `rows` (the deliveries
    needing attention that `listed` found): nothing is settled when one is missing."""
    missing = sorted(set(ids) - {row.id for row in rows})
    if missing:
        statuses = ", ".join(ATTENTION)
        raise ResolveError(f"no {statuses} delivery with id {', '.join(map(str, missing))}")


def resolve(session: Session, rows: Sequence[Row], action: str, now: datetime) -> list[int]:
    """Settle these deliveries; their leads resume at once. Returns the ids changed.

    `resend` only where the lead still waits at that email (a journey is never
    rewound); the others are refused, with the reason, before anything changes.
    """
    if action not in ACTIONS:
        raise ResolveError(f"unknown action {action!r} (expected {', '.join(ACTIONS)})")
    deliveries = {
        d.id: d
        for d in session.scalars(
            select(Delivery).where(Delivery.id.in_([r.id for r in rows])).with_for_update()
        )
    }
    enrollments = {
        e.id: e
        for e in session.scalars(
            select(Enrollment).where(
                Enrollment.id.in_({d.enrollment_id for d in deliveries.values()})
            )
        )
    }
    problems: list[str] = []
    for delivery in deliveries.values():
        if delivery.status not in ATTENTION:
            problems.append(f"delivery {delivery.id} is {delivery.status}, not settled by hand")
        enrollment = enrollments[delivery.enrollment_id]
        if action == "resend" and (
            enrollment.status != "active" or enrollment.step_id != delivery.step_id
        ):
            problems.append(
                f"delivery {delivery.id}: the lead has moved on; use --mark-sent or --skip"
            )
    if problems:
        raise ResolveError("; ".join(problems))
    for delivery in deliveries.values():
        was = f"{delivery.status}: {delivery.last_error or ''}".strip(": ")
        if action == "resend":
            delivery.status = "retry"
            delivery.next_attempt_at = now
            delivery.last_error = f"resend by an operator after {delivery.attempts} attempts"
            delivery.attempts = 0
        elif action == "mark-sent":
            delivery.status = "sent"
            delivery.sent_at = delivery.sent_at or delivery.updated_at
            delivery.last_error = f"{was}; marked sent by an operator"[:2000]
        else:
            delivery.status = "skipped"
            delivery.last_error = f"{was}; skipped by an operator"[:2000]
        delivery.updated_at = now
        enrollment = enrollments[delivery.enrollment_id]
        if enrollment.status == "active" and enrollment.step_id == delivery.step_id:
            enrollment.due_at = now
            enrollment.note = None
    return sorted(deliveries)
