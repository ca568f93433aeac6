"""Scores in the database: each event scored as it arrives, every change kept with its
reason, the lifecycle moved when thresholds are crossed, and a set-based re-score.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from nurture.content import Content
from nurture.core import scoring
from nurture.core.scoring import Behaviour, Scored, ScoringModel
from nurture.enrollment import set_stage
from nurture.leads import Draft, profile_of
from nurture.models import Event, Lead, ScoreChange


def _scored(event: Event) -> Scored:
    return Scored(
        name=event.name,
        occurred_at=event.occurred_at,
        properties=dict(event.properties or {}),
        id=event.id,
        classification=event.classification,
    )


def _recent(
    session: Session, model: ScoringModel, lead: Lead, at: datetime
) -> list[scoring.ScoreChange]:
    lookback = model.cap_lookback
    if lookback is None:
        return []
    rows = session.scalars(
        select(ScoreChange).where(
            ScoreChange.lead_id == lead.id,
            ScoreChange.at > at - lookback,
            ScoreChange.model_version == model.version,
        )
    )
    return [
        scoring.ScoreChange(
            points=round(r.points), rule=r.rule, reason=r.reason, at=r.at, event="",
            event_id=r.event_id,
        )
        for r in rows
    ]  # fmt: skip


def score_event(
    session: Session, content: Content, lead: Lead, event: Event, now: datetime, sla: timedelta
) -> scoring.ScoreChange | None:
    """Score one recorded event, then let the lifecycle follow (mql, promotion)."""
    model = content.scoring
    if model is None:
        return None
    behaviour = Behaviour(lead.behaviour_points or 0.0, lead.last_activity_at)
    recent = _recent(session, model, lead, event.occurred_at)
    behaviour, change = scoring.score_event(model, behaviour, _scored(event), recent)
    if change is not None:
        lead.behaviour_points = behaviour.points
        lead.last_activity_at = behaviour.last_activity
        session.add(
            ScoreChange(
                lead_id=lead.id,
                event_id=event.id,
                points=float(change.points),
                rule=change.rule[:200],
                reason=_reason(change),
                score_after=change.score_after,
                model_version=model.version,
                at=change.at,
            )
        )
    follow(session, content, lead, now, sla, decisive=event.name, event_id=event.id)
    return change


def follow(
    session: Session,
    content: Content,
    lead: Lead,
    now: datetime,
    sla: timedelta,
    decisive: str | None = None,
    event_id: int | None = None,
) -> None:
    """Refresh grade and score, then move the lead if a threshold is crossed."""
    model = content.scoring
    if model is None:
        return
    lead.grade, lead.score, move = standing(model, lead, now, decisive)
    if move is None:
        return
    if move.stage == "sql":
        from nurture.promotion import promote

        promote(session, content, lead, move.cause, now, sla, event_id=event_id)
    else:
        set_stage(session, content, lead, move.stage, now, cause=move.cause, event_id=event_id)


def standing(
    model: ScoringModel,
    lead: Lead | Draft,
    now: datetime,
    decisive: str | None = None,
    grade: str | None = None,
) -> tuple[str, int, scoring.StageMove | None]:
    """The lead's grade and score now, and the stage move they call for (if any).
    `grade`: the fit grade of the lead as it is, when the caller has just computed it."""
    if grade is None:
        grade = scoring.grade(model, profile_of(lead)).grade
    current = scoring.current_score(
        model, Behaviour(lead.behaviour_points or 0.0, lead.last_activity_at), now
    )
    move = scoring.stage_for(model, current, grade, lead.stage, decisive)
    return grade, scoring.whole_points(current), move


@dataclass(frozen=True)
class RescoreReport:
    leads: int
    changes: int


def _chunks(ids: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def rescore(
    sessions: sessionmaker[Session], model: ScoringModel, now: datetime, chunk: int = 2000
) -> RescoreReport:
    """Recompute every lead's score from the event log with `model`, chunk by chunk.

    Set-based: per chunk, one query reads the events, one deletes the old changes,
    one bulk insert writes the new ones, one bulk update writes the leads. Stages
    are not moved here (a new model should not promote a backlog in one go);
    thresholds apply again from the next event of each lead.
    """
    with sessions() as session:
        ids = list(session.scalars(select(Lead.id).order_by(Lead.id)))
    leads = changes = 0
    for part in _chunks(ids, chunk):
        with sessions.begin() as session:
            changes += rescore_leads(session, model, part, now)
            leads += len(part)
    return RescoreReport(leads, changes)


def rescore_leads(session: Session, model: ScoringModel, lead_ids: list[int], now: datetime) -> int:
    """Replace these leads' score changes by a replay of their event log; how many changes."""
    events: dict[int, list[Scored]] = defaultdict(list)
    for event in session.scalars(select(Event).where(Event.lead_id.in_(lead_ids))):
        events[event.lead_id].append(_scored(event))
    leads = {lead.id: lead for lead in session.scalars(select(Lead).where(Lead.id.in_(lead_ids)))}
    session.execute(delete(ScoreChange).where(ScoreChange.lead_id.in_(lead_ids)))
    rows = []
    updates = []
    for lead_id, lead in leads.items():
        state = scoring.replay(model, events.get(lead_id, ()))
        rows += [
            {
                "lead_id": lead_id,
                "event_id": change.event_id,
                "points": float(change.points),
                "rule": change.rule[:200],
                "reason": _reason(change),
                "score_after": change.score_after,
                "model_version": model.version,
                "at": change.at,
            }
            for change in state.changes
        ]
        behaviour = state.behaviour
        updates.append(
            {
                "id": lead_id,
                "behaviour_points": behaviour.points,
                "last_activity_at": behaviour.last_activity,
                "score": scoring.whole_points(scoring.current_score(model, behaviour, now)),
                "grade": scoring.grade(model, profile_of(lead)).grade,
            }
        )
    if rows:
        session.execute(insert(ScoreChange), rows)
    if updates:
        session.flush()
        session.execute(update(Lead), updates)
        for lead in leads.values():
            session.expire(lead)
    return len(rows)


def _reason(change: scoring.ScoreChange) -> str:
    return (change.reason + (f" ({change.detail})" if change.detail else ""))[:500]


def explain(session: Session, model: ScoringModel, lead: Lead, now: datetime) -> list[str]:
    """Why this score: the changes behind it, decayed to now, and the grade's reasons."""
    rows = session.scalars(
        select(ScoreChange)
        .where(ScoreChange.lead_id == lead.id, ScoreChange.model_version == model.version)
        .order_by(ScoreChange.at)
    )
    changes = tuple(
        scoring.ScoreChange(
            points=round(r.points), rule=r.rule, reason=r.reason, at=r.at, event="",
            event_id=r.event_id, score_after=r.score_after,
        )
        for r in rows
    )  # fmt: skip
    state = scoring.ScoreState(
        Behaviour(lead.behaviour_points or 0.0, lead.last_activity_at), changes, model.version
    )
    return scoring.explain(model, state, scoring.grade(model, profile_of(lead)), now)
