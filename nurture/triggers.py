"""Inactivity and date triggers, evaluated set-based: per trigger, one statement finds
every lead it fires for and records the firing, one more enrols them.

A firing is kept once per (lead, sequence, trigger, occurrence) by a unique key: two
workers running the job at once, or a run repeated within the day, enrol nobody twice
(on PostgreSQL the second insert waits for the first and then skips its rows). The
occurrence is when the lead's inactive spell began (a human click or a form starts a
new one) or the day a date rule fell on (each anniversary is a new one).

Only leads that may be mailed are found (not unsubscribed, bounced, disqualified or
without consent), inside the sequence's audience, not already inside it, and allowed
back in by its re-entry policy (see nurture.core.triggers for how the cool-down is read).
Leads kept out are not written to the decision log: at a million leads that would be a
million lines a run; the trigger keeps looking at them on the next runs.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    distinct,
    exists,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased, sessionmaker

from nurture.content import Content
from nurture.core.admission import ALWAYS_EXIT_STAGES
from nurture.core.decisions import SUNSET, Decision
from nurture.core.sequences import (
    ENGAGEMENT_EVENTS,
    AccountSignal,
    Audience,
    DateRule,
    Sequence,
    Trigger,
    TriggerKind,
)
from nurture.core.triggers import date_match, midnight, reentry_cutoff
from nurture.core.wording import trigger_text
from nurture.decisions import as_row, write
from nurture.models import Enrollment, Event, Lead, TriggerFiring, UTCDateTime
from nurture.suppression import LATEST_CONSENT

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fired:
    """What one trigger did in one run."""

    sequence_id: str
    trigger: str
    found: int  # new firings recorded by this run
    enrolled: int
    unreadable: int = 0  # leads whose date field is no ISO date: never found

    def __str__(self) -> str:
        return f"{self.sequence_id} {self.trigger}: {self.enrolled} enrolled"


def evaluate(
    session: Session, content: Content, now: datetime, consent_required: bool = False
) -> list[Fired]:
    """Sunsets first (so they are not found again), then every inactivity and date
    trigger of every live sequence, at `now`."""
    settle_sunsets(session, content, now)
    done: list[Fired] = []
    for sequence in content.live():
        if not sequence.enabled:
            continue
        for trigger in sequence.triggers:
            if trigger.periodic:
                done.append(fire(session, content, sequence, trigger, now, consent_required))
    return done


def settle_sunsets(session: Session, content: Content, now: datetime) -> tuple[int, int]:
    """Sunset the leads that finished a `sunset: true` sequence without engaging since
    they entered it; take back those that engaged after being sunset. Each change is a
    line of the lead's decision log. Returns (sunset, taken back)."""
    revived = session.scalars(
        update(Lead)
        .where(Lead.sunset_at.is_not(None), exists().where(_engaged(Lead.id, Lead.sunset_at)))
        .values(sunset_at=None, updated_at=now)
        .returning(Lead.id)
    ).all()
    back = Decision(SUNSET, "back from sunset: a human click or a form after it")
    rows = [as_row(lead_id, back, now) for lead_id in revived]
    sunset = 0
    for sequence in content.live():
        if not sequence.sunset:
            continue
        finished = exists().where(
            Enrollment.lead_id == Lead.id,
            Enrollment.sequence_id == sequence.id,
            Enrollment.status == "completed",
            ~exists().where(_engaged(Enrollment.lead_id, Enrollment.entered_at)),
        )
        found = session.scalars(
            update(Lead)
            .where(Lead.sunset_at.is_(None), finished)
            .values(sunset_at=now, updated_at=now)
            .returning(Lead.id)
        ).all()
        why = Decision(
            SUNSET,
            f"sunset: finished {sequence.id} without a human click or a form since entering;"
            " no more sequence emails until it engages again",
            sequence.id,
        )
        rows += [as_row(lead_id, why, now) for lead_id in found]
        sunset += len(found)
    write(session, rows)
    return sunset, len(revived)


