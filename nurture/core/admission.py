"""Who enters a sequence, who may enter again, and who must leave: pure decisions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from nurture.core.decisions import refusal
from nurture.core.profile import LeadProfile
from nurture.core.sequences import Sequence, Trigger, TriggerKind
from nurture.core.timing import add_duration

ALWAYS_EXIT_STAGES = frozenset({"disqualified"})


@dataclass(frozen=True)
class Occurrence:
    """Something that may enrol a lead: a creation, an event, a stage reached, a tag added."""

    kind: TriggerKind
    event: str | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    stage: str | None = None
    tag: str | None = None

    def describe(self) -> str:
        match self.kind:
            case TriggerKind.EVENT:
                return f"event {self.event}"
            case TriggerKind.STAGE_REACHED:
                return f"stage {self.stage}"
            case TriggerKind.TAG_ADDED:
                return f"tag {self.tag}"
        return "lead created"


def _matches(match: Mapping[str, str], values: Mapping[str, Any]) -> bool:
    return all(str(values.get(key)) == expected for key, expected in match.items())


def fires(trigger: Trigger, occurrence: Occurrence, lead: LeadProfile) -> bool:
    if trigger.kind is not occurrence.kind:
        return False
    match trigger.kind:
        case TriggerKind.LEAD_CREATED:
            return _matches(trigger.match, {"source": lead.source, "campaign": lead.campaign})
        case TriggerKind.EVENT:
            return trigger.event == occurrence.event and _matches(
                trigger.match, occurrence.properties
            )
        case TriggerKind.STAGE_REACHED:
            return trigger.stage == occurrence.stage
        case TriggerKind.TAG_ADDED:
            return trigger.tag == occurrence.tag
    return False  # pragma: no cover


def admitting_trigger(
    sequence: Sequence, occurrence: Occurrence, lead: LeadProfile
) -> Trigger | None:
    """The trigger that lets this lead in, if the audience admits it."""
    trigger, refused = admission(sequence, occurrence, lead)
    return trigger if refused is None else None


def admission(
    sequence: Sequence, occurrence: Occurrence, lead: LeadProfile
) -> tuple[Trigger | None, str | None]:
    """The trigger of this sequence that fires on the occurrence (None: none does), and
    why the lead is kept out all the same (None: it may enter)."""
    if not sequence.enabled:
        return None, None
    trigger = next((t for t in sequence.triggers if fires(t, occurrence, lead)), None)
    if trigger is None:
        return None, None
    if lead.stage in ALWAYS_EXIT_STAGES:
        return trigger, f"the lead is {lead.stage}"
    refused = refusal(sequence.audience, lead)
    return trigger, None if refused is None else f"audience: {refused}"


def may_reenter(sequence: Sequence, left_at: datetime | None, now: datetime, tz: ZoneInfo) -> bool:
    """After a lead left (or while it is still inside: never), may it enter again?"""
    if left_at is None or not sequence.reentry.allowed:
        return False
    if sequence.reentry.cooldown is None:
        return True
    return now >= add_duration(left_at, sequence.reentry.cooldown, tz)


def exit_on_event(sequence: Sequence, event: str) -> str | None:
    if event in sequence.exit.events:
        return f"goal: {event}"
    if event == "unsubscribed":
        return "unsubscribed"
    return None


def exit_on_stage(sequence: Sequence, stage: str) -> str | None:
    if stage in sequence.exit.stages or stage in ALWAYS_EXIT_STAGES:
        return f"stage: {stage}"
    return None
