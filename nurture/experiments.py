"""A/B splits in the database: the assignments the dispatcher records, each split's
results per variant, and the stop rule that picks a winner.

The stop rule is evaluated by the worker's periodic `splits` part (nurture.scheduler,
each tick, only for splits with a stop rule and no winner yet), never at assignment
time: a claim stays one cheap read of the recorded winners. The pure part (the hash,
the z-test, the rule) is nurture.core.experiments.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content
from nurture.core.experiments import Counts, SplitResults, compare, winner
from nurture.core.sequences import HOLDOUT, Sequence, SplitStep
from nurture.core.tables import Table
from nurture.db import among
from nurture.models import Delivery, Enrollment, SplitAssignment, SplitWinner, StageChange

Assigned = dict[tuple[int, str], dict[str, str]]  # (lead id, sequence id) -> split -> variant


def _insert(session: Session) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def assignments_of(session: Session, lead_ids: Iterable[int], sequence_ids: set[str]) -> Assigned:
    """The variants these leads were assigned in these sequences' splits."""
    found: Assigned = {}
    if not sequence_ids:
        return found
    rows = session.execute(
        select(
            SplitAssignment.lead_id,
            SplitAssignment.sequence_id,
            SplitAssignment.split_id,
            SplitAssignment.variant,
        ).where(
            among(session, SplitAssignment.lead_id, lead_ids),
            SplitAssignment.sequence_id.in_(sorted(sequence_ids)),
        )
    )
    for lead_id, sequence_id, split_id, variant in rows:
        found.setdefault((lead_id, sequence_id), {})[split_id] = variant
    return found


def winners_of(session: Session, sequence_ids: set[str]) -> dict[str, dict[str, str]]:
    """Per sequence, the winner of each split that has one."""
    found: dict[str, dict[str, str]] = {}
    if not sequence_ids:
        return found
    rows = session.execute(
        select(SplitWinner.sequence_id, SplitWinner.split_id, SplitWinner.variant).where(
            SplitWinner.sequence_id.in_(sorted(sequence_ids))
        )
    )
    for sequence_id, split_id, variant in rows:
        found.setdefault(sequence_id, {})[split_id] = variant
    return found


def record(session: Session, rows: list[dict[str, Any]]) -> None:
    """Record new assignments; one already there (the same lead, another enrollment
    that got there first) stays as it is."""
    if rows:
        statement = _insert(session)(SplitAssignment).values(rows)
        keys = ["sequence_id", "split_id", "lead_id"]
        session.execute(statement.on_conflict_do_nothing(index_elements=keys))


# --- results ---------------------------------------------------------------------------


def counts(session: Session, sequence_id: str, split_id: str) -> dict[str, Counts]:
    """Per variant: leads assigned, the split's email sent, leads with a human click on
    an email of the enrollment sent since the assignment, and leads that reached MQL
    or SQL since the assignment while enrolled (scanner clicks and machine opens are
    not in `clicked_at`)."""
    a = SplitAssignment
    mine = and_(a.sequence_id == sequence_id, a.split_id == split_id)
    figures: dict[str, dict[str, int]] = {}

    def add(name: str, query: Any) -> None:
        for variant, number in session.execute(query.where(mine).group_by(a.variant)):
            figures.setdefault(variant, {})[name] = number

    add("entered", select(a.variant, func.count()))
    on_delivery = and_(Delivery.enrollment_id == a.enrollment_id, Delivery.status == "sent")
    add(
        "sent",
        select(a.variant, func.count()).join(
            Delivery, and_(on_delivery, Delivery.step_id == split_id)
        ),
    )
    add(
        "clicked",
        select(a.variant, func.count(func.distinct(a.lead_id))).join(
            Delivery,
            and_(on_delivery, Delivery.clicked_at.is_not(None), Delivery.sent_at >= a.assigned_at),
        ),
    )
    for stage in ("mql", "sql"):
        reached = and_(
            StageChange.lead_id == a.lead_id,
            StageChange.to_stage == stage,
            StageChange.at >= a.assigned_at,
        )
        enrolled = or_(Enrollment.left_at.is_(None), StageChange.at <= Enrollment.left_at)
        add(
            stage,
            select(a.variant, func.count(func.distinct(a.lead_id)))
            .join(Enrollment, Enrollment.id == a.enrollment_id)
            .join(StageChange, reached)
            .where(enrolled),
        )
    return {name: Counts(name, **values) for name, values in figures.items()}


def results(session: Session, sequence: Sequence, split: SplitStep) -> SplitResults:
    """The split's per-variant figures against its control (its first variant), on the
    stop rule's metric (human clicks when it has none)."""
    found = counts(session, sequence.id, split.id)
    names = [v.name for v in split.variants]
    # A variant a later version removed still has its leads: shown after the others.
    names += sorted(n for n in found if n not in names and n != HOLDOUT)
    if split.holdout or HOLDOUT in found:
        names.append(HOLDOUT)
    metric = split.stop.metric if split.stop is not None else "human_clicks"
    rows = [found.get(name, Counts(name)) for name in names]
    won = session.execute(
        select(SplitWinner.variant, SplitWinner.decided_at).where(
            SplitWinner.sequence_id == sequence.id, SplitWinner.split_id == split.id
        )
    ).first()
    return SplitResults(
        sequence.id,
        split,
        metric,
        tuple(compare(rows, metric, names[0])),
        won[0] if won else None,
        won[1] if won else None,
    )


def decide_winners(session: Session, content: Content, now: datetime) -> list[str]:
    """Apply the stop rule of every live split that has one and no winner yet; record
    each winner found (once: the unique key). Returns a line per winner."""
    said: list[str] = []
    live = [(s, split) for s in content.live() for split in s.splits() if split.stop]
    if not live:
        return said
    decided = winners_of(session, {s.id for s, _ in live})
    for sequence, split in live:
        if split.id in decided.get(sequence.id, {}):
            continue
        assert split.stop is not None
        found = counts(session, sequence.id, split.id)
        arms = [found.get(v.name, Counts(v.name)) for v in split.variants]
        won = winner(split.stop, arms)
        if won is None:
            continue
        name, confidence = won
        row = {
            "sequence_id": sequence.id,
            "split_id": split.id,
            "variant": name,
            "metric": split.stop.metric,
            "confidence": confidence,
            "decided_at": now,
        }
        statement = _insert(session)(SplitWinner).values([row])
        session.execute(
            statement.on_conflict_do_nothing(index_elements=["sequence_id", "split_id"])
        )
        said.append(
            f"{sequence.id}/{split.id}: {name} wins on {split.stop.metric}"
            f" ({confidence:.1%} confidence)"
        )
    return said


def split_tables(
    session: Session, settings: Settings, sequence_id: str | None = None
) -> list[Table]:
    """The results table of each split of the sequences in the folder (or of one)."""
    from nurture.core.reports_sequences import split_table
    from nurture.core.sequence_parser import load_directory

    catalog = load_directory(settings.sequences_dir)
    return [
        split_table(results(session, sequence, split))
        for found_id, sequence in sorted(catalog.sequences.items())
        if sequence_id in (None, found_id)
        for split in sequence.splits()
    ]