def came_back(session: Session, lead_ids: set[int]) -> set[int]:
    """The sunset leads among `lead_ids` that engaged since they were sunset: a form
    brings a lead back at once, not at the next run of the triggers (which logs it)."""
    if not lead_ids:
        return set()
    return set(
        session.scalars(
            select(Lead.id).where(
                Lead.id.in_(lead_ids),
                Lead.sunset_at.is_not(None),
                exists().where(_engaged(Lead.id, Lead.sunset_at)),
            )
        )
    )


def _engaged(lead_id: Any, since: Any) -> ColumnElement[bool]:
    """An engagement event of this lead after `since` (a condition for EXISTS)."""
    return and_(_engagement(lead_id), Event.occurred_at > since)


def _engagement(lead_id: Any) -> ColumnElement[bool]:
    """An event of this lead that ends an inactive spell (ENGAGEMENT_EVENTS)."""
    return and_(
        Event.lead_id == lead_id,
        Event.name.in_(ENGAGEMENT_EVENTS),
        or_(Event.name != "email_clicked", Event.classification == "human"),
    )


def run(
    sessions: sessionmaker[Session], content: Content, now: datetime, consent_required: bool
) -> list[Fired]:
    """`evaluate`, one transaction per trigger: a failing one holds back no other."""
    with sessions.begin() as session:
        settle_sunsets(session, content, now)
    done: list[Fired] = []
    for sequence in content.live():
        for trigger in sequence.triggers if sequence.enabled else ():
            if not trigger.periodic:
                continue
            try:
                with sessions.begin() as session:
                    done.append(fire(session, content, sequence, trigger, now, consent_required))
            except Exception:  # the next trigger, and the next run, go on
                log.exception("trigger %s of %s failed", trigger_text(trigger), sequence.id)
    return done


def fire(
    session: Session,
    content: Content,
    sequence: Sequence,
    trigger: Trigger,
    now: datetime,
    consent_required: bool = False,
) -> Fired:
    """Find the leads `trigger` fires for at `now` and enrol them: two statements."""
    said = trigger_text(trigger)[:200]
    run = uuid.uuid4().hex
    unreadable = _unreadable(session, trigger.date) if trigger.date is not None else 0
    occurred, found = matching(session, sequence, trigger, now, consent_required)
    found = found.with_only_columns(
        Lead.id,
        literal(sequence.id),
        literal(said),
        occurred,
        literal(run),
        literal(now, UTCDateTime()),
    )
    columns = ["lead_id", "sequence_id", "trigger", "occurred", "run", "at"]
    firing = _insert(session, TriggerFiring).from_select(columns, found)
    keys = ["lead_id", "sequence_id", "trigger", "occurred"]
    recorded = _count(session.execute(firing.on_conflict_do_nothing(index_elements=keys)))
    if not recorded:
        return Fired(sequence.id, said, 0, 0, unreadable)
    content.store_versions(session, now)
    enrolled = _count(session.execute(_enrolment(session, sequence, said, run, now)))
    if enrolled:
        log.info("%s: %s enrolled (%s)", sequence.id, enrolled, said)
    return Fired(sequence.id, said, recorded, enrolled, unreadable)


def _unreadable(session: Session, rule: DateRule) -> int:
    """How many leads hold something in the field that is not shaped as an ISO date:
    said at each run (a warning), since they are silently never found otherwise."""
    value = Lead.fields[rule.field].as_string()
    shaped = and_(
        func.length(value) >= 10, func.substr(value, 5, 1) == "-", func.substr(value, 8, 1) == "-"
    )
    count = int(
        session.scalar(
            select(func.count()).select_from(Lead).where(value.is_not(None), value != "", ~shaped)
        )
        or 0
    )
    if count:
        log.warning(
            "%s leads have a %s that is not an ISO date such as 2027-03-01: no date trigger"
            " finds them",
            count,
            rule.field,
        )
    return count


def matching(
    session: Session,
    sequence: Sequence,
    trigger: Trigger,
    now: datetime,
    consent_required: bool = False,
) -> tuple[ColumnElement[Any], Select[Any]]:
    """The leads `trigger` fires for at `now` (one row each), and each one's occurrence."""
    occurred, matches = _occurrence(session, trigger, now)
    found = select(Lead.id).where(
        matches,
        _mailable(consent_required),
        _admitted(session, sequence.audience),
        _may_enter(sequence, now),
    )
    return occurred, found


