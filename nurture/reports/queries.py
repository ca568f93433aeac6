"""The reports' queries for the funnel, the sources, the sequences and deliverability:
GROUP BY over the history, returning the small rows that the pure reports
(nurture/core/reports*.py) turn into tables; no query returns a row per lead. The
SLA's are in sla.py, velocity's in stays.py, percentiles in percentiles.py, the daily
summary in summary.py.

Days and months are UTC, read alike on both databases (nurture/reports/instants.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    distinct,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from nurture.core.reports import MQL_OR_LATER, Period
from nurture.core.reports_deliverability import DayCount
from nurture.core.reports_funnel import Reached
from nurture.core.reports_sequences import StepCount
from nurture.core.reports_sources import Spent
from nurture.hits import ENGAGEMENT
from nurture.models import (
    Cost,
    Delivery,
    Enrollment,
    Event,
    Lead,
    Promotion,
    StageChange,
)
from nurture.reports.instants import day_of, dialect_of, month_of, within

REPORT_WORK_MEM = "64MB"

# --- leads and their groups ------------------------------------------------------------


def _lead_groups(by: str | None, attribution: str | None = None) -> Any:
    """Each lead with the columns that name its group (k0, k1): once per sequence it
    was ever enrolled in with --by sequence, else once. With an attribution model, the
    source and campaign are the touch's (nurture/core/reports_sources.py)."""
    columns: list[Any] = [Lead.id.label("lead_id"), Lead.created_at.label("created_at")]
    if by == "sequence":
        # Each (lead, sequence) once: its first cycle (a re-entry numbers the cycles
        # from the first), so no DISTINCT sorts a million pairs.
        first_cycle = and_(Enrollment.lead_id == Lead.id, Enrollment.cycle == 1)
        return (
            select(*columns, Enrollment.sequence_id.label("k0"))
            .outerjoin(Enrollment, first_cycle)
            .subquery("grouped")
        )
    keys: list[Any] = []
    if by in ("source", "campaign") and attribution is not None:
        touch = Lead.first_touch if attribution == "first" else Lead.latest_touch
        keys = [
            func.coalesce(
                touch["channel"].as_string(), touch["utm_source"].as_string(), Lead.source
            ),
            func.coalesce(
                touch["campaign"].as_string(), touch["utm_campaign"].as_string(), Lead.campaign
            ),
        ]
    elif by in ("source", "campaign"):
        keys = [Lead.source, Lead.campaign]
    elif by == "rep":
        keys = [Lead.rep_email]
    if by == "source":
        keys = keys[:1]
    named = (key.label(f"k{i}") for i, key in enumerate(keys))
    return select(*columns, *named).subquery("grouped")


def lead_keys() -> Any:
    """Each lead with all three of its own group keys: k0 source, k1 campaign, k2 rep
    (what the daily summary keeps per lead)."""
    return select(
        Lead.id.label("lead_id"),
        Lead.created_at.label("created_at"),
        Lead.source.label("k0"),
        Lead.campaign.label("k1"),
        Lead.rep_email.label("k2"),
    ).subquery("grouped")


def _first_cycles() -> Any:
    """Each lead's sequences (k0), once each: its first cycle in them; for grouping a
    lead's facts by sequence without reading the leads."""
    return (
        select(Enrollment.lead_id.label("lead_id"), Enrollment.sequence_id.label("k0"))
        .where(Enrollment.cycle == 1)
        .subquery("first_cycles")
    )


def _keys(grouped: Any) -> list[Any]:
    return [grouped.c[name] for name in ("k0", "k1") if name in grouped.c]


# --- funnel and sources ----------------------------------------------------------------


def _crossed_into_mql() -> ColumnElement[bool]:
    """A stage change that made the lead an MQL (see MQL_OR_LATER)."""
    return and_(StageChange.to_stage.in_(MQL_OR_LATER), StageChange.from_stage.not_in(MQL_OR_LATER))


