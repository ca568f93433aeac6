"""A lead's journey through a sequence, as a timeline, under stated assumptions.

Uses the same `walk`, send window and frequency cap rules as the dispatcher;
nothing is sent and nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from nurture.core.admission import ALWAYS_EXIT_STAGES, exit_on_event, exit_on_stage, may_reenter
from nurture.core.cap import cap_release
from nurture.core.decisions import refusal
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
from nurture.core.sequences import ENGAGEMENT_EVENTS, Sequence
from nurture.core.timing import format_local, next_window_opening, resolve_timezone
from nurture.core.wording import split_lines, trigger_text


@dataclass(frozen=True)
class Change:
    """Something the lead does or becomes at a given time: it clicks or opens an email
    step (`click`, `open`: applied once that email is sent), or its `stage` or `score`
    changes."""

    at: datetime
    kind: str  # click | open | stage | score
    value: str
    why: str = ""  # shown in the timeline: who made the change


@dataclass(frozen=True)
class Assumptions:
    """What the simulated lead does: the email steps it clicks, events at given times."""

    clicks: frozenset[str] = frozenset()
    opens: frozenset[str] = frozenset()
    events: tuple[EventFact, ...] = ()
    changes: tuple[Change, ...] = ()
    cap_emails: int | None = None
    cap_days: int = 7
    holidays: frozenset[date] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Entry:
    at: datetime
    local: str
    what: str
    # What a test compares: "send", "click", "open" (of `step`), "leave" (for `reason`),
    # else "note".
    kind: str = "note"
    step: str | None = None
    reason: str | None = None


@dataclass(frozen=True)
class Standing:
    """Where a real lead stands with the sequence, read from the database: why it may
    not be mailed (None: it may), and its latest enrollment there, if any."""

    mail_refusal: str | None = None
    status: str | None = None  # active | completed | exited
    left_at: datetime | None = None
    position: Position | None = None  # where an active enrollment is
    facts: Facts | None = None  # what it did in that enrollment
    # Its A/B splits: the key its assignment hashes, its recorded variants, the winners.
    lead_key: str = ""
    splits: Mapping[str, str] = field(default_factory=dict)
    winners: Mapping[str, str] = field(default_factory=dict)


def kept_out(
    sequence: Sequence, lead: LeadProfile, standing: Standing, now: datetime
) -> str | None:
    """Why this lead would get nothing from the sequence now, as the engine decides it:
    not to be mailed, kept out by the audience, or not allowed back in; None when it
    would enter (or is inside already)."""
    if standing.mail_refusal is not None:
        return f"the lead may not be mailed: {standing.mail_refusal}"
    if standing.status == "active":
        return None
    if lead.stage in ALWAYS_EXIT_STAGES:
        return f"the lead is {lead.stage}"
    refused = refusal(sequence.audience, lead)
    if refused is not None:
        return f"audience: {refused}"
    if standing.status is not None:
        tz = resolve_timezone(lead.timezone, lead.country, sequence.timezone)
        if not may_reenter(sequence, standing.left_at, now, tz):
            left = f"{standing.left_at:%Y-%m-%d}" if standing.left_at else "?"
            policy = sequence.reentry
            rule = (
                "its re-entry policy does not allow entering again"
                if not policy.allowed
                else f"re-entry is allowed {policy.cooldown} after leaving"
            )
            return f"it left on {left} and {rule}"
    return None


def simulate(
    sequence: Sequence,
    lead: LeadProfile,
    start: datetime,
    days: int,
    assumptions: Assumptions = Assumptions(),
    standing: Standing | None = None,
) -> tuple[Entry, ...]:
    """The journey from `start`: entering the sequence, or, for a real lead inside it
    already (`standing`), going on from where it is with what it did there."""
    tz = resolve_timezone(lead.timezone, lead.country, sequence.timezone)
    end = start + timedelta(days=days)
    entries: list[Entry] = []

    def note(at: datetime, what: str, kind: str = "note", step: str | None = None) -> None:
        entries.append(Entry(at, format_local(at, tz), what, kind, step))

    def leave(at: datetime, reason: str) -> None:
        entries.append(
            Entry(
                at, format_local(at, tz), f"leaves the sequence ({reason})", "leave", None, reason
            )
        )

    now = start
    inside = standing is not None and standing.position is not None
    if standing is not None and standing.position is not None:
        position = standing.position
        facts = replace(standing.facts or Facts(lead=lead), lead=lead)
        note(start, f"is in {sequence.id} at {position.step_id} since"
                    f" {format_local(position.started_at, tz)}, timezone {tz.key}")  # fmt: skip
    if not inside:
        note(start, f"enters {sequence.id} (version {sequence.version}), timezone {tz.key}")
        periodic = [trigger_text(t) for t in sequence.triggers if t.periodic]
        if periodic:
            note(start, f"entered when the periodic job finds it: {'; or '.join(periodic)}")
        position = Position(sequence.first_step, start)
        facts = Facts(lead=lead)
    for split in sequence.splits():
        note(start, f"split {split.id}: {'; '.join(split_lines(split))}")
    if standing is not None:
        facts = replace(
            facts, lead_key=standing.lead_key, splits=standing.splits, winners=standing.winners
        )
    sent: list[datetime] = []
    pending = sorted(assumptions.events, key=lambda e: e.occurred_at)
    changes = sorted(assumptions.changes, key=lambda c: c.at)
    on_send: list[Change] = []  # clicks and opens of emails not sent yet
    for _ in range(10_000):
        arrived = [e for e in pending if e.occurred_at <= now]
        if arrived:
            pending = [e for e in pending if e.occurred_at > now]
            for event in arrived:
                note(event.occurred_at, f"assumed event: {event.name}")
                reason = exit_on_event(sequence, event.name)
                if reason is not None:
                    leave(event.occurred_at, reason)
                    return tuple(entries)
            facts = replace(facts, events=facts.events + tuple(arrived))
        for change in [c for c in changes if c.at <= now]:
            changes.remove(change)
            if change.kind in ("click", "open") and change.value not in facts.done:
                on_send.append(change)
                continue
            facts = _changed(facts, change)
            note(change.at, f"assumed: {_described(change)}", *_noted(change))
            reason = _exit_on(sequence, change)
            if reason is not None:
                leave(change.at, reason)
                return tuple(entries)
        result = walk(sequence, position, facts, now, tz, assumptions.holidays)
        for decision in result.trail:
            note(now, decision)
        outcome = result.outcome
        if isinstance(outcome, Finish):
            leave(now, outcome.reason)
            if sequence.sunset and outcome.reason == "completed" and not _engaged(facts):
                note(now, "is sunset: no human click nor form since entering, no more emails")
            break
        if isinstance(outcome, Sleep):
            wake = outcome.until
            if pending and (wake is None or pending[0].occurred_at < wake):
                wake = pending[0].occurred_at
            if changes and (wake is None or changes[0].at < wake):
                wake = changes[0].at
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
        note(now, f"sends {step.id}: template {step.template} ({step.kind})", "send", step.id)
        sent.append(now)
        facts = settle(facts, step.id)
        for change in [c for c in on_send if c.value == step.id]:
            on_send.remove(change)
            facts = _changed(facts, change)
            note(now, f"assumed: {_described(change)}", *_noted(change))
            reason = _exit_on(sequence, change)
            if reason is not None:
                leave(now, reason)
                return tuple(entries)
        if step.id in assumptions.clicks:
            facts = replace(facts, clicked=facts.clicked | {step.id})
            note(now, f"assumed: the lead clicks {step.id}", "click", step.id)
            reason = exit_on_event(sequence, ENGAGED_BY["click"])
            if reason is not None:
                leave(now, reason)
                return tuple(entries)
        elif step.id in assumptions.opens:
            facts = replace(facts, opened=facts.opened | {step.id})
        position = after_send(step, now)
    return tuple(entries)


# The event a person's click or open of an email is recorded as: a sequence may exit on it.
ENGAGED_BY = {"click": "email_clicked", "open": "email_opened"}


def _exit_on(sequence: Sequence, change: Change) -> str | None:
    """Why the lead leaves on this change: a stage the sequence exits on, or the event a
    click or an open is recorded as, when the sequence exits on it."""
    if change.kind == "stage":
        return exit_on_stage(sequence, change.value)
    if change.kind in ENGAGED_BY:
        return exit_on_event(sequence, ENGAGED_BY[change.kind])
    return None


def _engaged(facts: Facts) -> bool:
    """What takes a lead off a sunset: a click, or a form (nurture.triggers)."""
    return bool(facts.clicked) or any(e.name in ENGAGEMENT_EVENTS for e in facts.events)


def _changed(facts: Facts, change: Change) -> Facts:
    match change.kind:
        case "click":
            return replace(facts, clicked=facts.clicked | {change.value})
        case "open":
            return replace(facts, opened=facts.opened | {change.value})
        case "stage":
            return replace(facts, lead=replace(facts.lead, stage=change.value))
        case "score":
            return replace(facts, lead=replace(facts.lead, score=int(change.value)))
    raise AssertionError(change.kind)  # pragma: no cover


def _noted(change: Change) -> tuple[str, str | None]:
    """An entry's kind and step for a change: clicks and opens are counted (scoring)."""
    if change.kind in ("click", "open"):
        return change.kind, change.value
    return "note", None


def _described(change: Change) -> str:
    if change.kind in ("click", "open"):
        return f"the lead {change.kind}s {change.value}"
    why = f" ({change.why})" if change.why else ""
    return f"the lead's {change.kind} becomes {change.value}{why}"


def local_zone(sequence: Sequence, lead: LeadProfile) -> ZoneInfo:
    return resolve_timezone(lead.timezone, lead.country, sequence.timezone)
