"""The marketing-sales SLA: did sales answer the leads handed to them in time?

Time is business time on the calendar of the rep who holds the lead
(nurture/core/business_time.py): a lead handed over on Friday evening and answered on
Monday morning waited a few business hours, not a weekend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from nurture.core.business_time import Ledger, WorkCalendar
from nurture.core.reports import (
    ALL,
    GROUP_COLUMNS,
    NONE,
    Period,
    group_label,
    hours,
    percent,
    percentile,
)
from nurture.core.tables import Table, table

TREATMENT_THRESHOLD = 0.8  # a setting may carry it later; the brief's 80 %


class Handoff(NamedTuple):
    """One promotion as the SLA sees it (a tuple: a year holds a few hundred thousand,
    built five times faster than a frozen dataclass)."""

    promotion_id: int  # with --by sequence a promotion is in several groups, once in all
    group: tuple[str | None, ...]
    rep_email: str | None  # who holds it now, after any reassignment
    rep_name: str | None
    sent_at: datetime
    answered_at: datetime | None  # sales' first answer, whatever it said
    accepted: bool  # any answer but a rejection
    escalations: int = 0


STATES = ("in time", "late", "overdue", "not yet due")


class Timed(NamedTuple):
    """A handoff measured on its rep's calendar (a tuple: a year holds many)."""

    handoff: Handoff
    calendar: WorkCalendar
    state: str  # one of STATES, as of the report's `now`
    waited: float | None  # business seconds to the first answer; None: unanswered


class _Clock:
    """One rep's calendar over the report's days, and how much of it had passed `now`."""

    def __init__(self, ledger: Ledger, now: datetime, sla_hours: float) -> None:
        self.ledger = ledger
        self.now = now
        self.counted_now = ledger.counted(now)
        self.sla = round(sla_hours * 3_600_000_000)
        self.hours = sla_hours

    def state(self, handoff: Handoff) -> tuple[str, float | None]:
        """The hand-off's state and its business seconds to the first answer.

        `answered <= deadline` read off the ledger's counts: the business time before
        an instant only grows, so an instant counted under the target is before the
        deadline and one counted over it after; only an instant counted exactly at
        the target (the deadline itself, or the day off right after it) needs the
        deadline's instant."""
        ledger, sent, answered = self.ledger, handoff.sent_at, handoff.answered_at
        start = ledger.counted(sent)
        moment = answered if answered is not None else self.now
        reached = self.counted_now if answered is None else ledger.counted(moment)
        if start is None or reached is None:  # outside the days laid out
            waited, deadline = ledger.measure(sent, answered, self.hours)
            return _state(handoff, moment, deadline), waited
        waited = None if answered is None else max(0, reached - start) / 1_000_000
        target = start + self.sla
        if reached == target:
            return _state(handoff, moment, ledger.deadline(sent, self.hours)), waited
        if answered is not None:
            return ("in time" if reached < target else "late"), waited
        return ("not yet due" if reached < target else "overdue"), waited


def _state(handoff: Handoff, moment: datetime, deadline: datetime) -> str:
    if handoff.answered_at is not None:
        return "in time" if moment <= deadline else "late"
    return "overdue" if moment > deadline else "not yet due"


def measure(
    handoffs: Iterable[Handoff],
    calendars: Mapping[str, WorkCalendar],
    fallback: WorkCalendar,
    sla_hours: float,
    now: datetime,
) -> list[Timed]:
    """Each hand-off on the calendar of its rep (`calendars`: by case-folded email;
    `fallback` for reps not in it), each calendar laid out once for all of them: a
    year of hand-offs is measured in a look-up each, not a walk over the days."""
    handoffs = list(handoffs)
    if not handoffs:
        return []
    first = min(h.sent_at for h in handoffs).date() - timedelta(days=1)
    answers = [h.answered_at for h in handoffs if h.answered_at is not None]
    # Past the last instant looked at by more than any deadline of a few days.
    last = max([now, *answers]).date() + timedelta(days=45)
    clocks: dict[str, _Clock] = {}
    measured = []
    for handoff in handoffs:
        key = (handoff.rep_email or "").casefold()
        clock = clocks.get(key)
        if clock is None:
            ledger = Ledger(calendars.get(key, fallback), first, last)
            clock = clocks[key] = _Clock(ledger, now, sla_hours)
        state, waited = clock.state(handoff)
        measured.append(Timed(handoff, clock.ledger.calendar, state, waited))
    return measured