def _reaches() -> dict[str, Any]:
    """For each funnel step, who reached it (lead_id), when (at) and for how much."""
    no_amount = cast(null(), Float).label("amount")

    def first(column: Any) -> Any:
        """Each promotion at its first answer of a kind (kept on the promotion)."""
        return select(
            Promotion.lead_id.label("lead_id"), column.label("at"), Promotion.amount.label("amount")
        ).where(column.is_not(None))

    return {
        "leads": select(Lead.id.label("lead_id"), Lead.created_at.label("at"), no_amount),
        "mql": select(
            StageChange.lead_id.label("lead_id"), StageChange.at.label("at"), no_amount
        ).where(_crossed_into_mql()),
        "sql": select(
            Promotion.lead_id.label("lead_id"), Promotion.created_at.label("at"), no_amount
        ),
        "accepted": select(
            Promotion.lead_id.label("lead_id"), Promotion.accepted_at.label("at"), no_amount
        ).where(Promotion.accepted_at.is_not(None)),
        "opportunity": first(Promotion.opportunity_at),
        "won": first(Promotion.won_at),
    }


def reached(
    session: Session,
    period: Period,
    by: str,
    view: str,
    steps: Sequence[str],
    attribution: str | None = None,
    total: bool = True,
) -> list[Reached]:
    """Leads that reached each step, per group (and for all groups: group ())."""
    dialect = dialect_of(session)
    reaches = _reaches()
    # The later steps in one pass: their few leads are grouped once, not once per step.
    later = [step for step in steps if step != "leads"]
    reach = union_all(
        *(reaches[step].add_columns(literal(step, String).label("step")) for step in later)
    ).subquery("reach")
    # The cohort view counts leads, each once per step; the period view counts arrivals
    # (a lead promoted twice in the period is two SQLs: sales received it twice), so
    # that days add up (nurture/reports/summary.py).
    counted = func.count(distinct(reach.c.lead_id)) if view == "cohort" else func.count()
    # Where each lead (or arrival) is in one group only, the total is the groups' sum.
    disjoint = by != "sequence"
    found: list[Reached] = []
    for grouping in (by, None) if total and not disjoint else (by,):
        grouped = _lead_groups(grouping, attribution)
        keys = _keys(grouped)
        if "leads" in steps:
            # Every lead, reached when created (both views): counted off the leads'
            # index alone, without the join the later steps need.
            first = [month_of(grouped.c.created_at, dialect)] if grouping == "month" else keys
            created = (
                select(*first, func.count())
                .where(within(grouped.c.created_at, period))
                .group_by(*first)
            )
            for *key, count in session.execute(created):
                found.append(Reached(tuple(key), "leads", count, None))
        when = grouped.c.created_at if view == "cohort" else reach.c.at
        if grouping == "month":
            keys = [month_of(when, dialect)]
        # In the period view nothing of the lead is read but its group: by month or for
        # everyone the reaches alone are counted, by sequence with the lead's first
        # cycles; only the other groupings (and the cohort view) join every lead.
        joined: Any = reach.join(grouped, grouped.c.lead_id == reach.c.lead_id)
        if view == "period" and grouping in ("month", None):
            joined = reach
        elif view == "period" and grouping == "sequence":
            first = _first_cycles()
            keys = [first.c.k0]
            joined = reach.outerjoin(first, first.c.lead_id == reach.c.lead_id)
        query = (
            select(*keys, reach.c.step, counted, func.sum(reach.c.amount))
            .select_from(joined)
            .where(within(when, period), *_not_before(reach, period, view))
            .group_by(*keys, reach.c.step)
        )
        for row in session.execute(query):
            *key, step, count, amount = row
            found.append(Reached(tuple(key), step, count, amount))
    if total and disjoint:
        found += summed(found)
    return found


def _not_before(reach: Any, period: Period, view: str) -> list[ColumnElement[bool]]:
    """In the cohort view, the steps reached since the period began: a lead reaches
    its steps after it is created (a day early, for a CRM's clock), so each kind of
    step is read off its time's index from there, not every one ever."""
    if view != "cohort":
        return []
    return [reach.c.at >= period.start - timedelta(days=1)]


def summed(rows: Sequence[Reached]) -> list[Reached]:
    """The total of each step over groups that share no lead."""
    leads: dict[str, int] = {}
    amounts: dict[str, float | None] = {}
    for row in rows:
        leads[row.step] = leads.get(row.step, 0) + row.leads
        if row.amount is not None:
            amounts[row.step] = (amounts.get(row.step) or 0) + row.amount
    return [Reached((), step, count, amounts.get(step)) for step, count in leads.items()]


def costs(session: Session, period: Period) -> list[Spent]:
    rows = session.execute(
        select(Cost.source, Cost.campaign, Cost.month, Cost.amount).where(
            Cost.month.in_(period.months)
        )
    )
    return [Spent(source, campaign, month, amount) for source, campaign, month, amount in rows]


