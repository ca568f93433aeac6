"""The decisions the engine takes about a lead, as values, and how they read.

A decision is what the engine chose and why, at one moment: a lead kept out of a
sequence (by which audience condition, or by its re-entry policy), a branch taken
(which rule matched, with the values it saw), an email waiting (until when, and
why: a wait step, the send window, a public holiday, the frequency cap and which
sequences used it), a recycle that did not re-enrol. What is already a row of its
own (an enrollment and its exit, a delivery and its outcome, a promotion, a stage
change) is not written twice: `explain` reads those too and tells one story.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from nurture.core.profile import LeadProfile
from nurture.core.sequences import (
    Audience,
    Clicked,
    Condition,
    EventSeen,
    FieldMatches,
    NotClicked,
    Opened,
    ScoreAtLeast,
    StageIs,
    as_text,
)

# Decision kinds written to the log; the other kinds `explain` tells come from rows.
NOT_ENROLLED = "not_enrolled"
BRANCH = "branch"
WAITING = "waiting"
RESUMED = "resumed"
DEFERRED = "deferred"
NOT_RECYCLED = "not_recycled"
SUNSET = "sunset"  # stopped mailing a lead that never engaged, or took it back
SPLIT = "split"  # the variant of an A/B split a lead was assigned
MIGRATED = "migrated"  # moved to a new version of its sequence by `nurture apply`
KINDS = (NOT_ENROLLED, BRANCH, WAITING, RESUMED, DEFERRED, NOT_RECYCLED, SUNSET, SPLIT, MIGRATED)


@dataclass(frozen=True)
class Decision:
    kind: str
    reason: str  # a plain phrase: what was decided and why
    sequence_id: str | None = None
    step_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Entry:
    """One line of a lead's story: a decision, or a row that tells one."""

    at: datetime
    kind: str
    reason: str
    sequence_id: str | None = None
    step_id: str | None = None


# --- why the audience said no --------------------------------------------------------------


def refusal(audience: Audience, lead: LeadProfile) -> str | None:
    """The first audience condition this lead fails, in words, or None if admitted."""
    if audience.countries is not None and (lead.country or "").upper() not in audience.countries:
        return f"country must be one of {_listed(audience.countries)} (is {_shown(lead.country)})"
    if audience.company_size is not None and not audience.company_size.contains(lead.company_size):
        size = audience.company_size
        return f"company size must be {size.min}..{size.max} (is {_shown(lead.company_size)})"
    if audience.job_title_contains:
        title = (lead.job_title or "").casefold()
        if not any(word.casefold() in title for word in audience.job_title_contains):
            words = _listed(audience.job_title_contains)
            return f"job title must contain one of {words} (is {_shown(lead.job_title)})"
    if audience.sources is not None and lead.source not in audience.sources:
        return f"source must be one of {_listed(audience.sources)} (is {_shown(lead.source)})"
    if audience.locales is not None and (lead.locale or "") not in audience.locales:
        return f"locale must be one of {_listed(audience.locales)} (is {_shown(lead.locale)})"
    if audience.stages is not None and lead.stage not in audience.stages:
        return f"stage must be one of {_listed(audience.stages)} (is {lead.stage})"
    for name, allowed in audience.fields.items():
        value = lead.value(name)
        if value is None or as_text(value) not in allowed:
            return f"{name} must be one of {_listed(allowed)} (is {_shown(value)})"
    return None


def _listed(values: Iterable[Any]) -> str:
    return ", ".join(sorted(str(v) for v in values))


def _shown(value: Any) -> str:
    return "not known" if value is None or value == "" else as_text(value)


# --- what a branch condition looked at -------------------------------------------------------


def seen(condition: Condition, lead: LeadProfile, clicked: Iterable[str], opened: Iterable[str],
         events: Iterable[str]) -> str:  # fmt: skip
    """The value a condition was checked against, as a short phrase."""
    match condition:
        case Clicked(step) | NotClicked(step):
            return f"{step} {'clicked' if step in set(clicked) else 'not clicked'}"
        case Opened(step):
            done = step in set(opened) or step in set(clicked)
            return f"{step} {'opened' if done else 'not opened'}"
        case ScoreAtLeast():
            return f"score {lead.score}"
        case FieldMatches(name):
            return f"{name} {_shown(lead.value(name))}"
        case StageIs():
            return f"stage {lead.stage}"
        case EventSeen(name):
            return f"{name} {'seen' if name in set(events) else 'not seen'}"
    raise AssertionError(condition)  # pragma: no cover


# --- telling the story -----------------------------------------------------------------------


def sentence(entry: Entry) -> str:
    where = ""
    if entry.sequence_id is not None:
        where = f"{entry.sequence_id}" + (f" / {entry.step_id}" if entry.step_id else "")
    stamp = f"{entry.at:%Y-%m-%d %H:%M} UTC"
    return f"{stamp}  {where + ': ' if where else ''}{entry.reason}"


def explain(
    entries: Sequence[Entry], sequence_id: str | None = None, step_id: str | None = None
) -> list[str]:
    """The lead's story in plain sentences, oldest first: all of it, or what concerns
    one sequence (and one of its steps: with the sequence's entry and exit around it,
    so that "never got there" reads as such)."""
    chosen = [e for e in sorted(entries, key=lambda e: e.at) if concerns(e, sequence_id, step_id)]
    lines = [sentence(e) for e in chosen]
    if step_id is not None and not any(e.step_id == step_id for e in chosen):
        lines.append(f"nothing was decided about step {step_id}: the lead never reached it")
    if sequence_id is not None and not any(e.sequence_id == sequence_id for e in chosen):
        lines.append(f"nothing was decided about {sequence_id}: none of its triggers fired")
    return lines


def concerns(entry: Entry, sequence_id: str | None, step_id: str | None) -> bool:
    """Whether this line of the story is about that sequence (and step)."""
    if sequence_id is None:
        return True
    if entry.sequence_id is None:  # about the lead as a whole (a promotion, a stage)
        return step_id is None
    if entry.sequence_id != sequence_id:
        return False
    return step_id is None or entry.step_id in (step_id, None)
