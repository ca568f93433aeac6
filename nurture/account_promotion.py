"""The account rule (`lifecycle.account` of the scoring file), set-based: one statement
finds every account where enough distinct contacts engaged within the window and
records its promotion once per account per cycle; then the best engaged contact of
each is promoted to sales the usual way (nurture.promotion: rep, stage, CRM push with
the account in it). Run by the worker's triggers job, every five minutes (nurture.scheduler).

- Engaged: one of the rule's events (human clicks by default: a link scanner's click
  or a privacy proxy's open never counts) within the window, after the account's
  previous promotion: the clicks that promoted an account never promote it again.
- Skipped: accounts already with sales, that is with a contact at sql, opportunity or
  customer.
- The contact promoted: among the engaged contacts still in marketing's hands
  (subscriber, lead, mql, recycled) graded the rule's grade or better, the best
  grade, then the highest score, then the latest engagement.

The unique key (account, cycle) is what stops two workers, or two runs, promoting an
account twice: the cycle is one more than the account's last.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import String, case, cast, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from nurture.accounts import engagement
from nurture.content import Content
from nurture.core.accounts import AccountRule
from nurture.core.scoring import GRADES, MOVABLE_STAGES
from nurture.models import AccountPromotion, Event, Lead, UTCDateTime
from nurture.promotion import promote

log = logging.getLogger(__name__)

WITH_SALES = ("sql", "opportunity", "customer")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # before any event


@dataclass(frozen=True)
class AccountsPromoted:
    found: int  # accounts recorded by this run
    promoted: int  # contacts handed to sales

    def __str__(self) -> str:
        return f"{self.promoted} promoted for {self.found} accounts"


def promote_accounts(
    session: Session, content: Content, now: datetime, sla: timedelta
) -> AccountsPromoted:
    """Apply the account rule at `now`: one statement records the accounts, then each
    one's contact is promoted (a handful a run)."""
    model = content.scoring
    rule = model.account if model is not None else None
    if rule is None:
        return AccountsPromoted(0, 0)
    run = uuid.uuid4().hex
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    columns = ["account_id", "cycle", "lead_id", "engaged", "reason", "run", "at"]
    statement = insert(AccountPromotion).from_select(columns, _found(rule, run, now))
    session.execute(statement.on_conflict_do_nothing(index_elements=["account_id", "cycle"]))
    found = list(session.scalars(select(AccountPromotion).where(AccountPromotion.run == run)))
    promoted = 0
    for row in found:
        lead = session.get(Lead, row.lead_id)
        if lead is None:
            continue
        promotion = promote(session, content, lead, row.reason, now, sla)
        if promotion is not None:
            row.promotion_id = promotion.id
            promoted += 1
    if found:
        log.info("account rule: %s promoted for %s accounts", promoted, len(found))
    return AccountsPromoted(len(found), promoted)


def _found(rule: AccountRule, run: str, now: datetime) -> Any:
    """The accounts the rule promotes now, one row each, shaped as account_promotions."""
    last = (
        select(func.max(AccountPromotion.at))
        .where(AccountPromotion.account_id == Lead.account_id)
        .scalar_subquery()
    )
    # Driven by the window's events (a range of the events index), not by the leads:
    # the accounts with any engagement are few, the leads with an account are all.
    # One CTE, read twice (counted, ranked): PostgreSQL computes it once.
    engaged = (
        select(
            Lead.account_id.label("account_id"),
            Event.lead_id.label("lead_id"),
            func.max(Event.occurred_at).label("last_at"),
        )
        .join(Lead, Lead.id == Event.lead_id)
        .where(
            engagement(rule.events, now - rule.window, now),
            Event.occurred_at > func.coalesce(last, literal(_EPOCH, UTCDateTime())),
        )
        .group_by(Lead.account_id, Event.lead_id)
        .cte("engaged")
    )
    counted = (
        select(engaged.c.account_id, func.count().label("engaged"))
        .where(engaged.c.account_id.is_not(None))
        .group_by(engaged.c.account_id)
        .having(func.count() >= rule.engaged_contacts)
        .cte("counted")
    )
    grades = GRADES[: GRADES.index(rule.grade) + 1]
    graded = Lead.grade.in_(grades) if rule.grade != "D" else true()
    order = (
        case((Lead.grade.is_(None), 1), else_=0),
        Lead.grade,
        Lead.score.desc(),
        engaged.c.last_at.desc(),
        Lead.id,
    )
    ranked = (
        select(
            engaged.c.account_id,
            engaged.c.lead_id,
            counted.c.engaged,
            func.row_number().over(partition_by=engaged.c.account_id, order_by=order).label("rank"),
        )
        .join(counted, counted.c.account_id == engaged.c.account_id)
        .join(Lead, Lead.id == engaged.c.lead_id)
        .where(Lead.stage.in_(sorted(MOVABLE_STAGES)), graded)
        .subquery("ranked")
    )
    with_sales = exists().where(Lead.account_id == ranked.c.account_id, Lead.stage.in_(WITH_SALES))
    cycle = (
        select(func.coalesce(func.max(AccountPromotion.cycle), 0) + 1)
        .where(AccountPromotion.account_id == ranked.c.account_id)
        .scalar_subquery()
    )
    reason = (
        literal("account: ")
        + cast(ranked.c.engaged, String)
        + literal(f" contacts engaged in {rule.within}")
    )
    return select(
        ranked.c.account_id,
        cycle,
        ranked.c.lead_id,
        ranked.c.engaged,
        reason,
        literal(run),
        literal(now, UTCDateTime()),
    ).where(ranked.c.rank == 1, ~with_sales)
