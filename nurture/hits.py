"""Tracking hits into evidence: classify each stored open or click, then record its event.

The web routes only write a hit down (nurture/spool.py). A worker claims the hits not
yet processed, in the order they were stored, a batch per transaction, and for each:
labels it (human, machine_open, scanner, unknown) with the delivery's other clicks
around it, re-labels the clicks a scanner made just before, and records the event
through `evidence.record` (sequence reactions, score, stage, promotion). Scores
follow the reader by one worker interval (about a second).

A hit that fails is set aside with its error, and the rest of its batch goes on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, case, func, select, update
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from nurture.config import Settings
from nurture.content import Content
from nurture.core.engagement import Click, Hit, Rules, Verdict, classify
from nurture.db import among, skip_locked
from nurture.evidence import record
from nurture.models import Delivery, Event, Lead, TrackingHit
from nurture.scores import rescore_leads

log = logging.getLogger(__name__)

RULES = Rules()
BATCH = 500


@dataclass(frozen=True)
class Processed:
    done: int = 0
    failed: int = 0

    def __add__(self, other: Processed) -> Processed:
        return Processed(self.done + other.done, self.failed + other.failed)

    def __str__(self) -> str:
        return f"{self.done} processed, {self.failed} failed"


def process(
    sessions: sessionmaker[Session],
    content: Content,
    settings: Settings,
    now: datetime,
    batch: int = BATCH,
) -> Processed:
    """Every hit waiting, batch after batch, until none is left."""
    total = Processed()
    while True:
        done = process_batch(sessions, content, settings, now, batch)
        total += done
        if done.done + done.failed < batch:
            return total


def process_batch(
    sessions: sessionmaker[Session],
    content: Content,
    settings: Settings,
    now: datetime,
    batch: int = BATCH,
) -> Processed:
    """Up to `batch` waiting hits in one transaction; should one fail, each on its own."""
    ids: list[int] = []
    try:
        with sessions.begin() as session:
            hits = list(session.scalars(_waiting(session, batch)))
            ids = [hit.id for hit in hits]
            _handle(session, content, settings, hits, now)
            return Processed(done=len(hits))
    except (OperationalError, InterfaceError):
        raise  # the database is away or busy: the whole batch waits for the next run
    except Exception:
        if not ids:
            raise
        log.warning("a batch of %d tracking hits failed; processing them one by one", len(ids))
    result = Processed()
    for hit_id in ids:
        result += _one(sessions, content, settings, hit_id, now)
    return result


def waiting(session: Session) -> int:
    """How many hits wait for a worker (the backlog)."""
    count = session.scalar(
        select(func.count()).select_from(TrackingHit).where(TrackingHit.processed_at.is_(None))
    )
    return count or 0


def _waiting(session: Session, limit: int) -> Select[Any]:
    query = (
        select(TrackingHit)
        .where(TrackingHit.processed_at.is_(None))
        .order_by(TrackingHit.id)
        .limit(limit)
    )
    return skip_locked(session, query)


def _one(
    sessions: sessionmaker[Session],
    content: Content,
    settings: Settings,
    hit_id: int,
    now: datetime,
) -> Processed:
    try:
        with sessions.begin() as session:
            query = skip_locked(
                session,
                select(TrackingHit).where(
                    TrackingHit.id == hit_id, TrackingHit.processed_at.is_(None)
                ),
            )
            hits = list(session.scalars(query))
            _handle(session, content, settings, hits, now)
            return Processed(done=len(hits))
    except (OperationalError, InterfaceError):
        raise
    except Exception as error:
        log.exception("tracking hit %s could not be processed; set aside", hit_id)
        with sessions.begin() as session:
            session.execute(
                update(TrackingHit)
                .where(TrackingHit.id == hit_id, TrackingHit.processed_at.is_(None))
                .values(processed_at=now, error=f"{type(error).__name__}: {error}"[:500])
            )
        return Processed(failed=1)


def _handle(
    session: Session,
    content: Content,
    settings: Settings,
    hits: list[TrackingHit],
    now: datetime,
) -> None:
    # One query each for the deliveries and leads of the batch; kept referenced so
    # the session's identity map answers every later `get`. On PostgreSQL both are
    # locked up front, in id order: batches of several workers touching the same
    # leads (a reader's open and click in two batches) then queue instead of
    # deadlocking, which rolled back a batch of 500 after a second's wait.
    lock = session.get_bind().dialect.name == "postgresql"
    by_delivery = select(Delivery).where(Delivery.id.in_({h.delivery_id for h in hits}))
    if lock:
        by_delivery = by_delivery.order_by(Delivery.id).with_for_update()
    deliveries = {d.id: d for d in session.scalars(by_delivery)}
    by_lead = select(Lead).where(Lead.id.in_({d.lead_id for d in deliveries.values()}))
    if lock:
        by_lead = by_lead.order_by(Lead.id).with_for_update()
    leads = {lead.id: lead for lead in session.scalars(by_lead)}
    for hit in hits:
        delivery = deliveries.get(hit.delivery_id)
        lead = leads.get(delivery.lead_id) if delivery is not None else None
        if delivery is None or lead is None:
            hit.processed_at, hit.error = now, "delivery gone"
            continue
        _process(session, content, settings, delivery, lead, hit, now)
    summarise(session, deliveries)


# Each engagement column of a delivery, from the hits that make it.
ENGAGEMENT = {
    "opened_at": and_(TrackingHit.classification == "human", TrackingHit.kind == "open"),
    "clicked_at": and_(TrackingHit.classification == "human", TrackingHit.kind == "click"),
    "machine_opened_at": TrackingHit.classification == "machine_open",
    "scanned_at": TrackingHit.classification == "scanner",
}


def summarise(session: Session, deliveries: dict[int, Delivery]) -> None:
    """Each delivery of the batch: its first hit of each engagement kind, read again
    from all its hits (a scanner caught now relabels earlier "human" clicks)."""
    if not deliveries:
        return
    firsts = [func.min(case((where, TrackingHit.at))) for where in ENGAGEMENT.values()]
    rows = session.execute(
        select(TrackingHit.delivery_id, *firsts)
        .where(
            among(session, TrackingHit.delivery_id, deliveries),
            TrackingHit.classification.is_not(None),
        )
        .group_by(TrackingHit.delivery_id)
    )
    for delivery_id, *values in rows:
        delivery = deliveries[delivery_id]
        for name, value in zip(ENGAGEMENT, values, strict=True):
            if getattr(delivery, name) != value:  # unchanged rows are not written
                setattr(delivery, name, value)


def _process(
    session: Session,
    content: Content,
    settings: Settings,
    delivery: Delivery,
    lead: Lead,
    hit: TrackingHit,
    now: datetime,
) -> None:
    verdict = classify(_as_hit(session, delivery, hit), RULES)
    if verdict.classification == "scanner":
        _relabel(session, content, delivery, hit, verdict)
    properties = {
        "message_id": delivery.message_id,
        "sequence": delivery.sequence_id,
        "step": delivery.step_id,
        "kind": delivery.kind,
        "template": delivery.template,
        "classification": verdict.classification,
    }
    if hit.url is not None:
        properties.update(url=hit.url, link=str(hit.link))
    event, _ = record(
        session,
        content,
        settings,
        lead,
        "email_opened" if hit.kind == "open" else "email_clicked",
        properties,
        hit.at,
        origin="tracking",
        delivery_id=delivery.id,
        classification=verdict.classification,
    )
    hit.classification = verdict.classification
    hit.reasons = list(verdict.reasons)
    hit.event_id = event.id
    hit.processed_at = now


def _as_hit(session: Session, delivery: Delivery, hit: TrackingHit) -> Hit:
    """The stored hit as `classify` reads it, with the delivery's clicks around it
    (before and after: the windows are symmetric, and hits arrive out of order)."""
    others: tuple[Click, ...] = ()
    if hit.kind == "click":
        others = tuple(
            Click(at, index)
            for at, index in session.execute(
                select(TrackingHit.at, TrackingHit.link)
                .where(
                    TrackingHit.delivery_id == delivery.id,
                    TrackingHit.kind == "click",
                    TrackingHit.id != hit.id,
                    TrackingHit.at >= hit.at - RULES.lookback,
                    TrackingHit.at <= hit.at + RULES.lookback,
                )
                .order_by(TrackingHit.at)
            )
            if index is not None
        )
    links = len(delivery.links or ()) - (1 if delivery.honeypot is not None else 0)
    return Hit(
        kind="open" if hit.kind == "open" else "click",
        at=hit.at,
        delivered_at=delivery.sent_at,
        method=hit.method,
        user_agent=hit.user_agent or "",
        ip=hit.ip or "",
        link_index=hit.link if hit.kind == "click" else None,
        links_in_email=max(links, 0),
        honeypot_index=delivery.honeypot,
        other_clicks=others,
    )


def _relabel(
    session: Session, content: Content, delivery: Delivery, hit: TrackingHit, verdict: Verdict
) -> None:
    """A scanner caught now was also behind this delivery's "human" clicks around it
    (a gateway that walks every link): label them too, and re-score the lead."""
    earlier = list(
        session.scalars(
            select(TrackingHit).where(
                TrackingHit.delivery_id == delivery.id,
                TrackingHit.kind == "click",
                TrackingHit.id != hit.id,
                TrackingHit.processed_at.is_not(None),
                TrackingHit.classification != "scanner",
                TrackingHit.at >= hit.at - RULES.lookback,
                TrackingHit.at <= hit.at + RULES.lookback,
            )
        )
    )
    if not earlier:
        return
    for other in earlier:
        other.classification = "scanner"
        other.reasons = [*other.reasons, *(f"re-labelled: {r}" for r in verdict.reasons)]
    session.execute(
        update(Event)
        .where(Event.id.in_([h.event_id for h in earlier if h.event_id is not None]))
        .values(classification="scanner")
    )
    if content.scoring is not None:
        rescore_leads(session, content.scoring, [delivery.lead_id], hit.at)