def _enrolment(session: Session, sequence: Sequence, said: str, run: str, now: datetime) -> Any:
    # The cycles so far, aggregated once before the insert: a probe per row into the
    # table being written would be planned from its statistics before the insert (an
    # empty table: a scan per row, quadratic at a million).
    earlier = (
        select(Enrollment.lead_id, func.max(Enrollment.cycle).label("cycle"))
        .where(Enrollment.sequence_id == sequence.id)
        .group_by(Enrollment.lead_id)
        .subquery("earlier")
    )
    cycle = func.coalesce(earlier.c.cycle, 0) + 1
    when = literal(now, UTCDateTime())
    rows = (
        select(
            TriggerFiring.lead_id,
            literal(sequence.id),
            literal(sequence.version),
            cycle,
            literal("active"),
            literal(sequence.first_step),
            when,
            when,
            literal(sequence.priority),
            literal(said),
            when,
        )
        .select_from(
            TriggerFiring.__table__.outerjoin(earlier, earlier.c.lead_id == TriggerFiring.lead_id)
        )
        .where(TriggerFiring.run == run)
    )
    return enrolments_from(session, rows)


ENROLLED = (
    "lead_id", "sequence_id", "version", "cycle", "status", "step_id",
    "step_started_at", "due_at", "priority", "trigger", "entered_at",
)  # fmt: skip


def enrolments_from(session: Session, rows: Select[Any]) -> Any:
    """INSERT … SELECT of enrollments, `rows` giving the ENROLLED columns in order."""
    statement = _insert(session, Enrollment).from_select(list(ENROLLED), rows)
    # Entered by an event at the same moment: once is what we want.
    return statement.on_conflict_do_nothing(index_elements=["lead_id", "sequence_id", "cycle"])


# --- what each trigger matches -------------------------------------------------------


def _occurrence(
    session: Session, trigger: Trigger, now: datetime
) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """The occurrence of each lead's firing, and the condition for it to fire now."""
    if trigger.kind is TriggerKind.INACTIVE:
        assert trigger.inactive_days is not None
        since = func.coalesce(_last_engagement(), Lead.created_at)
        return since, since <= now - timedelta(days=trigger.inactive_days)
    if trigger.kind is TriggerKind.ACCOUNT_ENGAGED:
        assert trigger.account is not None
        return _account_engaged(trigger.account, now)
    assert trigger.kind is TriggerKind.DATE and trigger.date is not None
    return _on_date(session, trigger.date, now)


_EPOCH = datetime(2000, 1, 3, tzinfo=UTC)  # a Monday: periods of whole weeks start on one


def _account_engaged(
    signal: AccountSignal, now: datetime
) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """Every person of an account where enough distinct people engaged within the
    window, those who did not engage too: the rest of a buying committee at work.

    Driven by the window's events (a range of the events index). The occurrence is the
    window-long period `now` falls in: a lead is found once per period at most, and its
    sequence's re-entry policy decides whether it comes back in a later one."""
    window = timedelta(days=signal.within_days)
    person = aliased(Lead)
    engaged = (
        select(person.account_id)
        .join(Event, Event.lead_id == person.id)
        .where(
            person.account_id.is_not(None),
            _engagement(Event.lead_id),
            Event.occurred_at > now - window,
            Event.occurred_at <= now,
        )
        .group_by(person.account_id)
        .having(func.count(distinct(person.id)) >= signal.contacts)
    )
    period = _EPOCH + (now - _EPOCH) // window * window
    return literal(period, UTCDateTime()), Lead.account_id.in_(engaged)


def _last_engagement() -> Any:
    """When the lead last clicked (as a person: scanners and opens do not count) or sent
    a form: one probe of the events index per lead."""
    return select(func.max(Event.occurred_at)).where(_engagement(Lead.id)).scalar_subquery()