# --- emails: sequences and deliverability -----------------------------------------------


def _refused() -> ColumnElement[bool]:
    """A delivery the relay refused for a bad address (joined with its lead): the sender
    marks the lead bounced in the same write as the failed delivery, so the two times
    are equal; other failures (a template error) never left."""
    return and_(Delivery.status == "failed", Lead.bounced_at == Delivery.updated_at)


def _emails(period: Period) -> Any:
    """The emails sent in the period: taken by the relay, or refused for a bad address.

    Two branches, not one OR: each walks its own index (sent_at; the few failed rows),
    so a month of a large history reads that month's emails only."""
    columns = (
        Delivery.id.label("id"),
        Delivery.sequence_id.label("sequence_id"),
        Delivery.step_id.label("step_id"),
        *(getattr(Delivery, name).label(name) for name in ENGAGEMENT),
    )
    taken = select(*columns, Delivery.sent_at.label("at"), literal(0).label("refused")).where(
        Delivery.status == "sent", within(Delivery.sent_at, period)
    )
    refused = (
        select(*columns, Delivery.updated_at.label("at"), literal(1).label("refused"))
        .join(Lead, Lead.id == Delivery.lead_id)
        .where(_refused(), within(Delivery.updated_at, period))
    )
    return union_all(taken, refused).subquery("emails")


def _bounce_reports(period: Period) -> Any:
    """The emails a bounce was reported for (a few rows: joined, not probed per email):
    reported after the email left, so only the reports since the period began (a day
    early, for a mailbox provider's clock)."""
    return (
        select(Event.delivery_id.label("delivery_id"))
        .where(
            Event.name == "bounced",
            Event.delivery_id.is_not(None),
            Event.occurred_at >= period.start - timedelta(days=1),
        )
        .distinct()
        .subquery("bounce_reports")
    )


def step_counts(session: Session, period: Period) -> list[StepCount]:
    return [count for _, count in step_counts_by_day(session, period, by_day=False)]


