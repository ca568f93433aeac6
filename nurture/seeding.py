"""Bulk creation of leads already due at a sequence's first step (benchmarks, load tests)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select

from nurture.content import Content
from nurture.models import Enrollment, Lead
from nurture.runtime import Runtime


def seed_due(
    runtime: Runtime, sequence_id: str, count: int, now: datetime, chunk: int = 5000
) -> None:
    """`count` leads enrolled in `sequence_id`, all due at `now` (set-based inserts)."""
    content: Content = runtime.content
    sequence = content.get(sequence_id)
    if sequence is None:
        raise LookupError(f"unknown sequence {sequence_id}")
    with runtime.sessions.begin() as session:
        content.store_versions(session, now)
        start = session.scalar(select(Lead.id).order_by(Lead.id.desc()).limit(1)) or 0
    for offset in range(0, count, chunk):
        size = min(chunk, count - offset)
        with runtime.sessions.begin() as session:
            numbers = range(start + offset + 1, start + offset + size + 1)
            session.execute(
                insert(Lead),
                [
                    {
                        "email": f"lead{n}@load.example",
                        "first_name": f"Lead{n}",
                        "company": f"Company {n % 997}",
                        "country": "FR",
                        "timezone": "Europe/Paris",
                        "locale": "fr" if n % 2 else "en",
                        "stage": "lead",
                        "score": 0,
                        "tags": [],
                        "fields": {},
                        "created_at": now,
                        "updated_at": now,
                    }
                    for n in numbers
                ],
            )
            ids = session.scalars(
                select(Lead.id).where(Lead.email.in_([f"lead{n}@load.example" for n in numbers]))
            ).all()
            session.execute(
                insert(Enrollment),
                [
                    {
                        "lead_id": lead_id,
                        "sequence_id": sequence.id,
                        "version": sequence.version,
                        "cycle": 1,
                        "status": "active",
                        "step_id": sequence.first_step,
                        "step_started_at": now,
                        "due_at": now,
                        "priority": sequence.priority,
                        "trigger": "seed",
                        "entered_at": now,
                    }
                    for lead_id in ids
                ],
            )
