"""A lead's journey through a sequence, as a timeline, under stated assumptions.

Uses the same `walk`, send window and frequency cap rules as the dispatcher;
nothing is sent and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from nurture.core.admission import exit_on_event
from nurture.core.cap import cap_release
from nurture.core.journey import (
    EventFact,
    Facts,
    Finish,
    Position,
    SendEmail,
    Sleep,
    after_send,
    settle,
    walk,
)
from nurture.core.profile import LeadProfile
from nurture.core.sequences import Sequence
from nurture.core.timing import format_local, next_window_opening, resolve_timezone


@dataclass(frozen=True)
class Assumptions:
    """What the simulated lead does: the email steps it clicks, events at given times."""

    clicks: frozenset[str] = frozenset()
    opens: frozenset[str] = frozenset()
    events: tuple[EventFact, ...] = ()
    cap_emails: int | None = None
    cap_days: int = 7
    holidays: frozenset[date] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Entry:
    at: datetime
    local: str
    what: str


def simulate(
    sequence: Sequence,
    lead: LeadProfile,
    start: datetime,
    days: int,
    assumptions: Assumptions = Assumptions(),
) -> tuple[Entry, ...]:
    tz = resolve_timezone(lead.timezone, lead.country, sequence.timezone)
    end = start + timedelta(days=days)
    entries: list[Entry] = []

    def note(at: datetime, what: str) -> None:
        entries.append(Entry(at, format_local(at, tz), what))

    note(start, f"enters {sequence.id} (version {sequence.version}), timezone {tz.key}")
    now = start
    position = Position(sequence.first_step, start)
    facts = Facts(lead=lead)
    sent: list[datetime] = []
    pending = sorted(assumptions.events, key=lambda e: e.occurred_at)
    for _ in range(10_000):
        arrived = [e for e in pending if e.occurred_at <= now]
        if arrived:
            pending = [e for e in pending if e.occurred_at > now]
            for event in arrived:
                note(event.occurred_at, f"assumed event: {event.name}")
                reason = exit_on_event(sequence, event.name)
                if reason is not None:
                    note(event.occurred_at, f"leaves the sequence ({reason})")
                    return tuple(entries)
            facts = replace(facts, events=facts.events + tuple(arrived))
        result = walk(sequence, position, facts, now, tz, assumptions.holidays)
        for decision in result.trail:
            note(now, decision)
        outcome = result.outcome
        if isinstance(outcome, Finish):
            note(now, f"leaves the sequence ({outcome.reason})")
            break
        if isinstance(outcome, Sleep):
            wake = outcome.until
            if pending and (wake is None or pending[0].occurred_at < wake):
                wake = pending[0].occurred_at
            if wake is None:
                note(now, f"waits for {outcome.waiting_for} (no timeout): journey stops here")
                break
            if wake > end:
                note(now, f"waiting at {outcome.position.step_id} until {format_local(wake, tz)}")
                break
            position = outcome.position
            now = wake
            continue
        assert isinstance(outcome, SendEmail)
        step = outcome.step
        position = outcome.position
        opening = next_window_opening(now, sequence.window, tz, assumptions.holidays)
        if opening > now:
            note(now, f"{step.id}: deferred to the send window, {format_local(opening, tz)}")
            now = opening
            continue
        if assumptions.cap_emails is not None:
            release = cap_release(sent, assumptions.cap_emails, assumptions.cap_days, now)
            if release is not None:
                note(
                    now, f"{step.id}: deferred by the frequency cap to {format_local(release, tz)}"
                )
                now = release
                continue
        if now > end:
            break
        note(now, f"sends {step.id}: template {step.template} ({step.kind})")
        sent.append(now)
        facts = settle(facts, step.id)
        if step.id in assumptions.clicks:
            facts = replace(facts, clicked=facts.clicked | {step.id})
            note(now, f"assumed: the lead clicks {step.id}")
        elif step.id in assumptions.opens:
            facts = replace(facts, opened=facts.opened | {step.id})
        position = after_send(step, now)
    return tuple(entries)


def local_zone(sequence: Sequence, lead: LeadProfile) -> ZoneInfo:
    return resolve_timezone(lead.timezone, lead.country, sequence.timezone)
