"""Settling a dead worker's journal: each delivery it was sending recorded exactly as
it would have been (docs/delivery.md)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.db import among, update_rows
from nurture.enrollment import leave
from nurture.journal import Entries
from nurture.models import Delivery, Enrollment, Lead
from nurture.sending import outcome_of, release_values

if TYPE_CHECKING:
    from nurture.dispatch import Dispatcher


def settle_journal(
    dispatcher: Dispatcher, session: Session, entries: Entries, now: datetime
) -> dict[str, int]:
    """Settle the `sending` deliveries of a journal's holder exactly, as it would have:
    answers recorded, the message on the wire uncertain, the rest released, and its
    `claimed` ones released (never handed over). The holder is gone, or is this worker
    after a failed tick, so nothing waits for a lease to end. Each lead concerned is
    walked again by the next claim (due now)."""
    holder = entries.holder
    counts = {"recorded": 0, "uncertain": 0, "released": 0}
    if holder is None:
        return counts
    columns = (
        Delivery.id,
        Delivery.status,
        Delivery.attempts,
        Delivery.enrollment_id,
        Delivery.lead_id,
        Delivery.step_id,
    )
    # Its held rows (through the index of held rows), and those of its answers
    # another worker marked uncertain meanwhile (by id).
    rows = list(
        session.execute(
            select(*columns).where(
                Delivery.claimed_by == holder, Delivery.status.in_(("claimed", "sending"))
            )
        )
    )
    rows += session.execute(
        select(*columns).where(
            among(session, Delivery.id, entries.answers),
            Delivery.claimed_by == holder,
            Delivery.status == "uncertain",
        )
    )
    started = set(entries.started)
    delivery_rows: list[dict[str, Any]] = []
    touched: dict[int, str] = {}
    settings = dispatcher.settings
    for row in rows:
        answer = entries.answers.get(row.id)
        if answer is not None:
            kind, values = outcome_of(answer, row.attempts, now, settings.max_attempts)
            if kind == "paused":
                values["next_attempt_at"] = now
            delivery_rows.append({"id": row.id, "updated_at": now, **values})
            counts["recorded"] += 1
            if kind == "bounced":
                lead = session.get(Lead, row.lead_id)
                if lead is not None and lead.bounced_at is None:
                    lead.bounced_at = now
                    leave(session, row.lead_id, "bounced", now)
        elif row.id in started:
            if row.status == "sending":
                delivery_rows.append(
                    {
                        "id": row.id,
                        "status": "uncertain",
                        "updated_at": now,
                        "lease_until": None,
                        "last_error": f"worker {holder} stopped with this email on the wire;"
                        " the relay's answer was lost",
                    }
                )
                counts["uncertain"] += 1
        elif row.status == "sending":
            delivery_rows.append({"id": row.id, **release_values(now, max(row.attempts - 1, 0))})
            counts["released"] += 1
        elif row.status == "claimed":
            delivery_rows.append({"id": row.id, **release_values(now, row.attempts)})
            counts["released"] += 1
        else:
            continue
        touched[row.enrollment_id] = row.step_id
    update_rows(session, Delivery, delivery_rows)
    if touched:
        at = {
            e.id: e.step_id
            for e in session.execute(
                select(Enrollment.id, Enrollment.step_id).where(
                    among(session, Enrollment.id, touched), Enrollment.status == "active"
                )
            )
        }
        update_rows(
            session,
            Enrollment,
            [
                {"id": eid, "due_at": now, "note": None}
                for eid, step in touched.items()
                if at.get(eid) == step
            ],
        )
    return counts


# Where an enrollment row goes after a walk: the columns to write.
