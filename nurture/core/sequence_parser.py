"""Turn sequence files (YAML) into `Sequence` values, or into located problems.

The language is described in docs/sequences.md. Every mistake in a file is
reported, each as `file:line: field.path: what was expected`; a file with any
problem yields no sequence, and a broken file never stops its neighbours loading.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import TypeVar

from nurture.core.problems import Problem
from nurture.core.sequence_language import (
    ACCOUNT_TRIGGER,
    DATE_TRIGGER,
    ENTRY,
    EVENT_SHORTHANDS,
    EVENT_TRIGGER,
    EXIT,
    INACTIVE_TRIGGER,
    LEAD_CREATED,
    LOCALE,
    MIGRATE,
    REENTRY_AFTER,
    SEND_WINDOW,
    SEQUENCE,
    SEQUENCE_ID,
    STAY,
    STEP_ID,
    TRIGGER_KINDS,
    TRIGGER_WORDS,
)
from nurture.core.sequence_steps import MAX_STEPS, TemplateChecker, parse_steps
from nurture.core.sequence_values import audience, duration, stage_name, stages, texts, timezone
from nurture.core.sequences import (
    AccountSignal,
    Audience,
    DateRule,
    ExitRules,
    Migration,
    Reentry,
    SendWindow,
    Sequence,
    Step,
    Trigger,
    TriggerKind,
)
from nurture.core.shapes import Text
from nurture.core.timing import parse_send_window
from nurture.core.yamlsource import (
    Located,
    LocatedList,
    LocatedMapping,
    LocatedScalar,
    Reader,
    at,
    load,
    read_text,
)

__all__ = [
    "MAX_STEPS",
    "Catalog",
    "ParseResult",
    "TemplateChecker",
    "load_directory",
    "parse_sequence",
]

_T = TypeVar("_T")
_SEQUENCE_ID = re.compile(SEQUENCE_ID)
_LOCALE = re.compile(LOCALE)
_STEP_ID = re.compile(STEP_ID)


@dataclass(frozen=True)
class ParseResult:
    """One file's outcome: a sequence, or the problems that prevent it."""

    sequence: Sequence | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Catalog:
    """Every valid sequence of a folder by id, and every problem found in it."""

    sequences: Mapping[str, Sequence]
    problems: tuple[Problem, ...] = ()


def parse_sequence(text: str, path: str, templates: TemplateChecker | None = None) -> ParseResult:
    """Parse one sequence file's text; `path` is used in problems and as the default id."""
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; a sequence needs at least name, entry and steps")
    top = reader.keyed(root, "", SEQUENCE)
    if top is None:
        return ParseResult(None, _sorted(reader.problems))

    seq_id = _sequence_id(reader, top, path)
    name = reader.string(top.get("name"), "name")
    enabled = _default(reader.boolean(top.get("enabled"), "enabled"), True)
    sunset = _default(reader.boolean(top.get("sunset"), "sunset"), False)
    priority = _default(reader.integer(top.get("priority"), "priority"), 0)
    locales, default_locale = _locales(reader, top)
    zone = timezone(reader, top.get("timezone"), "timezone")
    triggers, audience, reentry = _entry(reader, top.get("entry"))
    exit_rules = _exit(reader, top.get("exit"))
    window = _send_window(reader, top.get("send_window"))
    # The template checker gets the default locale first: it is the fallback.
    checked_locales = (default_locale, *(loc for loc in locales if loc != default_locale))
    steps = parse_steps(reader, top.get("steps"), checked_locales, templates)
    migrate = _migrate(reader, top.get("migrate"), steps)

    if reader.problems or seq_id is None or name is None or steps is None:
        return ParseResult(None, _sorted(reader.problems))
    sequence = Sequence(
        id=seq_id,
        name=name,
        path=path,
        version=content_version(text),
        source=text,
        steps=steps,
        triggers=triggers,
        audience=audience,
        exit=exit_rules,
        window=window,
        timezone=zone or "UTC",
        reentry=reentry,
        priority=priority,
        locales=locales,
        default_locale=default_locale,
        enabled=enabled,
        sunset=sunset,
        migrate=migrate,
    )
    return ParseResult(sequence, ())