@dataclass(frozen=True)
class Figures:
    """One group's hand-offs, counted (group () for everyone). `waits`: the business
    seconds to the first answer of each answered one, when the caller has them all;
    else `median` and `p90` computed where they are (the database)."""

    group: tuple[str | None, ...]
    sent: int
    in_time: int = 0
    late: int = 0
    overdue: int = 0
    pending: int = 0  # not yet due
    accepted: int = 0
    answered: int = 0
    escalations: int = 0
    median: float | None = None
    p90: float | None = None
    rep_name: str | None = None  # by rep: the name the promotions give
    waits: tuple[float, ...] | None = None

    def add(self, other: Figures) -> Figures:
        """Both groups' hand-offs (disjoint sets); percentiles only from both `waits`."""
        both = None
        if self.waits is not None and other.waits is not None:
            both = self.waits + other.waits
        return Figures(
            self.group, self.sent + other.sent, self.in_time + other.in_time,
            self.late + other.late, self.overdue + other.overdue,
            self.pending + other.pending, self.accepted + other.accepted,
            self.answered + other.answered, self.escalations + other.escalations,
            None, None, max(filter(None, (self.rep_name, other.rep_name)), default=None), both,
        )  # fmt: skip


def counted(measured: Iterable[Timed]) -> list[Figures]:
    """Each group's figures from measured hand-offs, and everyone's (each promotion
    once: with --by sequence a promotion is in several groups), with their waits."""
    groups: dict[tuple[str | None, ...], list[Timed]] = {}
    everyone: dict[int, Timed] = {}
    for item in measured:
        groups.setdefault(item.handoff.group, []).append(item)
        everyone[item.handoff.promotion_id] = item
    return [_count(key, items) for key, items in [*groups.items(), ((), list(everyone.values()))]]


def _count(group: tuple[str | None, ...], items: list[Timed]) -> Figures:
    states = [item.state for item in items]
    answered = [item for item in items if item.waited is not None]
    names = [i.handoff.rep_name for i in items if i.handoff.rep_name]
    return Figures(
        group, len(items), states.count("in time"), states.count("late"),
        states.count("overdue"), states.count("not yet due"),
        sum(1 for item in answered if item.handoff.accepted), len(answered),
        sum(item.handoff.escalations for item in items), rep_name=max(names, default=None),
        waits=tuple(item.waited for item in answered if item.waited is not None),
    )  # fmt: skip


def deadlines(
    handoffs: Iterable[Handoff],
    calendars: Mapping[str, WorkCalendar],
    fallback: WorkCalendar,
    sla_hours: float,
    last: date,
) -> list[tuple[int, datetime, float | None]]:
    """Each hand-off's deadline and, when answered, its business seconds to the first
    answer, on its rep's calendar (each laid out once, up to `last`): what `measure`
    compares, kept so that a report can count states without the calendars."""
    handoffs = list(handoffs)
    if not handoffs:
        return []
    first = min(h.sent_at for h in handoffs).date() - timedelta(days=1)
    ledgers: dict[str, Ledger] = {}
    found = []
    for handoff in handoffs:
        key = (handoff.rep_email or "").casefold()
        ledger = ledgers.get(key)
        if ledger is None:
            ledger = ledgers[key] = Ledger(calendars.get(key, fallback), first, last)
        waited, deadline = ledger.measure(handoff.sent_at, handoff.answered_at, sla_hours)
        found.append((handoff.promotion_id, deadline, waited))
    return found


