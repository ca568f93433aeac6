"""Turn sequence files (YAML) into `Sequence` values, or into located problems.

The language is described in docs/sequences.md. Every mistake in a file is
reported, each as `file:line: field.path: what was expected`; a file with any
problem yields no sequence, and a broken file never stops its neighbours loading.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from types import MappingProxyType
from typing import Protocol, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.core.problems import Problem
from nurture.core.sequences import (
    CONTENT_KINDS,
    END,
    STAGES,
    Audience,
    BranchRule,
    BranchStep,
    Clicked,
    Condition,
    Duration,
    EmailStep,
    EventSeen,
    ExitRules,
    FieldMatches,
    IntRange,
    NotClicked,
    Opened,
    Reentry,
    ScoreAtLeast,
    SendWindow,
    Sequence,
    StageIs,
    Step,
    Trigger,
    TriggerKind,
    WaitStep,
)
from nurture.core.timing import is_valid_timezone, parse_duration, parse_send_window
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

_T = TypeVar("_T")


class TemplateChecker(Protocol):
    """Says what is wrong with an email step's template (an empty list when nothing).

    `locales` are the sequence's locales, its default locale first; `subject` is
    the step's subject override (a Jinja template) or None.
    """

    def check(self, template: str, locales: tuple[str, ...], subject: str | None) -> list[str]: ...


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


# --- the language --------------------------------------------------------------

_SEQUENCE_ID = re.compile(r"[a-z0-9-]+")
_STEP_ID = re.compile(r"[a-z0-9_?-]+")
_LOCALE = re.compile(r"[a-z]{2,3}([-_][A-Za-z0-9]{2,8})*")
_COUNTRY = re.compile(r"[A-Za-z]{2}")
_TEMPLATE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

_TOP_KEYS = (
    "id",
    "name",
    "enabled",
    "priority",
    "locales",
    "default_locale",
    "timezone",
    "entry",
    "exit",
    "send_window",
    "steps",
)
_TRIGGER_KINDS = (
    "lead_created",
    "form_submitted",
    "webinar_attended",
    "page_visited",
    "event",
    "stage_reached",
    "tag_added",
)
# Shorthands for common events: the key names the event, the one allowed
# property narrows it (e.g. `form_submitted: {form: whitepaper-roi}`).
_EVENT_SHORTHANDS = {
    "form_submitted": "form",
    "webinar_attended": "webinar",
    "page_visited": "path",
}
_AUDIENCE_KEYS = (
    "country",
    "company_size",
    "job_title_contains",
    "source",
    "locale",
    "stage",
    "fields",
)
_STEP_KINDS = ("email", "wait", "branch")
_CONDITIONS = (
    "clicked",
    "not_clicked",
    "opened",
    "score_at_least",
    "field",
    "stage",
    "event",
)
_EMAIL_CONDITIONS: Mapping[str, Callable[[str], Condition]] = MappingProxyType(
    {"clicked": Clicked, "not_clicked": NotClicked, "opened": Opened}
)


@dataclass(frozen=True)
class _Target:
    """A step id written in the file (next, then, goto, else), to be resolved."""

    where: str
    line: int
    step: str


@dataclass
class _Context:
    """What the step parsers share: the reader and the references to check later."""

    reader: Reader
    targets: list[_Target] = dataclasses.field(default_factory=list)
    email_refs: list[_Target] = dataclasses.field(default_factory=list)
    explicit_next: dict[int, str] = dataclasses.field(default_factory=dict)
    explicit_then: dict[int, str] = dataclasses.field(default_factory=dict)

    def target(self, node: Located | None, where: str) -> str | None:
        step = self.reader.string(node, where, 'a step id or "end"')
        if step is not None and node is not None:
            self.targets.append(_Target(where, node.line, step))
        return step


def parse_sequence(text: str, path: str, templates: TemplateChecker | None = None) -> ParseResult:
    """Parse one sequence file's text; `path` is used in problems and as the default id."""
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; a sequence needs at least name, entry and steps")
    top = reader.mapping(
        root, "", _TOP_KEYS, ("name", "entry", "steps"), "a mapping with name, entry and steps"
    )
    if top is None:
        return ParseResult(None, _sorted(reader.problems))

    seq_id = _sequence_id(reader, top, path)
    name = reader.string(top.get("name"), "name")
    enabled = _default(reader.boolean(top.get("enabled"), "enabled"), True)
    priority = _default(reader.integer(top.get("priority"), "priority"), 0)
    locales, default_locale = _locales(reader, top)
    timezone = _timezone(reader, top.get("timezone"), "timezone")
    triggers, audience, reentry = _entry(reader, top.get("entry"))
    exit_rules = _exit(reader, top.get("exit"))
    window = _send_window(reader, top.get("send_window"))
    # The template checker gets the default locale first: it is the fallback.
    checked_locales = (default_locale, *(loc for loc in locales if loc != default_locale))
    steps = _steps(reader, top.get("steps"), checked_locales, templates)

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
        timezone=timezone or "UTC",
        reentry=reentry,
        priority=priority,
        locales=locales,
        default_locale=default_locale,
        enabled=enabled,
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