def content_version(text: str) -> str:
    """The version of a sequence file: the start of the SHA-256 of its bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def load_directory(directory: Path, templates: TemplateChecker | None = None) -> Catalog:
    """Every `*.yaml` / `*.yml` file of `directory` (not its sub-folders), by name order."""
    if not directory.is_dir():
        return Catalog(MappingProxyType({}), (Problem(str(directory), 0, "not a folder"),))
    sequences: dict[str, Sequence] = {}
    problems: list[Problem] = []
    files = sorted(
        entry
        for entry in directory.iterdir()
        # Dot files are editor back-ups and lock files, not sequences.
        if entry.suffix in (".yaml", ".yml") and not entry.name.startswith(".") and entry.is_file()
    )
    for file in files:
        path = str(directory / file.name)
        text, problem = read_text(directory / file.name)
        if text is None:
            problems.extend([problem] if problem is not None else [])
            continue
        result = parse_sequence(text, path, templates)
        problems.extend(result.problems)
        if result.sequence is None:
            continue
        first = sequences.get(result.sequence.id)
        if first is not None:
            problems.append(
                Problem(
                    path,
                    _id_line(text),
                    f'id: "{first.id}" is already the id of {first.path}; ids must be unique',
                )
            )
            continue
        sequences[result.sequence.id] = result.sequence
    return Catalog(MappingProxyType(sequences), tuple(problems))


# --- top level -----------------------------------------------------------------


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda problem: problem.line))


def _default(value: _T | None, default: _T) -> _T:
    return default if value is None else value


def _id_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.startswith("id:"):
            return number
    return 1


def _sequence_id(reader: Reader, top: LocatedMapping, path: str) -> str | None:
    node = top.get("id")
    if node is None:
        stem = PurePath(path).stem
        if _SEQUENCE_ID.fullmatch(stem):
            return stem
        reader.problem(
            1,
            "id",
            f'the file name gives the id "{stem}", which is not made of a-z, 0-9 and "-";'
            " rename the file or give an id",
        )
        return None
    seq_id = reader.string(node, "id", 'an id made of a-z, 0-9 and "-"')
    if seq_id is not None and not _SEQUENCE_ID.fullmatch(seq_id):
        reader.expected(node, "id", 'an id made of a-z, 0-9 and "-"')
        return None
    return seq_id


def _locales(reader: Reader, top: LocatedMapping) -> tuple[tuple[str, ...], str]:
    locales: list[str] = []
    for item in reader.strings(top.get("locales"), "locales") or ():
        text = item.text.strip()
        if not _LOCALE.fullmatch(text):
            reader.expected(item, "locales", 'a language code such as "en", "fr" or "pt-BR"')
        elif text not in locales:
            locales.append(text)
    if not locales:
        locales = ["en"]  # none given, or none valid (already reported)
    node = top.get("default_locale")
    default_locale = reader.string(node, "default_locale", "a language code")
    if node is None or default_locale is None:
        return tuple(locales), locales[0]
    if default_locale not in locales:
        reader.problem(
            node.line,
            "default_locale",
            f'"{default_locale}" is not one of locales ({", ".join(locales)})',
        )
    return tuple(locales), default_locale


# --- entry, exit, send window ----------------------------------------------------


def _entry(reader: Reader, node: Located | None) -> tuple[tuple[Trigger, ...], Audience, Reentry]:
    entry = reader.keyed(node, "entry", ENTRY)
    if entry is None:
        return (), Audience(), Reentry()
    triggers: list[Trigger] = []
    trigger_list = entry.get("triggers")
    if trigger_list is not None and not isinstance(trigger_list, LocatedList):
        reader.expected(trigger_list, "entry.triggers", "a list of triggers")
    elif isinstance(trigger_list, LocatedList):
        if not trigger_list.items:
            reader.problem(trigger_list.line, "entry.triggers", "expected at least one trigger")
        for index, item in enumerate(trigger_list.items, start=1):
            trigger = _trigger(reader, item, at("entry.triggers", index))
            if trigger is not None:
                triggers.append(trigger)
    admitted = audience(reader, entry.get("audience"))
    reentry = _reentry(reader, entry.get("reentry"))
    for trigger in triggers:
        if trigger.date is not None and trigger.date.yearly and not reentry.allowed:
            reader.problem(
                trigger.line,
                "entry.triggers",
                "a trigger every year needs entry.reentry: {after: a duration}, or each"
                " lead would enter only at the first anniversary",
            )
    return tuple(triggers), admitted, reentry


def _trigger(reader: Reader, node: Located, where: str) -> Trigger | None:
    # A bare `- lead_created` reads naturally and needs no argument.
    if isinstance(node, LocatedScalar) and node.text in TRIGGER_WORDS:
        node = LocatedMapping(
            MappingProxyType({node.text: LocatedScalar(None, "", node.line)}),
            MappingProxyType({node.text: node.line}),
            node.line,
        )
    single = reader.one_of(node, where, TRIGGER_KINDS, "a trigger", "trigger kind")
    if single is None:
        return None
    kind, value, item = single
    line = item.line
    inner = at(where, kind)
    if kind in EVENT_SHORTHANDS:
        match = _shorthand_match(reader, value, inner, (EVENT_SHORTHANDS[kind],))
        return None if match is None else _event_trigger(kind, match, line)
    if kind == "lead_created":
        match = _shorthand_match(reader, value, inner, tuple(LEAD_CREATED.keys))
        if match is None:
            return None
        return Trigger(TriggerKind.LEAD_CREATED, match=MappingProxyType(match), line=line)
    if kind == "event":
        spec = reader.keyed(value, inner, EVENT_TRIGGER)
        if spec is None:
            return None
        name = reader.field(spec, EVENT_TRIGGER, "name", inner)
        match = reader.text_mapping(spec.get("match"), at(inner, "match"))
        return None if name is None else _event_trigger(name, match or {}, line)
    if kind == "stage_reached":
        found = reader.scalar_text(value, inner, "a stage")
        stage = stage_name(reader, found, inner) if found is not None else None
        return None if stage is None else Trigger(TriggerKind.STAGE_REACHED, stage=stage, line=line)
    if kind == "inactive":
        spec = reader.keyed(value, inner, INACTIVE_TRIGGER)
        days = None if spec is None else reader.field(spec, INACTIVE_TRIGGER, "days", inner)
        if days is None:
            return None
        return Trigger(TriggerKind.INACTIVE, inactive_days=days, line=line)
    if kind == "date":
        rule = _date_rule(reader, value, inner)
        return None if rule is None else Trigger(TriggerKind.DATE, date=rule, line=line)
    if kind == "account_engaged":
        spec = reader.keyed(value, inner, ACCOUNT_TRIGGER)
        if spec is None:
            return None
        contacts = reader.field(spec, ACCOUNT_TRIGGER, "contacts", inner)
        within = _days(reader, spec.get("within"), at(inner, "within"))
        if contacts is None or within is None:
            return None
        signal = AccountSignal(contacts=contacts, within_days=within)
        return Trigger(TriggerKind.ACCOUNT_ENGAGED, account=signal, line=line)
    tag = reader.string(value, inner, "a tag")
    return None if tag is None else Trigger(TriggerKind.TAG_ADDED, tag=tag, line=line)


def _date_rule(reader: Reader, node: Located, where: str) -> DateRule | None:
    spec = reader.keyed(node, where, DATE_TRIGGER)
    if spec is None:
        return None
    name = reader.field(spec, DATE_TRIGGER, "field", where)
    every = reader.field(spec, DATE_TRIGGER, "every", where)
    if "before" in spec and "after" in spec:
        reader.problem(spec.line, where, "expected before or after, not both")
        return None
    side = "before" if "before" in spec else "after"
    offset = 0
    if side in spec:
        days = _days(reader, spec.get(side), at(where, side))
        if days is None:
            return None
        offset = -days if side == "before" else days
    if name is None or ("every" in spec and every is None):
        return None
    return DateRule(field=name, offset_days=offset, yearly=every == "year")


def _days(reader: Reader, node: Located | None, where: str) -> int | None:
    """Whole days: a date has no hour, and business days would move with holidays."""
    found = duration(reader, node, where)
    if found is None or node is None:
        return None
    if found.unit not in ("days", "weeks"):
        reader.problem(node.line, where, f'expected days or weeks such as "60 days", not "{found}"')
        return None
    return found.amount * (7 if found.unit == "weeks" else 1)


def _shorthand_match(
    reader: Reader, node: Located, where: str, allowed: tuple[str, ...]
) -> dict[str, str] | None:
    if isinstance(node, LocatedScalar) and node.is_null:
        return {}  # `lead_created:` with nothing after it, same as {}
    found = reader.mapping(node, where, allowed, what=f"a mapping with {' or '.join(allowed)}")
    if found is None:
        return None
    match: dict[str, str] = {}
    for key in allowed:
        text = reader.string(found.get(key), at(where, key))
        if text is not None:
            match[key] = text
    return match


def _event_trigger(event: str, match: dict[str, str], line: int) -> Trigger:
    return Trigger(TriggerKind.EVENT, event=event, match=MappingProxyType(match), line=line)


def _reentry(reader: Reader, node: Located | None) -> Reentry:
    where = "entry.reentry"
    what = REENTRY_AFTER.what
    if node is None:
        return Reentry()
    if isinstance(node, LocatedScalar) and node.text == "never":
        return Reentry()
    if not isinstance(node, LocatedMapping):
        reader.expected(node, where, what)
        return Reentry()
    found = reader.keyed(node, where, REENTRY_AFTER)
    cooldown = duration(reader, found.get("after") if found else None, at(where, "after"))
    return Reentry(allowed=True, cooldown=cooldown)


def _exit(reader: Reader, node: Located | None) -> ExitRules:
    found = reader.keyed(node, "exit", EXIT)
    if found is None:
        return ExitRules()
    return ExitRules(
        events=texts(reader, found.get("events"), "exit.events") or frozenset(),
        stages=stages(reader, found.get("stages"), "exit.stages") or frozenset(),
    )


def _migrate(
    reader: Reader, node: Located | None, steps: tuple[Step, ...] | None
) -> tuple[Migration, ...]:
    """`migrate:` entries; each target must be a step of this file (or "stay"). Whether
    each old id was a step of an earlier version is for the plan, which has them."""
    found = reader.keyed(node, "migrate", MIGRATE)
    if found is None:
        return ()
    spec = MIGRATE.values
    assert isinstance(spec, Text)
    ids = tuple(step.id for step in steps or ())
    entries = []
    for old in found:
        where = at("migrate", old)
        if not _STEP_ID.fullmatch(old):
            reader.problem(found.key_lines[old], where, f"expected an earlier step id, got {old!r}")
            continue
        value = found.get(old)
        new = reader.text(value, where, spec)
        if new is None or value is None:
            continue
        if steps is not None and new != STAY and new not in ids:
            reader.problem(
                value.line,
                where,
                f'"{new}" is no step of this file; expected one of {", ".join(ids)}, or "{STAY}"',
            )
            continue
        entries.append(Migration(old, new, found.key_lines[old]))
    return tuple(entries)


def _send_window(reader: Reader, node: Located | None) -> SendWindow | None:
    found = reader.keyed(node, "send_window", SEND_WINDOW)
    if found is None:
        return None
    days = reader.strings(found.get("days"), "send_window.days", 'days such as "mon-fri"')
    hours = reader.string(found.get("hours"), "send_window.hours", 'hours such as "09:00-17:30"')
    skip_holidays = True  # business days are working days: a country's holidays are not
    if found.get("holidays") is not None:
        skip_holidays = bool(reader.boolean(found.get("holidays"), "send_window.holidays"))
    if days is None or hours is None:
        return None
    try:
        # One text may be a named set ("weekdays", "every day"), so it stays one text.
        written = [item.text for item in days]
        single = isinstance(found.get("days"), LocatedScalar)
        window = parse_send_window(written[0] if single else written, hours)
        return replace(window, holidays=skip_holidays)
    except ValueError as exc:
        # The message says which half is wrong; point at that half's line.
        field = "days" if str(exc).startswith("expected days") else "hours"
        line = found.key_lines[field]
        reader.problem(line, f"send_window.{field}", str(exc))
        return None
