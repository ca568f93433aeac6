"""Where scoring takes a scenario's lead: its events and clicks scored with the scoring
file's rules, and the stage moves (mql, sql) they call for, as nurture.scores does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from nurture.core.profile import LeadProfile
from nurture.core.scoring import (
    Behaviour,
    ScoreChange,
    Scored,
    ScoringModel,
    current_score,
    grade,
    score_event,
    stage_for,
)


@dataclass(frozen=True)
class Move:
    """The lead reaches `stage` at `at`, and why (scoring's words)."""

    at: datetime
    stage: str
    cause: str


def moves(
    model: ScoringModel,
    lead: LeadProfile,
    start: datetime,
    events: Iterable[Scored],
    stage_changes: Iterable[tuple[datetime, str]] = (),
) -> tuple[Move, ...]:
    """Every stage move scoring makes while the lead's events arrive, in time order.

    The lead starts with its `score` as behaviour points at `start`; `stage_changes`
    are stages set from outside (sales' answers), which scoring then starts from.
    """
    behaviour = Behaviour(float(lead.score), start)
    changes: list[ScoreChange] = []
    stage = lead.stage
    found: list[Move] = []
    timeline: list[tuple[datetime, int, Scored | str]] = [
        (event.occurred_at, 1, event) for event in events
    ]
    timeline += [(at, 0, new_stage) for at, new_stage in stage_changes]
    for at, _, item in sorted(timeline, key=lambda entry: (entry[0], entry[1])):
        if isinstance(item, str):
            stage = item
            continue
        behaviour, change = score_event(model, behaviour, item, changes)
        if change is not None:
            changes.append(change)
        fit = grade(model, replace(lead, stage=stage))
        score = current_score(model, behaviour, at)
        move = stage_for(model, score, fit.grade, stage, item.name)
        if move is not None:
            stage = move.stage
            found.append(Move(at, move.stage, move.cause))
    return tuple(found)