def _timezone(reader: Reader, node: Located | None, where: str) -> str | None:
    name = reader.string(node, where, 'a time zone name such as "Europe/Paris"')
    if name is None or node is None:
        return None
    try:
        # Exact IANA names only: the timing module forgives case, and "localtime"
        # is whatever zone the machine running the engine happens to be in.
        valid = name != "localtime" and is_valid_timezone(name) and ZoneInfo(name) is not None
    except (ZoneInfoNotFoundError, ValueError, OSError):
        valid = False
    if not valid:
        reader.problem(
            node.line, where, f'unknown time zone "{name}"; expected a name such as "Europe/Paris"'
        )
        return None
    return name


def _duration(reader: Reader, node: Located | None, where: str) -> Duration | None:
    text = reader.string(node, where, 'a duration such as "2 days"')
    if text is None or node is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        reader.problem(node.line, where, str(exc))
        return None


def _stages(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where, "a stage or a list of stages")
    if items is None:
        return None
    found: set[str] = set()
    for item in items:
        stage = _stage_name(reader, item, where)
        if stage is not None:
            found.add(stage)
    return frozenset(found)


def _stage_name(reader: Reader, item: LocatedScalar, where: str) -> str | None:
    stage = item.text.strip()
    if stage in STAGES:
        return stage
    reader.problem(item.line, where, f'unknown stage "{stage}"; stages are {", ".join(STAGES)}')
    return None


def _int_range(reader: Reader, node: Located | None, where: str) -> IntRange | None:
    found = reader.mapping(node, where, ("min", "max"), what="a range such as {min: 50, max: 500}")
    if found is None:
        return None
    low = reader.integer(found.get("min"), at(where, "min"))
    high = reader.integer(found.get("max"), at(where, "max"))
    if "min" not in found and "max" not in found:
        reader.problem(found.line, where, "expected min, max or both")
    if low is not None and high is not None and low > high:
        reader.problem(found.line, where, f"min ({low}) is greater than max ({high})")
    return IntRange(low, high)


def _texts(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where)
    return None if items is None else frozenset(item.text.strip() for item in items)


# --- entry, exit, send window ----------------------------------------------------


def _entry(reader: Reader, node: Located | None) -> tuple[tuple[Trigger, ...], Audience, Reentry]:
    entry = reader.mapping(node, "entry", ("triggers", "audience", "reentry"), ("triggers",))
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
    audience = _audience(reader, entry.get("audience"))
    return tuple(triggers), audience, _reentry(reader, entry.get("reentry"))


def _trigger(reader: Reader, node: Located, where: str) -> Trigger | None:
    kinds = ", ".join(_TRIGGER_KINDS)
    # A bare `- lead_created` reads naturally and needs no argument.
    if isinstance(node, LocatedScalar) and node.text in ("lead_created", *_EVENT_SHORTHANDS):
        node = LocatedMapping(
            MappingProxyType({node.text: LocatedScalar(None, "", node.line)}),
            MappingProxyType({node.text: node.line}),
            node.line,
        )
    item = reader.mapping(node, where, _TRIGGER_KINDS, what=f"a trigger, one of {kinds}")
    if item is None:
        return None
    if len(item) != 1:
        reader.problem(item.line, where, f"expected exactly one trigger kind, one of {kinds}")
        return None
    kind = next(iter(item))
    if kind not in _TRIGGER_KINDS:
        return None  # already reported as an unknown key
    value = item.get(kind)
    assert value is not None
    inner = at(where, kind)
    line = item.line
    if kind in _EVENT_SHORTHANDS:
        match = _shorthand_match(reader, value, inner, (_EVENT_SHORTHANDS[kind],))
        return None if match is None else _event_trigger(kind, match, line)
    if kind == "lead_created":
        match = _shorthand_match(reader, value, inner, ("source", "campaign"))
        if match is None:
            return None
        return Trigger(TriggerKind.LEAD_CREATED, match=MappingProxyType(match), line=line)
    if kind == "event":
        spec = reader.mapping(value, inner, ("name", "match"), ("name",))
        if spec is None:
            return None
        name = reader.string(spec.get("name"), at(inner, "name"), "an event name")
        match = reader.text_mapping(spec.get("match"), at(inner, "match"))
        return None if name is None else _event_trigger(name, match or {}, line)
    if kind == "stage_reached":
        found = reader.scalar_text(value, inner, "a stage")
        stage = _stage_name(reader, found, inner) if found is not None else None
        return None if stage is None else Trigger(TriggerKind.STAGE_REACHED, stage=stage, line=line)
    tag = reader.string(value, inner, "a tag")
    return None if tag is None else Trigger(TriggerKind.TAG_ADDED, tag=tag, line=line)


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


