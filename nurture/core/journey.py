"""Walking one lead through one sequence: given where it stands and what it did, what next.

Pure: the dispatcher and the simulator call `walk` with the same facts, so a
simulated timeline and a real one follow the same rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from nurture.core.decisions import BRANCH, RESUMED, SPLIT, Decision, seen
from nurture.core.experiments import assign, assignment_text
from nurture.core.profile import LeadProfile
from nurture.core.sequences import (
    END,
    HOLDOUT,
    BranchStep,
    Clicked,
    Condition,
    EmailStep,
    EventSeen,
    FieldMatches,
    NotClicked,
    Opened,
    ScoreAtLeast,
    Sequence,
    SplitStep,
    StageIs,
    WaitStep,
    as_text,
    describe_condition,
)
from nurture.core.timing import add_duration

MAX_HOPS = 200  # validation forbids cycles without a wait; this only guards against bugs


@dataclass(frozen=True)
class EventFact:
    name: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Facts:
    """What the lead did, as far as this enrollment is concerned."""

    lead: LeadProfile
    clicked: frozenset[str] = frozenset()  # email step ids clicked in this enrollment
    opened: frozenset[str] = frozenset()
    done: frozenset[str] = frozenset()  # email steps already settled (sent, skipped, uncertain)
    events: tuple[EventFact, ...] = ()  # the lead's events since it entered
    # Splits: what the lead's assignment hashes (the lead's id; else its email), the
    # variants it was assigned already (split id -> name), and each split's winner.
    lead_key: str = ""
    splits: Mapping[str, str] = field(default_factory=dict)
    winners: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    step_id: str
    started_at: datetime  # when the lead arrived at this step


@dataclass(frozen=True)
class SendEmail:
    step: EmailStep
    position: Position


@dataclass(frozen=True)
class Sleep:
    until: datetime | None  # None: waits for an event only, no timeout
    position: Position
    waiting_for: str | None = None


@dataclass(frozen=True)
class Finish:
    position: Position
    reason: str = "completed"


Outcome = SendEmail | Sleep | Finish


@dataclass(frozen=True)
class Walk:
    outcome: Outcome
    trail: tuple[str, ...] = ()  # what was decided on the way, for timelines and notes
    decisions: tuple[Decision, ...] = ()  # the same, for the decision log
    assigned: Mapping[str, str] = field(default_factory=dict)  # new split assignments


def holds(condition: Condition, facts: Facts, since: datetime | None = None) -> bool:
    """Does a branch condition hold for these facts?"""
    match condition:
        case Clicked(step):
            return step in facts.clicked
        case NotClicked(step):
            return step not in facts.clicked
        case Opened(step):
            return step in facts.opened or step in facts.clicked
        case ScoreAtLeast(points):
            return facts.lead.score >= points
        case FieldMatches(name, values, rng):
            value = facts.lead.value(name)
            if rng is not None:
                try:
                    return rng.contains(int(value)) if value is not None else False
                except (TypeError, ValueError):
                    return False
            return value is not None and as_text(value) in values
        case StageIs(stages):
            return facts.lead.stage in stages
        case EventSeen(name):
            return any(e.name == name for e in facts.events)
    raise AssertionError(condition)  # pragma: no cover


def waiting(sleep: Sleep) -> str:
    """Why a lead is waiting where it is, for the decision log."""
    until = f"{sleep.until:%Y-%m-%d %H:%M} UTC" if sleep.until is not None else None
    if sleep.waiting_for is not None and until is not None:
        return f"waiting for {sleep.waiting_for}, at the latest until {until}"
    if sleep.waiting_for is not None:
        return f"waiting for {sleep.waiting_for} (no time limit)"
    return f"waiting until {until}"


def _seen(condition: Condition, facts: Facts) -> str:
    names = (e.name for e in facts.events)
    return seen(condition, facts.lead, facts.clicked, facts.opened, names)


def _event_matches(event: EventFact, name: str, match: Mapping[str, str], since: datetime) -> bool:
    if event.name != name or event.occurred_at < since:
        return False
    return all(str(event.properties.get(k)) == v for k, v in match.items())


def walk(
    sequence: Sequence,
    position: Position,
    facts: Facts,
    now: datetime,
    tz: ZoneInfo,
    holidays: frozenset[date] = frozenset(),
) -> Walk:
    """Move from `position` as far as `now` allows; stop at an email to send, a wait, or the end."""
    trail: list[str] = []
    decided: list[Decision] = []
    assigned: dict[str, str] = {}

    def done(outcome: Outcome) -> Walk:
        return Walk(outcome, tuple(trail), tuple(decided), assigned)

    for _ in range(MAX_HOPS):
        if position.step_id == END:
            return done(Finish(position))
        step = sequence.step(position.step_id)
        if step is None:
            # The pinned version always has its steps; only a corrupted row lands here.
            return done(Finish(position, f"unknown step {position.step_id}"))
        match step:
            case EmailStep():
                if step.id not in facts.done:
                    return done(SendEmail(step, position))
                position = Position(step.next, position.started_at)
            case BranchStep():
                target = step.otherwise
                chosen = "otherwise"
                looked: list[str] = []
                for rule in step.rules:
                    looked.append(_seen(rule.condition, facts))
                    if holds(rule.condition, facts):
                        target = rule.goto
                        chosen = describe_condition(rule.condition)
                        break
                trail.append(f"branch {step.id}: {chosen} -> {target}")
                matched = "no rule held" if chosen == "otherwise" else f"{chosen} held"
                values = "; ".join(dict.fromkeys(looked))
                decided.append(
                    Decision(
                        BRANCH,
                        f"{matched}, went to {target} (seen: {values})",
                        sequence.id,
                        step.id,
                    )
                )
                position = Position(target, position.started_at)
            case SplitStep():
                name = facts.splits.get(step.id) or assigned.get(step.id)
                if name is None:
                    winner = facts.winners.get(step.id)
                    name = assign(step, sequence.id, facts.lead_key or facts.lead.email, winner)
                    assigned[step.id] = name
                    reason = assignment_text(step, name, winner)
                    trail.append(f"split {step.id}: {reason.removeprefix('split: ')}")
                    decided.append(Decision(SPLIT, reason, sequence.id, step.id))
                email = step.email_of(name)
                if email is not None and step.id not in facts.done:
                    return done(SendEmail(email, position))
                # The holdout, and a variant a later version of the file no longer has,
                # go on after the split.
                target = step.next if name == HOLDOUT else step.target_of(name)
                position = Position(target, position.started_at)
            case WaitStep():
                outcome = _wait(step, position, facts, now, tz, holidays, trail)
                if isinstance(outcome, Sleep):
                    return done(outcome)
                if trail and trail[-1].startswith(f"wait {step.id}:"):
                    ended = trail[-1].removeprefix(f"wait {step.id}: ")
                    decided.append(Decision(RESUMED, ended, sequence.id, step.id))
                position = outcome
    raise RuntimeError(f"{sequence.id}: more than {MAX_HOPS} steps without a wait")


def _wait(
    step: WaitStep,
    position: Position,
    facts: Facts,
    now: datetime,
    tz: ZoneInfo,
    holidays: frozenset[date],
    trail: list[str],
) -> Sleep | Position:
    if step.until_event is not None:
        for event in sorted(facts.events, key=lambda e: e.occurred_at):
            if _event_matches(event, step.until_event, step.until_match, position.started_at):
                target = step.on_event or step.next
                trail.append(f"wait {step.id}: {step.until_event} happened -> {target}")
                return Position(target, max(event.occurred_at, position.started_at))
        if step.timeout is None:
            return Sleep(None, position, step.until_event)
        deadline = add_duration(position.started_at, step.timeout, tz, holidays)
        if now < deadline:
            return Sleep(deadline, position, step.until_event)
        trail.append(f"wait {step.id}: no {step.until_event} within {step.timeout} -> {step.next}")
        return Position(step.next, deadline)
    assert step.duration is not None
    wake = add_duration(position.started_at, step.duration, tz, holidays)
    if now < wake:
        return Sleep(wake, position)
    # Later steps count from when the wait ended, not from when a worker noticed.
    return Position(step.next, wake)


def after_send(step: EmailStep | SplitStep, sent_at: datetime) -> Position:
    """Where a lead stands once an email step's delivery is settled."""
    return Position(step.next, sent_at)


def settle(facts: Facts, step_id: str) -> Facts:
    return replace(facts, done=facts.done | {step_id})
