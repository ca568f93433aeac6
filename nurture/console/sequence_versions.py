"""A sequence's versions: each one stored (with when it was first seen), the live one,
and what changed between two of them, as the files' lines (difflib) and as steps
added, removed or changed on the parsed definitions. No Flask here."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from nurture.content import Content, UnknownVersion
from nurture.core.sequences import Sequence, Step
from nurture.core.wording import (
    audience_lines,
    reentry_text,
    step_summary,
    trigger_text,
    window_text,
)
from nurture.models import SequenceVersion

CONTEXT = 3  # unchanged lines shown around each change


@dataclass(frozen=True)
class Version:
    version: str
    path: str
    source: str
    first_seen: datetime | None  # None: live, not stored yet (the next tick stores it)
    live: bool


@dataclass(frozen=True)
class Line:
    kind: str  # file | hunk | add | remove | same
    text: str


@dataclass(frozen=True)
class Change:
    what: str  # added | removed | changed | moved | setting
    subject: str  # a step id, or the setting's name
    before: str | None = None
    after: str | None = None


@dataclass(frozen=True)
class Comparison:
    older: Version
    newer: Version
    lines: tuple[Line, ...]
    changes: tuple[Change, ...] | None  # None: one of them no longer parses


def history(session: Session, content: Content, sequence_id: str) -> list[Version]:
    """Every stored version, oldest first, and the live one (stored or not yet)."""
    live = content.get(sequence_id)
    rows = session.scalars(
        select(SequenceVersion)
        .where(SequenceVersion.sequence_id == sequence_id)
        .order_by(SequenceVersion.loaded_at, SequenceVersion.id)
    )
    found = [
        Version(row.version, row.path, row.source, row.loaded_at,
                live is not None and row.version == live.version)
        for row in rows
    ]  # fmt: skip
    if live is not None and not any(v.live for v in found):
        found.append(Version(live.version, live.path, live.source, None, True))
    return found


def parsed(session: Session, content: Content, sequence_id: str, version: str) -> Sequence | None:
    live = content.get(sequence_id)
    if live is not None and live.version == version:
        return live
    try:
        return content.pinned(session, sequence_id, version)
    except UnknownVersion:
        return None


def pick(versions: list[Version], older: str | None, newer: str | None) -> tuple[Version, Version]:
    """The two versions to compare (`versions` oldest first, never empty): those asked
    for, else the live one (or the latest) and the one before it."""
    by_id = {v.version: v for v in versions}
    second = by_id.get(newer or "") or next((v for v in versions if v.live), versions[-1])
    index = versions.index(second)
    first = by_id.get(older or "") or versions[max(index - 1, 0)]
    return first, second


def compare(session: Session, content: Content, sequence_id: str, older: Version,
            newer: Version) -> Comparison:  # fmt: skip
    a = parsed(session, content, sequence_id, older.version)
    b = parsed(session, content, sequence_id, newer.version)
    changes = None if a is None or b is None else tuple(changed(a, b))
    return Comparison(older, newer, tuple(text_diff(older, newer)), changes)


def text_diff(older: Version, newer: Version) -> list[Line]:
    diff = difflib.unified_diff(
        older.source.splitlines(),
        newer.source.splitlines(),
        fromfile=f"{older.path} (version {older.version})",
        tofile=f"{newer.path} (version {newer.version})",
        lineterm="",
        n=CONTEXT,
    )
    lines = []
    for text in diff:
        if text.startswith(("---", "+++")):
            kind = "file"
        elif text.startswith("@@"):
            kind = "hunk"
        else:
            kind = {"+": "add", "-": "remove"}.get(text[:1], "same")
        lines.append(Line(kind, text))
    return lines


# What each setting reads as, to say how it changed.
SETTINGS: tuple[tuple[str, Callable[[Sequence], str]], ...] = (
    ("name", lambda s: s.name),
    ("enabled", lambda s: "yes" if s.enabled else "no"),
    ("priority", lambda s: str(s.priority)),
    ("locales", lambda s: ", ".join(s.locales) + f" (fallback {s.default_locale})"),
    ("timezone", lambda s: s.timezone),
    ("send window", lambda s: window_text(s.window)),
    ("triggers", lambda s: "; ".join(trigger_text(t) for t in s.triggers)),
    ("audience", lambda s: "; ".join(audience_lines(s.audience)) or "anyone"),
    ("re-entry", lambda s: reentry_text(s.reentry)),
    ("goal events", lambda s: ", ".join(sorted(s.exit.events)) or "none"),
    ("exit stages", lambda s: ", ".join(sorted(s.exit.stages)) or "none"),
)


def changed(older: Sequence, newer: Sequence) -> list[Change]:
    """What differs between two parsed versions: settings, then steps in the newer
    file's order (removed ones after), then whether the common steps moved."""
    found = []
    for name, read in SETTINGS:
        before, after = read(older), read(newer)
        if before != after:
            found.append(Change("setting", name, before, after))
    old_steps = {s.id: s for s in older.steps}
    new_steps = {s.id: s for s in newer.steps}
    for step in newer.steps:
        previous = old_steps.get(step.id)
        if previous is None:
            found.append(Change("added", step.id, None, step_summary(step)))
        elif not same_step(previous, step):
            found.append(Change("changed", step.id, step_summary(previous), step_summary(step)))
    for step in older.steps:
        if step.id not in new_steps:
            found.append(Change("removed", step.id, step_summary(step), None))
    kept_old = [s.id for s in older.steps if s.id in new_steps]
    kept_new = [s.id for s in newer.steps if s.id in old_steps]
    if kept_old != kept_new:
        found.append(Change("moved", "order", " → ".join(kept_old), " → ".join(kept_new)))
    return found


def same_step(one: Step, other: Step) -> bool:
    """Equal but for where they are in their files (lines move when a step is added)."""
    if type(one) is not type(other):
        return False
    return all(
        getattr(one, f.name) == getattr(other, f.name) or f.name == "line"
        for f in fields(one)
        if f.name != "rules"
    ) and _rules(one) == _rules(other)


def _rules(step: Step) -> object:
    rules = getattr(step, "rules", ())
    return [(rule.condition, rule.goto) for rule in rules]