def _audience(reader: Reader, node: Located | None) -> Audience:
    where = "entry.audience"
    found = reader.mapping(node, where, _AUDIENCE_KEYS)
    if found is None:
        return Audience()
    countries: set[str] | None = None
    country_items = reader.strings(found.get("country"), at(where, "country"))
    if country_items is not None:
        countries = set()
        for item in country_items:
            if _COUNTRY.fullmatch(item.text.strip()):
                countries.add(item.text.strip().upper())
            else:
                reader.expected(
                    item, at(where, "country"), 'a two-letter country code such as "FR"'
                )
    size = found.get("company_size")
    titles = reader.strings(found.get("job_title_contains"), at(where, "job_title_contains"))
    fields: dict[str, frozenset[str]] = {}
    fields_node = reader.mapping(found.get("fields"), at(where, "fields"), None)
    if fields_node is not None:
        for key, value in fields_node.entries.items():
            values = _texts(reader, value, at(at(where, "fields"), key))
            if values is not None:
                fields[key] = values
    return Audience(
        countries=None if countries is None else frozenset(countries),
        company_size=_int_range(reader, size, at(where, "company_size")),
        job_title_contains=tuple(item.text.strip() for item in titles or ()),
        sources=_texts(reader, found.get("source"), at(where, "source")),
        locales=_texts(reader, found.get("locale"), at(where, "locale")),
        stages=_stages(reader, found.get("stage"), at(where, "stage")),
        fields=MappingProxyType(fields),
    )


def _reentry(reader: Reader, node: Located | None) -> Reentry:
    where = "entry.reentry"
    what = 'never, or {after: a duration such as "90 days"}'
    if node is None:
        return Reentry()
    if isinstance(node, LocatedScalar) and node.text == "never":
        return Reentry()
    if not isinstance(node, LocatedMapping):
        reader.expected(node, where, what)
        return Reentry()
    found = reader.mapping(node, where, ("after",), ("after",), what=what)
    cooldown = _duration(reader, found.get("after") if found else None, at(where, "after"))
    return Reentry(allowed=True, cooldown=cooldown)


def _exit(reader: Reader, node: Located | None) -> ExitRules:
    found = reader.mapping(node, "exit", ("events", "stages"))
    if found is None:
        return ExitRules()
    return ExitRules(
        events=_texts(reader, found.get("events"), "exit.events") or frozenset(),
        stages=_stages(reader, found.get("stages"), "exit.stages") or frozenset(),
    )


def _send_window(reader: Reader, node: Located | None) -> SendWindow | None:
    found = reader.mapping(node, "send_window", ("days", "hours", "holidays"), ("days", "hours"))
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


# --- steps ------------------------------------------------------------------------


MAX_STEPS = 500  # a nurture journey has tens; more is a generated file gone wrong


