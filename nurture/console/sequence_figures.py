"""The figures on a sequence's page: how many leads are at each node of its flow
diagram now and how many went through it (docs/console-sequences.md, "Counts"), and
the sequences report's figures per step for a period. No Flask here.

- now: active enrollments whose current step is the node;
- passed, for an email step: its emails sent or skipped (either moves the lead on),
  from `deliveries`;
- passed, for a branch: the times it was taken; for a wait for an event: the times it
  ended (the event, or its time limit); for a fixed wait: the times leads began it
  less those still waiting there or that left there (the decision log writes each of
  these once);
- left: enrollments that ended there otherwise than by completing the sequence;
- per edge out of a branch or a wait for an event: the times leads went that way.

All versions of the sequence together, step by step id, in four grouped queries.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sqlalchemy import ColumnElement, and_, case, func, or_, select
from sqlalchemy.orm import Session

from nurture.core.decisions import BRANCH, RESUMED, WAITING
from nurture.core.flow import ENTRY, EXIT, FINISH, GOAL, Flow
from nurture.core.reports import Period
from nurture.core.reports_sequences import sequences as sequences_table
from nurture.core.sequences import END, BranchStep, Sequence, WaitStep
from nurture.core.tables import Table
from nurture.models import DecisionLog, Delivery, Enrollment
from nurture.reports import step_counts

PASSED_EMAIL = ("sent", "skipped")
GOAL_PREFIX = "goal: "


@dataclass(frozen=True)
class AtStep:
    now: int = 0
    held: int = 0  # of `now`: blocked by a failed email, or at an uncertain one
    passed: int = 0
    left: int = 0


@dataclass(frozen=True)
class Figures:
    entered: int
    completed: int
    steps: Mapping[str, AtStep]
    exits: Mapping[str, int]  # reason -> enrollments that ended with it (goals included)
    edges: Mapping[tuple[str, str], int] = field(default_factory=dict)
    by_version: Mapping[str, Mapping[str, int]] = field(default_factory=dict)  # status -> n

    @property
    def goals(self) -> int:
        return sum(n for reason, n in self.exits.items() if reason.startswith(GOAL_PREFIX))

    @property
    def left_early(self) -> int:
        return sum(n for reason, n in self.exits.items() if not reason.startswith(GOAL_PREFIX))

    def said(self, key: str) -> str:
        """What the node `key` of the diagram says of its leads."""
        if key == ENTRY:
            return f"entered {self.entered:,}"
        if key == FINISH:
            return f"completed {self.completed:,}"
        if key == GOAL:
            return f"reached {self.goals:,}"
        if key == EXIT:
            return f"left {self.left_early:,}"
        at = self.steps.get(key, AtStep())
        now = f"now {at.now:,}" + (f" ({at.held:,} held)" if at.held else "")
        left = f" · left {at.left:,}" if at.left else ""
        return f"{now} · passed {at.passed:,}{left}"

    def elsewhere(self, flow: Flow) -> dict[str, AtStep]:
        """Leads at steps the drawn version does not have (older versions' steps)."""
        drawn = set(flow.step_ids)
        return {
            step: at
            for step, at in sorted(self.steps.items())
            if step not in drawn and step != END and (at.now or at.left)
        }


def figures(session: Session, sequence: Sequence) -> Figures:
    """The counts of `sequence`'s diagram, over all its versions."""
    sid = sequence.id
    held = or_(Enrollment.note.like("blocked:%"), Enrollment.note.like("held:%"))
    reason = func.coalesce(Enrollment.exit_reason, Enrollment.status)
    rows = session.execute(
        select(
            Enrollment.version,
            Enrollment.step_id,
            Enrollment.status,
            reason,
            func.count(),
            func.count(case((and_(Enrollment.status == "active", held), 1))),
        )
        .where(Enrollment.sequence_id == sid)
        .group_by(Enrollment.version, Enrollment.step_id, Enrollment.status, reason)
    ).all()
    now: dict[str, int] = {}
    holding: dict[str, int] = {}
    left: dict[str, int] = {}
    exits: dict[str, int] = {}
    by_version: dict[str, dict[str, int]] = {}
    entered = completed = 0
    for version, step_id, status, why, count, stuck in rows:
        entered += count
        statuses = by_version.setdefault(version, {})
        statuses[status] = statuses.get(status, 0) + count
        if status == "active":
            now[step_id] = now.get(step_id, 0) + count
            holding[step_id] = holding.get(step_id, 0) + stuck
        elif status == "completed":
            completed += count
        else:
            exits[why] = exits.get(why, 0) + count
            left[step_id] = left.get(step_id, 0) + count
    kinds, edges = _decided(session, sequence)
    passed = _emails_passed(session, sid) | _passed_on(sequence, kinds, now, left)
    steps = {
        key: AtStep(now.get(key, 0), holding.get(key, 0), passed.get(key, 0), left.get(key, 0))
        for key in {*now, *left, *passed}
    }
    return Figures(entered, completed, steps, exits, edges, by_version)


def _emails_passed(session: Session, sequence_id: str) -> dict[str, int]:
    query = (
        select(Delivery.step_id, func.count())
        .where(Delivery.sequence_id == sequence_id, Delivery.status.in_(PASSED_EMAIL))
        .group_by(Delivery.step_id)
    )
    return {step: count for step, count in session.execute(query)}


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _decided(
    session: Session, sequence: Sequence
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """From the decision log, in one grouped scan of the sequence's decisions: how many
    of each kind each step has, and per edge out of a branch or a wait for an event,
    the times leads went that way, read from the reasons the engine wrote
    (nurture.core.journey: "…, went to X (seen: …)" for a branch, "… -> X" for a wait
    that ended)."""
    ways: dict[tuple[str, str], ColumnElement[bool]] = {}
    for step in sequence.steps:
        if isinstance(step, BranchStep):
            for target in {*(rule.goto for rule in step.rules), step.otherwise}:
                went = DecisionLog.reason.like(f"%, went to {_like(target)} (seen:%", escape="\\")
                ways[(step.id, target)] = and_(DecisionLog.kind == BRANCH, went)
        elif isinstance(step, WaitStep) and step.until_event is not None:
            for target in {step.next, step.on_event or step.next}:
                went = DecisionLog.reason.like(f"% -> {_like(target)}", escape="\\")
                ways[(step.id, target)] = and_(DecisionLog.kind == RESUMED, went)
    query = (
        select(
            DecisionLog.step_id,
            DecisionLog.kind,
            func.count(),
            *(func.count(case((way, 1))) for way in ways.values()),
        )
        .where(
            DecisionLog.sequence_id == sequence.id,
            DecisionLog.kind.in_((WAITING, RESUMED, BRANCH)),
            DecisionLog.step_id.is_not(None),
        )
        .group_by(DecisionLog.step_id, DecisionLog.kind)
    )
    kinds: dict[tuple[str, str], int] = {}
    edges = {(source, FINISH if target == END else target): 0 for source, target in ways}
    for step_id, kind, count, *taken in session.execute(query):
        if step_id is None:  # pragma: no cover - the query leaves them out
            continue
        kinds[(step_id, kind)] = count
        for (source, target), times in zip(ways, taken, strict=True):
            if source == step_id:
                edges[(source, FINISH if target == END else target)] += times
    return kinds, edges


def _passed_on(
    sequence: Sequence, kinds: Mapping[tuple[str, str], int], now: Mapping[str, int],
    left: Mapping[str, int],
) -> dict[str, int]:  # fmt: skip
    """Passes through the waits and branches of `sequence`, by the kind of step each
    is in it (older versions' steps of the same ids count with them)."""
    passed: dict[str, int] = {}
    for step in sequence.steps:
        if isinstance(step, BranchStep):
            passed[step.id] = kinds.get((step.id, BRANCH), 0)
        elif isinstance(step, WaitStep) and step.until_event is not None:
            passed[step.id] = kinds.get((step.id, RESUMED), 0)
        elif isinstance(step, WaitStep):
            # Each lead that begins to wait writes it once: those that began and are
            # neither still waiting nor gone from there went on.
            began = kinds.get((step.id, WAITING), 0)
            passed[step.id] = max(began - now.get(step.id, 0) - left.get(step.id, 0), 0)
    return passed


def step_figures(session: Session, sequence: Sequence, period: Period) -> Table:
    """The sequences report (`nurture report sequences`) for this sequence alone: a
    row for the whole sequence, then one per step in file order."""
    rows = [row for row in step_counts(session, period) if row.sequence == sequence.id]
    order = {sequence.id: tuple(step.id for step in sequence.steps)}
    return sequences_table(rows, period, order)
