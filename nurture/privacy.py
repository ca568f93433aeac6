"""Personal data rights: export everything held on a person, erase it, and purge
prospects who have shown no interest for the retention period.

Erasing keeps one thing: the keyed hash of the address on the suppression list, so
the person is never mailed again even if their address comes back. Every export,
erasure and purge is logged, without personal data (the log holds the keyed hash).
docs/privacy.md lists every place personal data can be and how these reach it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default as email_policy
from pathlib import Path
from typing import Any

from sqlalchemy import Text, and_, cast, delete, exists, or_, select, update
from sqlalchemy.orm import Session

from nurture.accounts import forget_empty
from nurture.confirmation import forget as forget_confirmations
from nurture.idempotency import forget
from nurture.leads import find_lead
from nurture.mail import OutboxMailer
from nurture.models import (
    AccountPromotion,
    Base,
    Consent,
    CrmPush,
    DecisionLog,
    Delivery,
    Digest,
    Enrollment,
    Event,
    FieldHistory,
    FormConfirmation,
    Lead,
    PrivacyLog,
    Promotion,
    SalesFeedback,
    ScoreChange,
    SplitAssignment,
    StageChange,
    TrackingHit,
)
from nurture.suppression import ListKey, check_key, suppress


@dataclass(frozen=True)
class Removed:
    """Who went, and the Message-IDs of what had been sent to them (their outbox files)."""

    emails: tuple[str, ...]
    message_ids: tuple[str, ...]


PROSPECT_STAGES = ("subscriber", "lead", "mql", "recycled", "disqualified")
# What a prospect does that shows interest; opens don't count (machines open mail).
PASSIVE_EVENTS = ("email_opened", "stage_changed", "unsubscribed", "bounced")


def _row(item: Base) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column in item.__table__.columns:
        value = getattr(item, column.key)
        values[column.key] = value.isoformat() if isinstance(value, datetime) else value
    return values


def export(session: Session, key: ListKey, email: str, now: datetime) -> dict[str, Any] | None:
    """Everything held on the person with this address, as JSON-ready values."""
    lead = find_lead(session, email)
    waiting = [
        _row(c)
        for c in session.scalars(select(FormConfirmation).where(FormConfirmation.email == email))
    ]
    if lead is None and not waiting:
        return None
    check_key(session, key, now)  # the log's hash is keyed as the list is
    if lead is None:  # only a form submission waiting for its confirmation
        session.add(PrivacyLog(action="export", email_hash=key.digest(email), detail="", at=now))
        return {"exported_at": now.isoformat(), "lead": None, "form_confirmations": waiting}

    def rows(model: type[Base], *where: Any) -> list[dict[str, Any]]:
        return [_row(item) for item in session.scalars(select(model).where(*where))]

    promotion_ids = select(Promotion.id).where(Promotion.lead_id == lead.id)
    data = {
        "exported_at": now.isoformat(),
        "lead": _row(lead),
        "consents": rows(Consent, Consent.lead_id == lead.id),
        "field_history": rows(FieldHistory, FieldHistory.lead_id == lead.id),
        "enrollments": rows(Enrollment, Enrollment.lead_id == lead.id),
        "deliveries": rows(Delivery, Delivery.lead_id == lead.id),
        "events": rows(Event, Event.lead_id == lead.id),
        "tracking_hits": rows(TrackingHit, TrackingHit.lead_id == lead.id),
        "score_changes": rows(ScoreChange, ScoreChange.lead_id == lead.id),
        "stage_changes": rows(StageChange, StageChange.lead_id == lead.id),
        "promotions": rows(Promotion, Promotion.lead_id == lead.id),
        "sales_feedback": rows(SalesFeedback, SalesFeedback.promotion_id.in_(promotion_ids)),
        "crm_pushes": rows(CrmPush, CrmPush.promotion_id.in_(promotion_ids)),
        "decisions": rows(DecisionLog, DecisionLog.lead_id == lead.id),
        "split_assignments": rows(SplitAssignment, SplitAssignment.lead_id == lead.id),
        "form_confirmations": waiting,
    }
    session.add(PrivacyLog(action="export", email_hash=key.digest(lead.email), detail="", at=now))
    return data


def erase(
    session: Session, key: ListKey, email: str, now: datetime, reason: str = "erasure request"
) -> Removed | None:
    """Remove everything held on the person; keep only the keyed suppression entry.
    None when nothing was held (the address is suppressed all the same)."""
    lead = find_lead(session, email)
    suppress(session, key, email, "erased", now)
    waiting = forget_confirmations(session, email)  # submissions awaiting double opt-in
    hashed = key.digest(email)
    if lead is None:
        held = f"{waiting} form submission(s) awaiting confirmation" if waiting else "no data held"
        session.add(PrivacyLog(action="erase", email_hash=hashed, detail=held, at=now))
        return Removed((email,), ()) if waiting else None
    forget(session, lead.email)  # API answers that carried the lead
    removed = _delete(session, [lead])
    session.add(PrivacyLog(action="erase", email_hash=hashed, detail=reason[:500], at=now))
    return removed


def _delete(session: Session, leads: list[Lead]) -> Removed:
    """Delete leads and everything hanging from them (children first: no FK surprises)."""
    lead_ids = [lead.id for lead in leads]
    names = {name for lead in leads for name in (lead.email, lead.public_id)}
    _scrub_digests(session, names)
    message_ids = tuple(
        session.scalars(select(Delivery.message_id).where(Delivery.lead_id.in_(lead_ids)))
    )
    removed = Removed(tuple(lead.email for lead in leads), message_ids)
    promotions = select(Promotion.id).where(Promotion.lead_id.in_(lead_ids))
    for statement in (
        # An account's promotion keeps its count and reason, not who was promoted.
        update(AccountPromotion)
        .where(AccountPromotion.lead_id.in_(lead_ids))
        .values(lead_id=None, promotion_id=None),
        delete(SalesFeedback).where(SalesFeedback.promotion_id.in_(promotions)),
        delete(CrmPush).where(CrmPush.promotion_id.in_(promotions)),
        delete(Promotion).where(Promotion.lead_id.in_(lead_ids)),
        delete(TrackingHit).where(TrackingHit.lead_id.in_(lead_ids)),
        delete(ScoreChange).where(ScoreChange.lead_id.in_(lead_ids)),
        delete(StageChange).where(StageChange.lead_id.in_(lead_ids)),
        delete(Event).where(Event.lead_id.in_(lead_ids)),
        delete(Delivery).where(Delivery.lead_id.in_(lead_ids)),
        delete(SplitAssignment).where(SplitAssignment.lead_id.in_(lead_ids)),
        delete(Enrollment).where(Enrollment.lead_id.in_(lead_ids)),
        delete(Consent).where(Consent.lead_id.in_(lead_ids)),
        delete(FieldHistory).where(FieldHistory.lead_id.in_(lead_ids)),
        delete(DecisionLog).where(DecisionLog.lead_id.in_(lead_ids)),
        delete(Lead).where(Lead.id.in_(lead_ids)),
    ):
        session.execute(statement.execution_options(synchronize_session=False))
    forget_empty(session)  # an account left with no contact: its domain may name them
    session.expire_all()
    return removed


def _scrub_digests(session: Session, names: set[str]) -> None:
    """Take the leads out of the record of daily digests sent to sales (older rows name
    leads by address, newer ones by public id)."""
    if not names:
        return
    listed = cast(Digest.leads, Text)
    # One scan for the whole batch (a retention purge removes hundreds at once).
    mentions = or_(*(listed.contains(name, autoescape=True) for name in sorted(names)))
    for digest in session.scalars(select(Digest).where(mentions)):
        digest.leads = [entry for entry in digest.leads if entry not in names]


def forget_files(outbox: Path, removed: Removed) -> int:
    """Delete the outbox files of what was sent to these people, and any other outbox
    message that names them (a digest to sales): how many files went."""
    if not removed.emails or not outbox.is_dir():
        return 0
    gone = 0
    mailer = OutboxMailer(outbox)
    for message_id in removed.message_ids:
        with contextlib.suppress(FileNotFoundError):
            mailer.path_of(message_id).unlink()
            gone += 1
    wanted = [address.lower() for address in removed.emails]
    for path in outbox.glob("*.eml"):
        with contextlib.suppress(FileNotFoundError):
            if _names_anyone(path.read_bytes(), wanted):
                path.unlink()
                gone += 1
    return gone


def _names_anyone(data: bytes, addresses: Iterable[str]) -> bool:
    """Whether a message names one of these addresses, in its headers or its decoded
    parts (quoted-printable may break an address across lines)."""
    message = message_from_bytes(data, policy=email_policy)
    texts = [str(value) for value in message.values()]
    for part in message.walk():
        if part.get_content_maintype() == "text":
            with contextlib.suppress(LookupError, ValueError):
                texts.append(part.get_content())
    found = "\n".join(texts).lower()
    return any(address in found for address in addresses)


def expired(session: Session, now: datetime, days: int, limit: int = 500) -> list[Lead]:
    """Prospects with no sign of interest (a click, a reply, a form…) for `days` days."""
    cutoff = now - timedelta(days=days)
    interest = exists().where(
        Event.lead_id == Lead.id,
        Event.occurred_at >= cutoff,
        Event.name.not_in(PASSIVE_EVENTS),
        or_(Event.classification.is_(None), Event.classification == "human"),
    )
    return list(
        session.scalars(
            select(Lead)
            .where(and_(Lead.stage.in_(PROSPECT_STAGES), Lead.created_at < cutoff, ~interest))
            .order_by(Lead.id)
            .limit(limit)
        )
    )


def purge(
    session: Session, key: ListKey, now: datetime, days: int, dry_run: bool = False
) -> Removed:
    """Delete expired prospects (no suppression: they did not object)."""
    leads = expired(session, now, days)
    if dry_run or not leads:
        return Removed(tuple(lead.email for lead in leads), ())
    for lead in leads:  # logged before the rows go
        session.add(
            PrivacyLog(
                action="retention",
                email_hash=key.digest(lead.email),
                detail=f"no interest shown for {days} days",
                at=now,
            )
        )
    return _delete(session, leads)
