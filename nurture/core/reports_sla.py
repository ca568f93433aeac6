"""The marketing-sales SLA: did sales answer the leads handed to them in time?

Time is business time on the calendar of the rep who holds the lead
(nurture/core/business_time.py): a lead handed over on Friday evening and answered on
Monday morning waited a few business hours, not a weekend.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from nurture.core.business_time import Ledger, WorkCalendar
from nurture.core.reports import (
    ALL,
    GROUP_COLUMNS,
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
    groups: dict[tuple[str, ...], list[Timed]] = {}
    for item in measured:
        groups.setdefault(group_label(item.handoff.group), []).append(item)
    width = len(GROUP_COLUMNS[by])
    everyone = list({item.handoff.promotion_id: item for item in measured}.values())
    rows, alarms = [], []
    for key, items in [*sorted(groups.items()), ((ALL,) + ("",) * (width - 1), everyone)]:
        figures, rate, alarm = _figures(items, threshold)
        extra: tuple[str | None, ...] = ()
        if by == "rep":
            extra = (_name(items), str(items[0].calendar)) if key[0] != ALL else (None, None)
        rows.append((*key, *extra, *figures))
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


def _figures(
    items: list[Timed], threshold: float
) -> tuple[tuple[object, ...], Decimal | None, bool]:
    """The row's figures, the treatment rate and whether it is under the threshold."""
    states = [item.state for item in items]
    in_time, late = states.count("in time"), states.count("late")
    overdue, pending = states.count("overdue"), states.count("not yet due")
    due = len(items) - pending
    answered = [item for item in items if item.waited is not None]
    accepted = sum(1 for item in answered if item.handoff.accepted)
    waits = [item.waited for item in answered if item.waited is not None]
    rate = percent(in_time, due)
    alarm = bool(due) and in_time < threshold * due
    figures = (
        len(items),
        in_time,
        late,
        overdue,
        pending,
        rate,
        accepted,
        percent(accepted, len(answered)),
        hours(percentile(waits, 50)),
        hours(percentile(waits, 90)),
        late + overdue,
        sum(item.handoff.escalations for item in items),
        f"under {threshold:.0%}" if alarm else "",
    )
    return figures, rate, alarm


def _name(items: list[Timed]) -> str | None:
    names = [i.handoff.rep_name for i in items if i.handoff.rep_name]
    return names[-1] if names else None
