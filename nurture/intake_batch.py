"""Taking a batch of leads in with a handful of statements for the whole batch.

The API's batches and each chunk of a CSV import come here. One statement locks and
reads the batch's known leads, one asks the suppression list, two make and read the
accounts its arrivals name (nurture.accounts); every arrival is then
computed in memory (nurture.arrivals), in order, exactly as `nurture.intake.take`
would do it; then the new leads are inserted, the known ones updated, and the field
history, consents, enrolments, decisions, stage changes and events added, one
statement each (on PostgreSQL the new leads are streamed with COPY through a staging
table, nurture.staging). The outcome is the row path's, row for row
(tests/test_intake_batch.py runs both on the same input and compares every table).

The arrivals of a person that need what only the row path does (a promotion to
sales, a stage moved by score, enrolment decisions for a lead stored before the
batch: a stage set or tags added) are taken by `take` one by one, after the
statements, in their order in the batch. Nothing else depends on the order between
people (promotions, whose rep depends on the others' load, all go that way).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, select
from sqlalchemy.orm import Session

from nurture.accounts import blocks, ensure, free_mail
from nurture.arrivals import Arrival, Plan, Promoting, RowPath
from nurture.config import Settings
from nurture.content import Content
from nurture.core.accounts import COMPANY_ID, AccountKey, account_key
from nurture.core.intake import LeadInput
from nurture.crm import push_values
from nurture.db import among, hold_people, insert_rows, plan_afresh, update_rows
from nurture.decisions import as_row
from nurture.intake import take
from nurture.leads import Draft
from nurture.models import (
    Consent,
    CrmPush,
    DecisionLog,
    Enrollment,
    Event,
    FieldHistory,
    Lead,
    Promotion,
    StageChange,
)
from nurture.promotion import payload_of
from nurture.staging import add_rows, insert_leads
from nurture.suppression import list_key, suppressed_among

# What an arrival may change on a lead stored before the batch (a stage change, a
# promotion or an unsubscription goes through the row path).
UPDATED = (
    "first_name", "last_name", "company", "job_title", "company_size", "country", "timezone",
    "locale", "source", "campaign", "rep_name", "rep_email", "rep_phone", "tags", "fields",
    "first_touch", "latest_touch", "category", "reasons", "grade", "score", "updated_at",
    "account_id",
)  # fmt: skip


_JSONS = frozenset(c.name for c in Lead.__table__.columns if isinstance(c.type, JSON))


@dataclass(frozen=True)
class Taken:
    """One item of the batch, as the API answers it."""

    public_id: str
    email: str
    created: bool


def take_batch(
    session: Session,
    content: Content,
    settings: Settings,
    items: list[LeadInput],
    now: datetime,
    source: str,
) -> list[Taken]:
    """Many leads in one transaction, in a handful of statements; one answer per item."""
    # A plan cached while `leads` was small would scan the table for every batch of a
    # large import: plan for the table as it is.
    plan_afresh(session)
    emails = sorted({item.email for item in items})
    hold_people(session, emails)
    # Locked, in id order: concurrent batches touching the same people don't deadlock.
    query = (
        select(*(Lead.__table__.columns))
        .where(among(session, Lead.email, emails))
        .order_by(Lead.id)
        .with_for_update()
    )
    known = {row.email: Draft(row._mapping, None) for row in session.execute(query)}
    blocked = suppressed_among(session, list_key(settings), emails, now)
    accounts = ensure(session, _account_keys(content, items, known), now)

    drafts: dict[str, Draft] = dict(known)
    created_here: set[str] = set()
    by_row: set[str] = set()  # people whose arrivals from here on take the row path
    plan = Plan()
    promoting = Promoting()
    answers: list[Taken | int] = []  # an int: the position among the row path's items
    row_items: list[LeadInput] = []
    for item in items:
        email = item.email
        if email not in by_row:
            before = drafts.get(email)
            draft = Draft.new(email, now) if before is None else before.copy()
            arrival = Arrival(
                session, content, draft, now, settings.sla, promoting, accounts=accounts,
                others=drafts,
            )  # fmt: skip
            try:
                arrival.arrive(item, before is None, source, email in blocked)
            except RowPath:
                by_row.add(email)
            else:
                drafts[email] = draft
                if before is None:
                    created_here.add(email)
                plan.extend(arrival.plan)
                if arrival.plan.promotions:
                    by_row.add(email)  # its CRM payload shows it as promoted, not later
                for promotion in arrival.plan.promotions:
                    if promotion["rep_email"] is not None:
                        loads = promoting.load(session)
                        loads[promotion["rep_email"]] = loads.get(promotion["rep_email"], 0) + 1
                answers.append(Taken(draft.public_id, email, before is None))
                continue
        answers.append(len(row_items))
        row_items.append(item)
        promoting.allowed = False

    # Read before the batch's own rows are written, as each promotion saw its account.
    promoted = [p for p in plan.promotions if "account_of" in p]
    for promotion, account in zip(
        promoted,
        blocks(session, content, [p.pop("account_of") for p in promoted], drafts.keys(), now),
        strict=True,
    ):
        promotion["account"] = account

    ids = {email: draft.id for email, draft in known.items()}
    # In email order: concurrent batches insert their new people alike, without deadlock.
    new = [drafts[email] for email in emails if email in created_here]
    ids.update(insert_leads(session, [draft.row() for draft in new]))
    changed = [drafts[email] for email in known if drafts[email] is not known[email]]
    update_rows(session, Lead, [_update(d) for d in changed])
    _write(session, content, plan, drafts, ids, now)

    taken = [take(session, content, settings, item, now, source, blocked=blocked)
             for item in row_items]  # fmt: skip
    return [
        answer
        if isinstance(answer, Taken)
        else Taken(taken[answer][0].public_id, taken[answer][0].email, taken[answer][1])
        for answer in answers
    ]


def _account_keys(
    content: Content, items: list[LeadInput], known: dict[str, Draft]
) -> set[AccountKey]:
    """Every account the arrivals will name, in their order (a company id given by an
    earlier arrival of the same person counts for the later ones), as the row path
    would make them one by one."""
    mail = free_mail(content)
    company = {email: (draft.fields or {}).get(COMPANY_ID) for email, draft in known.items()}
    keys: set[AccountKey] = set()
    for item in items:
        if COMPANY_ID in item.fields:
            company[item.email] = item.fields[COMPANY_ID]
        key = account_key(item.email, {COMPANY_ID: company.get(item.email)}, mail)
        if key is not None:
            keys.add(key)
    return keys


def _update(draft: Draft) -> dict[str, Any]:
    """What to write of a known lead: a JSON value still None is left out, so it stays
    SQL NULL on both databases (an arrival never blanks one; on SQLite `update_rows`
    would store JSON `null`)."""
    row = draft.row(UPDATED)
    return {"id": draft.id, **{k: v for k, v in row.items() if v is not None or k not in _JSONS}}


def _write(
    session: Session,
    content: Content,
    plan: Plan,
    drafts: dict[str, Draft],
    ids: dict[str, Any],
    now: datetime,
) -> None:
    """The rows the arrivals add, one statement per table."""

    def insert(model: type[Any], rows: list[dict[str, Any]]) -> None:
        keyed = [
            {"lead_id": ids[row["email"]], **{k: v for k, v in row.items() if k != "email"}}
            for row in rows
        ]
        add_rows(session, model, keyed)

    enrolments = [e for draft in drafts.values() for e in draft.enrolments or ()]
    if enrolments:
        content.store_versions(session, now)
    insert(Enrollment, enrolments)
    insert(FieldHistory, plan.history)
    insert(Consent, plan.consents)
    insert(StageChange, plan.stage_changes)
    insert(Event, plan.events)
    decisions = [as_row(ids[email], decision, now) for email, decision in plan.decisions]
    add_rows(session, DecisionLog, decisions)
    _promoted(session, content, plan, ids, now)


def _promoted(
    session: Session, content: Content, plan: Plan, ids: dict[str, Any], now: datetime
) -> None:
    """The promotions' rows, then the CRM push of each. Its payload is made from what
    the batch has in memory: a lead created in it has no stage change but the batch's
    (whose arrivals after its promotion are taken one by one, later), no score change
    and no click yet."""
    if not plan.promotions:
        return
    rows = [
        {
            "lead_id": ids[p["email"]],
            **{k: v for k, v in p.items() if k not in ("email", "lead", "account")},
        }
        for p in plan.promotions
    ]
    made = dict(insert_rows(session, Promotion, rows, ("lead_id", "id")))
    stages: dict[str, list[StageChange]] = defaultdict(list)
    for change in plan.stage_changes:
        values = {k: v for k, v in change.items() if k != "email"}
        stages[change["email"]].append(StageChange(**values))  # transient: never added
    pushes = []
    for promoted, row in zip(plan.promotions, rows, strict=True):
        lead = Lead(id=row["lead_id"], **promoted["lead"])  # transient as well
        promotion = Promotion(id=made[row["lead_id"]], **row)
        body = payload_of(
            lead, promotion, stages[promoted["email"]], (), (), content.scoring,
            promoted.get("account"),
        )  # fmt: skip
        pushes.append(push_values("lead.promoted", body, now, promotion.id))
    add_rows(session, CrmPush, pushes)