def _steps(
    reader: Reader,
    node: Located | None,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> tuple[Step, ...] | None:
    if node is None:
        return None
    if not isinstance(node, LocatedList):
        reader.expected(node, "steps", "a list of steps")
        return None
    if not node.items:
        reader.problem(node.line, "steps", "expected at least one step")
        return None
    if len(node.items) > MAX_STEPS:
        reader.problem(
            node.line,
            "steps",
            f"{len(node.items):,} of them: a sequence has at most {MAX_STEPS}; split the"
            " journey into sequences that hand over to each other",
        )
        return None
    ctx = _Context(reader)
    ids = _step_ids(reader, node)
    parsed: list[Step | None] = [
        _step(ctx, item, index, ids[index - 1], locales, templates)
        for index, item in enumerate(node.items, start=1)
    ]
    kinds = {step.id: step for step in parsed if step is not None}
    for target in ctx.targets:
        if target.step != END and target.step not in ids:
            reader.problem(
                target.line, target.where, f'no step has the id "{target.step}" (nor is it "end")'
            )
    for ref in ctx.email_refs:
        step = kinds.get(ref.step)
        if ref.step not in ids:
            reader.problem(ref.line, ref.where, f'no step has the id "{ref.step}"')
        elif step is not None and not isinstance(step, EmailStep):
            reader.problem(
                ref.line, ref.where, f'"{ref.step}" is not an email step; expected an email step id'
            )
    if any(step is None for step in parsed):
        return None
    steps = _resolve(ctx, [step for step in parsed if step is not None])
    _check_flow(reader, steps)
    return steps


def _step_ids(reader: Reader, node: LocatedList) -> list[str]:
    """Each step's id (given, or `step-<n>`); bad and repeated ids are reported here."""
    ids: list[str] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(node.items, start=1):
        step_id = f"step-{index}"
        id_node = item.get("id") if isinstance(item, LocatedMapping) else None
        where = at(at("steps", index), "id")
        what = 'a step id made of a-z, 0-9, "_", "-" and "?"'
        given = reader.string(id_node, where, what)
        if id_node is not None and given is not None:
            if not _STEP_ID.fullmatch(given):
                reader.expected(id_node, where, what)
            elif given == END:
                reader.problem(id_node.line, where, '"end" is reserved: it ends the sequence')
            step_id = given
        if step_id in first_line:
            reader.problem(
                item.line,
                where,
                f'duplicate step id "{step_id}" (first used at line {first_line[step_id]})',
            )
        else:
            first_line[step_id] = item.line
        ids.append(step_id)
    return ids


def _step(
    ctx: _Context,
    node: Located,
    index: int,
    step_id: str,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> Step | None:
    reader = ctx.reader
    where = at("steps", index)
    what = "a step with one of email, wait, branch"
    item = reader.mapping(node, where, ("id", "next", *_STEP_KINDS), what=what)
    if item is None:
        return None
    present = [kind for kind in _STEP_KINDS if kind in item]
    if len(present) != 1:
        found = " and ".join(present) if present else "none"
        reader.problem(
            item.line, where, f"expected exactly one of email, wait, branch; found {found}"
        )
        return None
    kind = present[0]
    body = item.get(kind)
    assert body is not None
    if kind == "branch":
        if "next" in item:
            reader.problem(
                item.key_lines["next"],
                at(where, "next"),
                "a branch step has no next; its rules' goto and else say where to go",
            )
        return _branch(ctx, body, at(where, kind), step_id, item.line)
    explicit_next = ctx.target(item.get("next"), at(where, "next"))
    if explicit_next is not None:
        ctx.explicit_next[index] = explicit_next
    if kind == "email":
        return _email(ctx, body, at(where, kind), step_id, item.line, locales, templates)
    return _wait(ctx, body, at(where, kind), step_id, item.line, index)


def _email(
    ctx: _Context,
    node: Located,
    where: str,
    step_id: str,
    line: int,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> EmailStep | None:
    reader = ctx.reader
    found = reader.mapping(
        node, where, ("template", "kind", "subject"), ("template", "kind"), "a mapping"
    )
    if found is None:
        return None
    template_what = "a template folder name (letters, digits, '-', '_', '.')"
    template = reader.string(found.get("template"), at(where, "template"), template_what)
    template_node = found.get("template")
    bad_name = template is not None and (not _TEMPLATE.fullmatch(template) or ".." in template)
    if bad_name and template_node is not None:
        reader.expected(template_node, at(where, "template"), template_what)
        template = None
    kind = reader.string(found.get("kind"), at(where, "kind"), "a content kind")
    kind_node = found.get("kind")
    if kind is not None and kind_node is not None and kind not in CONTENT_KINDS:
        reader.problem(
            kind_node.line,
            at(where, "kind"),
            f'unknown content kind "{kind}"; expected one of {", ".join(CONTENT_KINDS)}',
        )
        kind = None
    subject = reader.string(found.get("subject"), at(where, "subject"), "a subject line")
    if template is None or kind is None or ("subject" in found and subject is None):
        return None
    if templates is not None:
        for message in templates.check(template, locales, subject):
            reader.problem(line, where, message)
    return EmailStep(id=step_id, template=template, kind=kind, subject=subject, line=line)


def _wait(
    ctx: _Context, node: Located, where: str, step_id: str, line: int, index: int
) -> WaitStep | None:
    reader = ctx.reader
    if isinstance(node, LocatedScalar):
        duration = _duration(reader, node, where)
        return None if duration is None else WaitStep(id=step_id, duration=duration, line=line)
    what = 'a duration such as "2 days", or {until: an event, timeout: a duration}'
    found = reader.mapping(
        node, where, ("until", "match", "timeout", "then"), ("until", "timeout"), what
    )
    if found is None:
        return None
    event = reader.string(found.get("until"), at(where, "until"), "an event name")
    match = reader.text_mapping(found.get("match"), at(where, "match"))
    timeout = _duration(reader, found.get("timeout"), at(where, "timeout"))
    then = ctx.target(found.get("then"), at(where, "then"))
    if then is not None:
        ctx.explicit_then[index] = then
    if event is None or timeout is None or ("match" in found and match is None):
        return None
    return WaitStep(
        id=step_id,
        until_event=event,
        until_match=MappingProxyType(match or {}),
        timeout=timeout,
        line=line,
    )


def _branch(ctx: _Context, node: Located, where: str, step_id: str, line: int) -> BranchStep | None:
    reader = ctx.reader
    if not isinstance(node, LocatedList):
        reader.expected(node, where, "a list of rules ({if: ..., goto: ...} and a last else)")
        return None
    rules: list[BranchRule] = []
    otherwise: str | None = END
    ok = True
    for index, item in enumerate(node.items, start=1):
        rule_where = at(where, index)
        if isinstance(item, LocatedMapping) and "else" in item:
            found = reader.mapping(item, rule_where, ("else",))
            last = index == len(node.items)
            if not last:
                reader.problem(item.line, rule_where, "else must be the last rule of a branch")
            otherwise = ctx.target(item.get("else"), at(rule_where, "else"))
            ok = ok and found is not None and last and otherwise is not None
            continue
        found = reader.mapping(
            item, rule_where, ("if", "goto"), ("if", "goto"), "a rule {if: ..., goto: ...}"
        )
        if found is None:
            ok = False
            continue
        condition = _condition(ctx, found.get("if"), at(rule_where, "if"))
        goto = ctx.target(found.get("goto"), at(rule_where, "goto"))
        if condition is None or goto is None:
            ok = False
            continue
        rules.append(BranchRule(condition, goto, found.line))
    if not node.items or not any(
        isinstance(item, LocatedMapping) and "if" in item for item in node.items
    ):
        reader.problem(node.line, where, "expected at least one rule {if: ..., goto: ...}")
        return None
    if not ok or otherwise is None:
        return None
    return BranchStep(id=step_id, rules=tuple(rules), otherwise=otherwise, line=line)


def _condition(ctx: _Context, node: Located | None, where: str) -> Condition | None:
    reader = ctx.reader
    names = ", ".join(_CONDITIONS)
    found = reader.mapping(node, where, _CONDITIONS, what=f"a condition, one of {names}")
    if found is None:
        return None
    if len(found) != 1:
        reader.problem(found.line, where, f"expected exactly one condition, one of {names}")
        return None
    name = next(iter(found))
    if name not in _CONDITIONS:
        return None  # already reported as an unknown key
    value = found.get(name)
    inner = at(where, name)
    if name in ("clicked", "not_clicked", "opened"):
        step = reader.string(value, inner, "an email step id")
        if step is None or value is None:
            return None
        ctx.email_refs.append(_Target(inner, value.line, step))
        return _EMAIL_CONDITIONS[name](step)
    if name == "score_at_least":
        points = reader.integer(value, inner, "a number of points")
        return None if points is None else ScoreAtLeast(points)
    if name == "stage":
        stages = _stages(reader, value, inner)
        return None if stages is None else StageIs(stages)
    if name == "event":
        event = reader.string(value, inner, "an event name")
        return None if event is None else EventSeen(event)
    return _field_condition(reader, value, inner)


def _field_condition(reader: Reader, node: Located | None, where: str) -> FieldMatches | None:
    what = "{a_field: [values]} or {a_field: {min: .., max: ..}}"
    found = reader.mapping(node, where, None, what=what)
    if found is None:
        return None
    if len(found) != 1:
        reader.problem(found.line, where, f"expected exactly one field, as in {what}")
        return None
    name = next(iter(found))
    value = found.get(name)
    if isinstance(value, LocatedMapping):
        rng = _int_range(reader, value, at(where, name))
        return None if rng is None else FieldMatches(name, range=rng)
    values = _texts(reader, value, at(where, name))
    return None if values is None else FieldMatches(name, values=values)


# --- flow: next, cycles, reachability ----------------------------------------------


def _resolve(ctx: _Context, steps: list[Step]) -> tuple[Step, ...]:
    """Fill in each step's `next` (explicit, else the following step, else end)."""
    resolved: list[Step] = []
    for index, step in enumerate(steps, start=1):
        following = steps[index].id if index < len(steps) else END
        if isinstance(step, BranchStep):
            resolved.append(step)
            continue
        next_step = ctx.explicit_next.get(index, following)
        if isinstance(step, WaitStep) and step.until_event is not None:
            on_event = ctx.explicit_then.get(index, next_step)
            resolved.append(dataclasses.replace(step, next=next_step, on_event=on_event))
        else:
            resolved.append(dataclasses.replace(step, next=next_step))
    return tuple(resolved)


def _successors(step: Step) -> list[str]:
    if isinstance(step, BranchStep):
        return [rule.goto for rule in step.rules] + [step.otherwise]
    if isinstance(step, WaitStep) and step.on_event is not None:
        return [step.next, step.on_event]
    return [step.next]


def _check_flow(reader: Reader, steps: tuple[Step, ...]) -> None:
    by_id = {step.id: step for step in steps}
    where = {step.id: at("steps", index) for index, step in enumerate(steps, start=1)}
    edges = {step.id: [t for t in _successors(step) if t in by_id] for step in steps}

    reached = _reachable(edges, steps[0].id) | {steps[0].id}
    for step in steps:
        if step.id not in reached:
            reader.problem(
                step.line,
                where[step.id],
                f'step "{step.id}" can never be reached: no next, goto, then or else leads to it',
            )

    for component in _cycles(edges, [step.id for step in steps]):
        for step_id in component:
            if isinstance(by_id[step_id], EmailStep):
                loop = " -> ".join(_cycle_path(edges, step_id, component))
                reader.problem(
                    by_id[step_id].line,
                    where[step_id],
                    f'email step "{step_id}" is on a cycle ({loop});'
                    " an email is sent at most once per enrollment",
                )

    # A loop with no wait would spin forever in one tick: look for cycles once
    # the wait steps are taken out of the graph.
    moving = {
        step_id: [t for t in targets if not isinstance(by_id[t], WaitStep)]
        for step_id, targets in edges.items()
        if not isinstance(by_id[step_id], WaitStep)
    }
    for component in _cycles(moving, [step.id for step in steps if step.id in moving]):
        start = component[0]
        loop = " -> ".join(_cycle_path(moving, start, component))
        reader.problem(by_id[start].line, where[start], f"cycle without a wait: {loop}")


def _reachable(edges: Mapping[str, list[str]], start: str) -> set[str]:
    """Steps reachable from `start` through at least one edge."""
    seen: set[str] = set()
    todo = list(edges.get(start, ()))
    while todo:
        step_id = todo.pop()
        if step_id not in seen:
            seen.add(step_id)
            todo.extend(edges.get(step_id, ()))
    return seen


def _cycles(edges: Mapping[str, list[str]], order: list[str]) -> list[list[str]]:
    """The groups of steps that reach each other (each holds a cycle), in file order."""
    reach = {step_id: _reachable(edges, step_id) for step_id in order}
    groups: list[list[str]] = []
    placed: set[str] = set()
    for step_id in order:
        if step_id in placed or step_id not in reach[step_id]:
            continue
        group = [other for other in order if other in reach[step_id] and step_id in reach[other]]
        placed.update(group)
        groups.append(group)
    return groups


def _cycle_path(edges: Mapping[str, list[str]], start: str, group: list[str]) -> list[str]:
    """A shortest cycle from `start` back to itself within `group`, as a list of ids."""
    members = set(group)
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following: list[str] = []
        for step_id in frontier:
            for target in edges.get(step_id, ()):
                if target == start:
                    path = [step_id]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [*reversed(path), start]
                if target in members and target not in came_from:
                    came_from[target] = step_id
                    following.append(target)
        frontier = following
    return [start, start]  # pragma: no cover - a group always holds a cycle