def sla(
    handoffs: Iterable[Handoff],
    calendars: Mapping[str, WorkCalendar],
    fallback: WorkCalendar,
    sla_hours: float,
    now: datetime,
    by: str,
    period: Period,
    threshold: float = TREATMENT_THRESHOLD,
) -> Table:
    """`calendars`: by rep email (case-folded); `fallback` for reps not in it."""
    measured = measure(handoffs, calendars, fallback, sla_hours, now)
    return sla_table(counted(measured), calendars, fallback, sla_hours, by, period, threshold)


def sla_table(
    figures: Iterable[Figures],
    calendars: Mapping[str, WorkCalendar],
    fallback: WorkCalendar,
    sla_hours: float,
    by: str,
    period: Period,
    threshold: float = TREATMENT_THRESHOLD,
) -> Table:
    """The report from each group's figures (rows of the same group are added up)."""
    groups: dict[tuple[str, ...], Figures] = {}
    total: Figures | None = None
    for item in figures:
        if item.group == ():
            total = item if total is None else total.add(item)
            continue
        key = group_label(item.group)
        groups[key] = item if key not in groups else groups[key].add(item)
    width = len(GROUP_COLUMNS[by])
    rows, alarms = [], []
    everyone = (ALL,) + ("",) * (width - 1)
    for key, item in [*sorted(groups.items()), (everyone, total or Figures((), 0))]:
        figures_, rate, alarm = _figures(item, threshold)
        extra: tuple[str | None, ...] = ()
        if by == "rep" and key[0] != ALL:
            rep = "" if key[0] == NONE else key[0]
            extra = (item.rep_name, str(calendars.get(rep.casefold(), fallback)))
        elif by == "rep":
            extra = (None, None)
        rows.append((*key, *extra, *figures_))
        if alarm:
            shown = key[0] if key[0] != ALL else "everyone"
            alarms.append(f"ALARM: treatment rate {rate} % for {shown} is under {threshold:.0%}")
    columns = (
        *GROUP_COLUMNS[by],
        *(("name", "calendar") if by == "rep" else ()),
        "sent", "in time", "late", "overdue", "not yet due", "treatment %",
        "accepted", "acceptance %", "median answer (h)", "p90 answer (h)",
        "breaches", "escalations", "alert",
    )  # fmt: skip
    notes = [
        *alarms,
        f"SLA: {sla_hours:g} business hours (NURTURE_SLA_HOURS) on the calendar of the rep"
        " who holds the lead: their timezone, Monday to Friday, whole days, without their"
        " country's public holidays; reps missing from the routing file are counted on the"
        f" installation's calendar ({fallback})",
        "sent: promotions handed to sales in the period; in time / late: first answer of"
        " sales (whatever it said) by the deadline or after; overdue: no answer and the"
        " deadline passed; not yet due: no answer, deadline still ahead",
        f"treatment %: in time / (sent - not yet due); alarm under {threshold:.0%}",
        "acceptance %: accepted (any answer but a rejection) / answered",
        "answer (h): business hours from the hand-off to the first answer, median and 90th"
        " percentile of the answered",
        "breaches: late + overdue; escalations: the engine's reminders and reassignments"
        " (on the same business hours)",
    ]
    title = f"Sales SLA, {period}, by {by}"
    return table(title, columns, rows, notes)


def _figures(item: Figures, threshold: float) -> tuple[tuple[object, ...], Decimal | None, bool]:
    """The row's figures, the treatment rate and whether it is under the threshold."""
    due = item.sent - item.pending
    rate = percent(item.in_time, due)
    alarm = bool(due) and item.in_time < threshold * due
    median, p90 = item.median, item.p90
    if item.waits is not None:
        median, p90 = percentile(list(item.waits), 50), percentile(list(item.waits), 90)
    figures = (
        item.sent,
        item.in_time,
        item.late,
        item.overdue,
        item.pending,
        rate,
        item.accepted,
        percent(item.accepted, item.answered),
        hours(median),
        hours(p90),
        item.late + item.overdue,
        item.escalations,
        f"under {threshold:.0%}" if alarm else "",
    )
    return figures, rate, alarm