def step_counts_by_day(
    session: Session, period: Period, by_day: bool = True
) -> list[tuple[str | None, StepCount]]:
    """The sequences report's counts, each with its UTC day ("YYYY-MM-DD"; None when
    not `by_day`): the day the email left, the lead entered or left, the stage changed.
    Every count adds up over days (each MQL or SQL crossing counts)."""
    dialect = dialect_of(session)

    def day(column: Any) -> list[Any]:
        return [day_of(column, dialect)] if by_day else []

    def dated(row: Any) -> tuple[str | None, list[Any]]:
        return (row[0], list(row[1:])) if by_day else (None, list(row))

    emails = _emails(period)
    found: list[tuple[str | None, StepCount]] = []
    sent_on = day(emails.c.at)
    step = (emails.c.sequence_id, emails.c.step_id)
    reported = _bounce_reports(period)
    bounced = or_(emails.c.refused == 1, reported.c.delivery_id.is_not(None))
    # One pass over the period's emails: each measure is a column of the email's row
    # (its engagement, kept by the hits worker), not a join with every hit.
    measures = {
        "sent": func.count(),
        "bounced": func.count(case((bounced, 1))),
        "opened": func.count(emails.c.opened_at),
        "clicked": func.count(emails.c.clicked_at),
        "machine": func.count(emails.c.machine_opened_at),
        "scanner": func.count(emails.c.scanned_at),
    }
    query = (
        select(*sent_on, *step, *measures.values())
        .select_from(emails.outerjoin(reported, reported.c.delivery_id == emails.c.id))
        .group_by(*sent_on, *step)
    )
    for row in session.execute(query):
        when, (sequence, at_step, *counts) = dated(row)
        for name, count in zip(measures, counts, strict=True):
            if count or name == "sent":
                found.append((when, StepCount(sequence, at_step, name, count)))
    # Unsubscribes and complaints: the few events that name an email, from the events
    # (an index on their name) to their emails of the period.
    named = (
        select(Event.delivery_id.label("delivery_id"), Event.name.label("name"))
        .where(
            Event.name.in_(("unsubscribed", "complained")),
            Event.delivery_id.is_not(None),
            # Reported after the email left: only the events since the period began (a
            # day early, for a mailbox provider's clock), not every one ever.
            Event.occurred_at >= period.start - timedelta(days=1),
        )
        .subquery("named")
    )
    of_period = or_(
        and_(Delivery.status == "sent", within(Delivery.sent_at, period)),
        and_(_refused(), within(Delivery.updated_at, period)),
    )
    # The email's day: when it left, or when the relay refused it (no sent_at then).
    left_on = day(func.coalesce(Delivery.sent_at, Delivery.updated_at))
    by_step = (Delivery.sequence_id, Delivery.step_id)
    reports = (
        select(*left_on, *by_step, named.c.name, func.count(distinct(named.c.delivery_id)))
        .select_from(
            named.join(Delivery, Delivery.id == named.c.delivery_id).join(
                Lead, Lead.id == Delivery.lead_id
            )
        )
        .where(of_period)
        .group_by(*left_on, *by_step, named.c.name)
    )
    for row in session.execute(reports):
        when, (sequence, at_step, name, count) = dated(row)
        found.append((when, StepCount(sequence, at_step, name, count)))
    entered_on = day(Enrollment.entered_at)
    entered = (
        select(*entered_on, Enrollment.sequence_id, func.count())
        .where(within(Enrollment.entered_at, period))
        .group_by(*entered_on, Enrollment.sequence_id)
    )
    for row in session.execute(entered):
        when, (sequence, count) = dated(row)
        found.append((when, StepCount(sequence, None, "entered", count)))
    left = day(Enrollment.left_at)
    reason = func.coalesce(Enrollment.exit_reason, Enrollment.status)
    exits = (
        select(*left, Enrollment.sequence_id, Enrollment.step_id, reason, func.count())
        .where(within(Enrollment.left_at, period), Enrollment.status != "active")
        .group_by(*left, Enrollment.sequence_id, Enrollment.step_id, reason)
    )
    for row in session.execute(exits):
        when, (sequence, at_step, why, count) = dated(row)
        found.append((when, StepCount(sequence, at_step, "exit", count, why)))
    crossed = _crossed_into_mql()
    changed_on = day(StageChange.at)
    # Each crossing once per sequence (a lead enrolled twice in it at that time is one).
    enrolled = (
        select(
            *changed_on,
            Enrollment.sequence_id,
            func.count(distinct(case((crossed, StageChange.id)))),
            func.count(distinct(case((StageChange.to_stage == "sql", StageChange.id)))),
        )
        .join(
            StageChange,
            and_(
                StageChange.lead_id == Enrollment.lead_id,
                StageChange.at >= Enrollment.entered_at,
                # Promotion ends the enrollments at the instant of the stage change.
                or_(Enrollment.left_at.is_(None), StageChange.at <= Enrollment.left_at),
            ),
        )
        # Only the changes counted below: a month's few, each looking up its lead's
        # enrollments by index, rather than every enrollment hashed.
        .where(within(StageChange.at, period), or_(crossed, StageChange.to_stage == "sql"))
        .group_by(*changed_on, Enrollment.sequence_id)
    )
    for row in session.execute(enrolled):
        when, (sequence, mqls, sqls) = dated(row)
        found.append((when, StepCount(sequence, None, "mql", mqls)))
        found.append((when, StepCount(sequence, None, "sql", sqls)))
    return found


def day_counts(session: Session, period: Period) -> list[DayCount]:
    dialect = dialect_of(session)
    emails = _emails(period)
    found: list[DayCount] = []
    day = day_of(emails.c.at, dialect)
    for when, sent, refused in session.execute(
        select(day, func.count(), func.sum(emails.c.refused)).group_by(day)
    ):
        found.append(DayCount(when, "sent", sent))
        found.append(DayCount(when, "bounced", int(refused or 0)))
    # A bounce reported for an email the relay had refused already is that same bounce.
    refused_before = select(Delivery.id).join(Lead, Lead.id == Delivery.lead_id).where(_refused())
    reported = day_of(Event.occurred_at, dialect)
    # Each email once, however often it is reported; a report naming no email is one.
    one = func.coalesce(Event.delivery_id, -Event.id)
    events = (
        select(reported, Event.name, func.count(distinct(one)))
        .where(
            Event.name.in_(("bounced", "complained")),
            within(Event.occurred_at, period),
            or_(Event.delivery_id.is_(None), Event.delivery_id.not_in(refused_before)),
        )
        .group_by(reported, Event.name)
    )
    for when, name, count in session.execute(events):
        found.append(DayCount(when, name, count))
    return found
