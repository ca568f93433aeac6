"""The decision log in the database: written by the engine where it decides, read back
with the rows that already tell a decision (enrollments, deliveries, promotions,
stage changes) as one story per lead: `nurture leads why` and the API.

Written in batches, inside the transaction that acts on the decision: a tick adds
one multi-row insert per batch, not a statement per lead.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from nurture.core.decisions import Decision, Entry
from nurture.models import DecisionLog, Delivery, Enrollment, Promotion, StageChange

REASON_LIMIT = 500


def as_row(lead_id: int, decision: Decision, at: datetime) -> dict[str, Any]:
    return {
        "lead_id": lead_id,
        "at": at,
        "kind": decision.kind,
        "sequence_id": decision.sequence_id,
        "step_id": decision.step_id,
        "reason": decision.reason[:REASON_LIMIT],
    }


def write(session: Session, rows: list[dict[str, Any]]) -> None:
    """Append these decisions (rows made by `as_row`), in one statement."""
    if rows:
        session.execute(insert(DecisionLog), rows)


def note(session: Session, lead_id: int, decisions: Iterable[Decision], at: datetime) -> None:
    write(session, [as_row(lead_id, d, at) for d in decisions])


def story(session: Session, lead_id: int) -> list[Entry]:
    """Everything decided about the lead, from the log and from the rows, unsorted."""
    entries = [
        Entry(d.at, d.kind, d.reason, d.sequence_id, d.step_id)
        for d in session.scalars(select(DecisionLog).where(DecisionLog.lead_id == lead_id))
    ]
    for e in session.scalars(select(Enrollment).where(Enrollment.lead_id == lead_id)):
        entries.append(Entry(e.entered_at, "enrolled", f"entered ({e.trigger or 'trigger'}), "
                             f"version {e.version}", e.sequence_id))  # fmt: skip
        if e.left_at is not None:
            kind = "completed" if e.status == "completed" else "exited"
            reason = e.exit_reason or e.status
            said = "completed the sequence" if reason == "completed" else f"left: {reason}"
            entries.append(Entry(e.left_at, kind, said, e.sequence_id))
        elif e.note:  # the current hold (a failed email blocks the enrollment)
            entries.append(Entry(e.step_started_at, "held", e.note, e.sequence_id, e.step_id))
    for d in session.scalars(select(Delivery).where(Delivery.lead_id == lead_id)):
        entries.append(_delivered(d))
    for p in session.scalars(select(Promotion).where(Promotion.lead_id == lead_id)):
        rep = f", to {p.rep_name}" if p.rep_name else ""
        entries.append(Entry(p.created_at, "promoted", f"promoted to sales: {p.reason}{rep}"))
        if p.status != "pending":
            answer = f"sales answered {p.status}" + (
                f" ({p.feedback_reason})" if p.feedback_reason else ""
            )
            entries.append(Entry(p.status_at, "sales", answer))
    for c in session.scalars(select(StageChange).where(StageChange.lead_id == lead_id)):
        entries.append(Entry(c.at, "stage", f"stage {c.from_stage} -> {c.to_stage} ({c.cause})"))
    return entries


def _delivered(d: Delivery) -> Entry:
    email = f"email {d.template}"
    match d.status:
        case "sent":
            return Entry(d.sent_at or d.updated_at, "sent", f"{email} sent", d.sequence_id,
                         d.step_id)  # fmt: skip
        case "skipped":
            reason = d.last_error or "suppressed"
            return Entry(d.updated_at, "skipped", f"{email} not sent: {reason}", d.sequence_id,
                         d.step_id)  # fmt: skip
        case "failed":
            return Entry(d.updated_at, "failed", f"{email} failed: {d.last_error or 'unknown'}",
                         d.sequence_id, d.step_id)  # fmt: skip
        case "uncertain":
            return Entry(d.updated_at, "uncertain",
                         f"{email} may have been sent (not resent): {d.last_error or ''}".strip(),
                         d.sequence_id, d.step_id)  # fmt: skip
        case "retry":
            return Entry(d.updated_at, "retry",
                         f"{email} to be tried again: {d.last_error or ''}".strip(),
                         d.sequence_id, d.step_id)  # fmt: skip
    return Entry(d.updated_at, d.status, f"{email} {d.status}", d.sequence_id, d.step_id)
