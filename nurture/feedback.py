"""Sales feedback: the CRM's answers about a promotion, and the SLA on answering.

Each answer is stored once (its `external_id` recognises replays); the promotion's
status is then recomputed from every answer received, so replays and out-of-order
delivery end in the same state. Side effects (stage, recycling) follow the status.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.accounts import block
from nurture.content import Content
from nurture.core.decisions import NOT_RECYCLED, Decision
from nurture.core.sales import STAGE_AFTER, Answer, accepted_at, final_answer, first_at
from nurture.decisions import note
from nurture.enrollment import enter, set_stage
from nurture.models import Lead, Promotion, SalesFeedback


class UnknownPromotion(LookupError):
    """No promotion matches this answer (wrong id or lead)."""


@dataclass(frozen=True)
class FeedbackResult:
    promotion_id: int
    status: str
    replay: bool  # this exact answer had been received before
    recycled_into: str | None = None


def receive(
    session: Session,
    content: Content,
    promotion_id: int,
    answer: Answer,
    now: datetime,
    recycle_sequence: str | None = None,
) -> FeedbackResult:
    promotion = session.get(Promotion, promotion_id, with_for_update=True)
    if promotion is None:
        raise UnknownPromotion(f"no promotion {promotion_id}")
    row = SalesFeedback(
        promotion_id=promotion.id,
        external_id=answer.external_id,
        status=answer.status,
        amount=answer.amount,
        reason=answer.reason,
        occurred_at=answer.occurred_at,
        received_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return FeedbackResult(promotion.id, promotion.status, replay=True)
    answers = [
        Answer(f.external_id, f.status, f.occurred_at, f.amount, f.reason)
        for f in session.scalars(
            select(SalesFeedback).where(SalesFeedback.promotion_id == promotion.id)
        )
    ]
    final = final_answer(answers)
    assert final is not None
    previous = promotion.status
    promotion.status = final.status
    promotion.status_at = final.occurred_at
    promotion.amount = final.amount
    promotion.feedback_reason = final.reason
    promotion.accepted_at = accepted_at(answers)
    # The first answer of each kind, kept on the row the reports read (funnel, SLA,
    # velocity) instead of grouping every answer ever received.
    promotion.answered_at = first_at(answers)
    promotion.opportunity_at = first_at(answers, ("opportunity", "won"))
    promotion.won_at = first_at(answers, ("won",))
    recycled = None
    if final.status != previous:
        lead = session.get(Lead, promotion.lead_id)
        assert lead is not None
        recycled = _follow(session, content, lead, promotion, final, now, recycle_sequence)
    return FeedbackResult(promotion.id, promotion.status, replay=False, recycled_into=recycled)


def _follow(
    session: Session,
    content: Content,
    lead: Lead,
    promotion: Promotion,
    final: Answer,
    now: datetime,
    recycle_sequence: str | None,
) -> str | None:
    stage = STAGE_AFTER[final.status]
    cause = f"sales: {final.status}" + (f" ({final.reason})" if final.reason else "")

    def not_recycled(why: str) -> None:
        said = f"recycled by sales, but not put back in a sequence: {why}"
        note(session, lead.id, [Decision(NOT_RECYCLED, said, recycle_sequence)], now)

    by_stage = []  # the sequences entered on `stage_reached: recycled`
    if stage is not None and lead.stage != stage and lead.cycle == promotion.cycle:
        by_stage = set_stage(session, content, lead, stage, now, cause=cause)
    if stage != "recycled" or lead.cycle != promotion.cycle:
        return None
    lead.cycle += 1  # a new cycle: the lead may be promoted again later
    lead.behaviour_points = 0.0  # it earns its way back from fresh evidence
    lead.score = 0
    if recycle_sequence is None:
        if by_stage:
            return by_stage[0].sequence_id
        not_recycled(
            "no sequence is entered on `stage_reached: recycled`, and neither"
            " NURTURE_RECYCLE_SEQUENCE nor the answer named one"
        )
        return None
    sequence = content.get(recycle_sequence)
    if sequence is None:
        not_recycled(f"the sequence {recycle_sequence!r} it named is not live")
        return None
    trigger = f"recycled by sales: {final.reason or final.status}"
    entered = enter(session, content, lead, sequence, trigger, now)
    return recycle_sequence if entered is not None else None


def escalate_overdue(
    session: Session, content: Content, now: datetime, sla: timedelta
) -> list[Promotion]:
    """Promotions nobody accepted in time: re-notify once, then reassign."""
    from nurture.core.routing import Assignment, NoRoute, route
    from nurture.crm import enqueue
    from nurture.leads import profile_of
    from nurture.promotion import payload, rep_load, sla_deadline

    overdue = list(
        session.scalars(
            select(Promotion)
            .where(Promotion.status == "pending", Promotion.sla_due_at <= now)
            .order_by(Promotion.sla_due_at)
            .limit(200)
        )
    )
    for promotion in overdue:
        lead = session.get(Lead, promotion.lead_id)
        assert lead is not None
        promotion.sla_breached = True
        promotion.escalations += 1
        kind = "lead.escalated"
        if promotion.escalations >= 2 and content.routing is not None:
            load = rep_load(session)
            if promotion.rep_email:
                # Weigh the current rep as full so anybody else is preferred.
                load[promotion.rep_email] = 10**6
            try:
                assignment: Assignment | None = route(content.routing, profile_of(lead), load)
            except NoRoute:
                assignment = None
            if assignment is not None and assignment.rep.email != promotion.rep_email:
                promotion.rep_name = assignment.rep.name
                promotion.rep_email = assignment.rep.email
                promotion.routing_rule = f"reassigned after SLA ({assignment.rule})"
                lead.rep_name, lead.rep_email = assignment.rep.name, assignment.rep.email
                kind = "lead.reassigned"
        # A new deadline on the calendar of whoever holds the lead now.
        rep_zone = _zone_of(content, promotion.rep_email)
        promotion.sla_due_at = sla_deadline(now, sla, rep_zone, lead)
        account = block(session, content, lead.account_id, now)
        body = payload(session, lead, promotion, now, content.scoring, account)
        body["escalation"] = {"count": promotion.escalations, "sla_breached": True}
        enqueue(session, kind, body, now, promotion.id)
    return overdue


def _zone_of(content: Content, rep_email: str | None) -> str | None:
    """The timezone the routing file gives this rep, if any."""
    routing = content.routing
    if routing is None or rep_email is None:
        return None
    return next((r.timezone for r in routing.reps if r.email == rep_email), None)
