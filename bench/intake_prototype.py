"""Prototypes of a faster intake, measured by `bench/intake.py --prototype ...`.

They patch the engine in the benchmark's own process (CSV import) or in each gunicorn
worker (API, through bench/intake_gunicorn.py); the engine's files are not touched.
Each answers "how much would this change give?" for one hot spot found by profiling:

- `versions-once`: `Content.store_versions` runs once per transaction, not once per
  enrolment (it upserts every live sequence's full source each time).
- `batch-insert`: `take_many` creates the batch's new leads first, with one flush (one
  multi-row INSERT ... RETURNING id), then lets sequences, qualification and scoring
  react lead by lead with every id known; today `upsert_lead` flushes once per new lead.
- `new-lead-enter` (with `batch-insert`): entering a sequence skips the look-up of an
  earlier enrolment and the savepoint for a lead created in this same transaction, which
  nobody else can see yet, so it can have no earlier or concurrent enrolment.

Reactions are copied from `nurture.intake.take`; a lead created with a consent record in
the same item keeps the engine's own flush (its consent row needs the id at once).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.content import Content
from nurture.core.intake import LeadInput
from nurture.core.sequences import Sequence
from nurture.enrollment import on_created, on_tags, set_stage
from nurture.leads import email_hash, upsert_lead
from nurture.models import Enrollment, Lead, Suppression
from nurture.qualifying import qualify_lead
from nurture.scores import follow

NAMES = ("versions-once", "batch-insert", "new-lead-enter")
_NEW = "intake_prototype_new_leads"  # session.info: ids of leads created in this transaction
_ENTERED = "intake_prototype_entered"  # session.info: (lead id, sequence id) entered
_STORED = "intake_prototype_versions"  # session.info: transactions that stored versions
_originals: dict[tuple[Any, str], Any] = {}


def parse(value: str) -> tuple[str, ...]:
    names = NAMES if value == "all" else tuple(v.strip() for v in value.split(",") if v.strip())
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        raise ValueError(f"unknown prototype {unknown[0]} (known: {', '.join(NAMES)}, all)")
    if "new-lead-enter" in names and "batch-insert" not in names:
        raise ValueError("new-lead-enter needs batch-insert (which knows the new leads)")
    return names


def _patch(owner: Any, name: str, replacement: Any) -> None:
    _originals.setdefault((owner, name), getattr(owner, name))
    setattr(owner, name, replacement)


def revert() -> None:
    for (owner, name), original in _originals.items():
        setattr(owner, name, original)
    _originals.clear()


def apply(names: tuple[str, ...]) -> None:
    from nurture import csvimport, enrollment, intake
    from nurture.web import api

    if "versions-once" in names:
        _patch(Content, "store_versions", _versions_once(Content.store_versions))
    if "batch-insert" in names:
        for module in (intake, csvimport, api):  # each holds its own name for it
            _patch(module, "take_many", take_many)
    if "new-lead-enter" in names:
        _patch(enrollment, "enter", _enter(enrollment.enter))


def _versions_once(original: Callable[[Content, Session, datetime], None]) -> Any:
    def store_versions(self: Content, session: Session, now: datetime) -> None:
        transaction = id(session.get_transaction())
        if session.info.get(_STORED) == transaction:
            return
        original(self, session, now)
        session.info[_STORED] = transaction

    return store_versions


def take_many(
    session: Session,
    content: Content,
    settings: Settings,
    items: list[LeadInput],
    now: datetime,
    source: str,
) -> list[tuple[Lead, bool]]:
    emails = [item.email for item in items]
    query = select(Lead).where(Lead.email.in_(emails)).order_by(Lead.id).with_for_update()
    known = {lead.email: lead for lead in session.scalars(query)}
    hashes = {email_hash(email) for email in emails}
    blocked = set(
        session.scalars(select(Suppression.email_hash).where(Suppression.email_hash.in_(hashes)))
    )
    staged: list[tuple[LeadInput, Lead, bool, set[str], str | None]] = []
    real_flush = session.flush
    with session.no_autoflush:
        for item in items:
            existing = known.get(item.email)
            previous = existing.stage if existing is not None else None
            if item.consent is None:
                session.flush = lambda objects=None: None  # type: ignore[method-assign]
            try:
                lead, created, new_tags = upsert_lead(
                    session, item, now, source, existing, looked_up=True, suppressed_hashes=blocked
                )
            finally:
                session.flush = real_flush  # type: ignore[method-assign]
            known[item.email] = lead
            staged.append((item, lead, created, new_tags, previous))
    session.flush()  # the batch's new leads in one multi-row INSERT, ids returned
    new = session.info.setdefault(_NEW, set())
    new.update(lead.id for _, lead, created, _, _ in staged if created)
    results = []
    for item, lead, created, new_tags, previous in staged:
        # As nurture.intake.take does after upsert_lead.
        if created:
            on_created(session, content, lead, now)
        elif "stage" in item.values and item.values["stage"] != previous:
            stage = lead.stage
            lead.stage = previous or "lead"
            set_stage(session, content, lead, stage, now, cause=f"set by {source}")
        if new_tags:
            on_tags(session, content, lead, new_tags, now)
        qualify_lead(session, content, settings, lead, now)
        follow(session, content, lead, now, settings.sla)
        results.append((lead, created))
    session.info.pop(_NEW, None)
    session.info.pop(_ENTERED, None)
    return results


def _enter(original: Callable[..., Enrollment | None]) -> Any:
    def enter(
        session: Session,
        content: Content,
        lead: Lead,
        sequence: Sequence,
        trigger: str,
        now: datetime,
    ) -> Enrollment | None:
        if lead.id not in session.info.get(_NEW, ()):
            return original(session, content, lead, sequence, trigger, now)
        entered = session.info.setdefault(_ENTERED, set())
        if (lead.id, sequence.id) in entered:
            return None  # entered a moment ago in this transaction: still inside
        entered.add((lead.id, sequence.id))
        content.store_versions(session, now)
        enrollment = Enrollment(
            lead_id=lead.id,
            sequence_id=sequence.id,
            version=sequence.version,
            cycle=1,
            status="active",
            step_id=sequence.first_step,
            step_started_at=now,
            due_at=now,
            priority=sequence.priority,
            trigger=trigger[:200],
            entered_at=now,
        )
        session.add(enrollment)
        return enrollment

    return enter