def _on_date(
    session: Session, rule: DateRule, now: datetime
) -> tuple[ColumnElement[Any], ColumnElement[bool]]:
    """A date field fires when it starts with one of the dates (or, yearly, month-days)
    of the window: compared as text, so a value that is no ISO date never matches and
    never stops the statement (a cast would, on PostgreSQL)."""
    value = Lead.fields[rule.field].as_string()
    window = date_match(rule, now)
    if rule.yearly:
        month_day = func.substr(value, 6, 5)
        year = func.substr(value, 1, 4)
        whens = [
            (
                and_(month_day == written, year < f"{window.years[written]:04d}"),
                literal(midnight(day), UTCDateTime()),
            )
            for written, day in window.starts.items()
        ]
        shaped = and_(func.substr(value, 5, 1) == "-", func.substr(value, 8, 1) == "-")
        occurred = case(*whens, else_=None)
        return occurred, and_(shaped, month_day.in_(list(window.starts)), occurred.is_not(None))
    written_day = func.substr(value, 1, 10)
    whens = [
        (written_day == written, literal(midnight(day), UTCDateTime()))
        for written, day in window.starts.items()
    ]
    return case(*whens, else_=None), written_day.in_(list(window.starts))


# --- who may enter ------------------------------------------------------------------


def _mailable(consent_required: bool) -> ColumnElement[bool]:
    """As the dispatcher's suppression check (nurture.suppression), as a condition."""
    consent = LATEST_CONSENT.element
    allowed = consent.is_(True) if consent_required else or_(consent.is_(None), consent.is_(True))
    return and_(
        Lead.unsubscribed_at.is_(None),
        Lead.bounced_at.is_(None),
        Lead.sunset_at.is_(None),
        Lead.stage.not_in(sorted(ALWAYS_EXIT_STAGES)),
        or_(Lead.category.is_(None), Lead.category != "no_interest"),
        allowed,
    )


def _admitted(session: Session, audience: Audience) -> ColumnElement[bool]:
    """`Audience.admits` as a condition over the leads table."""
    holds: list[ColumnElement[bool]] = []
    if audience.countries is not None:
        holds.append(func.upper(Lead.country).in_(sorted(audience.countries)))
    if audience.company_size is not None:
        size = audience.company_size
        holds.append(Lead.company_size.is_not(None))
        if size.min is not None:
            holds.append(Lead.company_size >= size.min)
        if size.max is not None:
            holds.append(Lead.company_size <= size.max)
    if audience.job_title_contains:
        title = func.lower(func.coalesce(Lead.job_title, ""))
        words = [word.casefold() for word in audience.job_title_contains]
        holds.append(or_(*(title.contains(word, autoescape=True) for word in words)))
    if audience.sources is not None:
        holds.append(Lead.source.in_(sorted(audience.sources)))
    if audience.locales is not None:
        holds.append(func.coalesce(Lead.locale, "").in_(sorted(audience.locales)))
    if audience.stages is not None:
        holds.append(Lead.stage.in_(sorted(audience.stages)))
    for name, allowed in audience.fields.items():
        holds.append(_field_text(session, name).in_(sorted(allowed)))
    return and_(true(), *holds)


def _field_text(session: Session, name: str) -> ColumnElement[Any]:
    """A field as files write it: JSON true reads "true" (SQLite's json_extract says 1)."""
    value = Lead.fields[name].as_string()
    if session.get_bind().dialect.name != "sqlite":
        return value
    kind = func.json_type(Lead.fields, f'$."{name}"')
    return case((kind == "true", "true"), (kind == "false", "false"), else_=value)


def _may_enter(sequence: Sequence, now: datetime) -> ColumnElement[bool]:
    """Not inside the sequence now, and its re-entry policy lets the lead back in."""
    cutoff = reentry_cutoff(sequence.reentry, now)
    mine = and_(Enrollment.lead_id == Lead.id, Enrollment.sequence_id == sequence.id)
    if cutoff is None:
        return ~exists().where(mine)
    recent = or_(Enrollment.status == "active", Enrollment.left_at.is_(None))
    return ~exists().where(mine, or_(recent, Enrollment.left_at > cutoff))


def _insert(session: Session, model: type[Any]) -> Any:
    dialect = session.get_bind().dialect.name
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(model.__table__)
    return statement.execution_options(preserve_rowcount=True)  # how many, for the log


def _count(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
