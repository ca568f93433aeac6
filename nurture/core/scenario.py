"""Scenario files (tests/sequences/*.yaml): a lead, what it does and when, and the
emails it must receive, parsed into a `Scenario` value or into located problems.

The language is described in docs/sequences.md ("Testing a sequence"); its shape is
`LANGUAGE`, which `nurture schema scenario` publishes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

from nurture.core.problems import Problem
from nurture.core.profile import LeadProfile
from nurture.core.sequence_language import EVENT_SHORTHANDS
from nurture.core.sequence_values import timezone
from nurture.core.sequences import STAGES
from nurture.core.shapes import Boolean, Integer, Items, Keys, Language, Ref, Text, Texts
from nurture.core.timing import parse_duration
from nurture.core.yamlsource import Located, LocatedMapping, Reader, at, load

_WHEN = (
    'a time: "+3d", "+36h" or "+90m" after the start, or a local date and time such as'
    ' "2026-03-04 10:00" (an offset such as "+01:00" makes it absolute)'
)
_WITHIN = 'a tolerance such as "30 minutes", "2 hours" or "1 day"'
_STEP = Text('an email step id of the sequence, such as "welcome"', pattern=r"[a-z0-9_?-]+")

_LEAD = Keys(
    {
        "email": Text("an email address"),
        "first_name": Text(),
        "last_name": Text(),
        "company": Text(),
        "job_title": Text(),
        "company_size": Integer("a number of employees", minimum=0),
        "country": Text('a two-letter country code such as "FR"', pattern=r"[A-Za-z]{2}"),
        "timezone": Text('a time zone name such as "Europe/Paris"'),
        "locale": Text('a language code such as "fr"'),
        "source": Text(),
        "campaign": Text(),
        "stage": Text("a lifecycle stage", enum=STAGES, noun="stage"),
        "score": Integer("a number of points"),
        "tags": Texts(),
        "fields": Keys(values=Text(), what="custom fields, {name: value}"),
        "consent": Boolean(description="false: the lead withdrew its consent to be mailed"),
        "unsubscribed": Boolean(description="true: the lead unsubscribed"),
    },
    what="the lead: its fields, country, time zone, locale, stage, score, consent",
)
_EVENT = Keys(
    {
        "at": Text(_WHEN),
        "click": Text(
            _STEP.what + "; the lead clicks its link (when it arrives, without at)",
            pattern=_STEP.pattern,
        ),
        "open": Text(_STEP.what + "; the lead opens it", pattern=_STEP.pattern),
        "event": Text("an event name, such as demo_requested"),
        "properties": Keys(values=Text(), what="the event's properties, {name: value}"),
        "form_submitted": Text("a form id: the lead submits that form"),
        "webinar_attended": Text("a webinar id: the lead attends it"),
        "page_visited": Text("a page path: the lead visits it"),
        "stage": Text("a lifecycle stage", enum=STAGES, noun="stage"),
        "score": Integer("the lead's new score"),
    },
    what="an event: at, and one of click, open, event, form_submitted, stage, score",
)
_EMAIL = Keys(
    {
        "step": _STEP,
        "at": Text(_WHEN),
        "on": Text('a local date such as "2026-03-04"'),
        "within": Text(_WITHIN),
        "template": Text("the template the email uses"),
    },
    required=("step",),
    what="an expected email: {step, at or on, within, template}",
)
_LEAVES = Keys(
    {
        "reason": Text('why it leaves: "completed", "goal: demo_requested", "stage: sql"...'),
        "at": Text(_WHEN),
        "on": Text('a local date such as "2026-03-04"'),
        "within": Text(_WITHIN),
    },
    what="how the lead leaves the sequence: {reason, at or on, within}",
)
_STAGE = Keys(
    {
        "stage": Text("a lifecycle stage", enum=STAGES, noun="stage"),
        "at": Text(_WHEN),
        "on": Text('a local date such as "2026-03-04"'),
        "within": Text(_WITHIN),
    },
    required=("stage",),
    what="a stage scoring moves the lead to: {stage, at or on, within}",
)
_EXPECT = Keys(
    {
        "emails": Items(Ref("email"), "a list of expected emails", description="in order"),
        "stages": Items(
            _STAGE,
            "a list of expected stages",
            description="every stage scoring moves the lead to (mql, sql), in order",
        ),
        "leaves": _LEAVES,
        "kept_out": Text("why the lead gets nothing (part of the reason, such as audience)"),
    },
    what="what must happen: emails (every one, in order), leaves, or kept_out",
)
_ROOT = Keys(
    {
        "scenario": Text("what the scenario shows, in a sentence"),
        "sequence": Text("the id of the sequence tested", pattern=r"[a-z0-9-]+"),
        "start": Text("when the lead enters the sequence: " + _WHEN.removeprefix("a time: ")),
        "days": Integer("how many days of the journey to play (90 unless given)", minimum=1),
        "lead": _LEAD,
        "events": Items(Ref("event"), "a list of events"),
        "expect": _EXPECT,
    },
    required=("scenario", "sequence", "start", "lead", "expect"),
    what="a mapping with scenario, sequence, start, lead and expect",
)

LANGUAGE = Language(
    name="scenario",
    title="nurture scenario file",
    description="A lead, what it does and when, and the emails a sequence must send it.",
    root=_ROOT,
    definitions=MappingProxyType({"event": _EVENT, "email": _EMAIL}),
)

_ACTIONS = tuple(key for key in _EVENT.keys if key not in ("at", "properties"))
# The event a shorthand stands for, and the property its value fills.
SHORTHANDS = EVENT_SHORTHANDS
DEFAULT_DAYS = 90


@dataclass(frozen=True)
class When:
    """A time as written: relative to the start, or a local (or offset) date and time,
    or a local date (`whole_day`)."""

    text: str
    offset: timedelta | None = None
    moment: datetime | None = None  # naive: the lead's local time; aware: absolute
    whole_day: bool = False


@dataclass(frozen=True)
class ScenarioEvent:
    line: int
    kind: str  # one of _ACTIONS
    value: str
    at: When | None
    properties: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExpectedEmail:
    line: int
    step: str
    at: When | None
    within: timedelta
    template: str | None = None


@dataclass(frozen=True)
class ExpectedStage:
    line: int
    stage: str
    at: When | None
    within: timedelta


@dataclass(frozen=True)
class ExpectedExit:
    line: int
    reason: str | None
    at: When | None
    within: timedelta


@dataclass(frozen=True)
class Scenario:
    path: str
    line: int
    name: str
    sequence: str
    sequence_line: int
    expect_line: int  # where unexpected emails are reported
    start: When
    days: int
    lead: LeadProfile
    mail_refusal: str | None
    events: tuple[ScenarioEvent, ...]
    emails: tuple[ExpectedEmail, ...]
    leaves: ExpectedExit | None
    kept_out: str | None
    stages: tuple[ExpectedStage, ...] | None = None  # None: not checked


def parse_scenario(text: str, path: str) -> tuple[Scenario | None, tuple[Problem, ...]]:
    """One scenario file's value, or every problem that prevents it."""
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; " + _ROOT.what)
    top = reader.keyed(root, "", _ROOT)
    if top is None:
        return None, tuple(reader.problems)
    name = reader.field(top, _ROOT, "scenario", "")
    sequence = reader.field(top, _ROOT, "sequence", "")
    start = _when(reader, top, _ROOT, "start", "", relative=False)
    days = reader.field(top, _ROOT, "days", "")
    lead, refusal = _lead(reader, top.get("lead"))
    events = _events(reader, top.get("events"))
    emails, leaves, kept, stages = _expect(reader, top.get("expect"))
    if reader.problems or name is None or sequence is None or start is None or lead is None:
        return None, tuple(sorted(reader.problems, key=lambda p: p.line))
    return Scenario(
        path=path,
        line=top.line,
        name=name,
        sequence=sequence,
        sequence_line=top.key_lines["sequence"],
        expect_line=top.key_lines["expect"],
        start=start,
        days=days or DEFAULT_DAYS,
        lead=lead,
        mail_refusal=refusal,
        events=events,
        emails=emails,
        leaves=leaves,
        kept_out=kept,
        stages=stages,
    ), ()


def _when(
    reader: Reader, found: LocatedMapping, shape: Keys, key: str, where: str, relative: bool = True
) -> When | None:
    text = reader.field(found, shape, key, where)
    if text is None:
        return None
    node = found.get(key)
    assert node is not None
    if relative and text.startswith("+"):
        units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
        amount, unit = text[1:-1], text[-1:]
        if amount.isdigit() and unit in units:
            return When(text, offset=timedelta(**{units[unit]: int(amount)}))
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is not None:
            return When(text, moment=moment, whole_day=key == "on")
    what = _WHEN if key != "on" else 'a local date such as "2026-03-04"'
    if not relative:
        what = what.removeprefix('a time: "+3d", "+36h" or "+90m" after the start, or ')
    reader.expected(node, at(where, key), what)
    return None


def _within(reader: Reader, found: LocatedMapping, shape: Keys, where: str) -> timedelta:
    text = reader.field(found, shape, "within", where)
    if text is None:
        return timedelta(0)
    node = found.get("within")
    assert node is not None
    try:
        duration = parse_duration(text)
    except ValueError:
        duration = None
    if duration is None or duration.unit == "business_days":
        reader.expected(node, at(where, "within"), _WITHIN)
        return timedelta(0)
    return timedelta(**{duration.unit: duration.amount})


def _lead(reader: Reader, node: Located | None) -> tuple[LeadProfile | None, str | None]:
    found = reader.keyed(node, "lead", _LEAD)
    if found is None:
        return None, None
    values = {
        key: reader.field(found, _LEAD, key, "lead")
        for key in _LEAD.keys
        if key not in ("tags", "fields", "consent", "unsubscribed") and key in found
    }
    if values.get("timezone") is not None:
        # An unknown zone would silently fall back to the country's: say so instead.
        values["timezone"] = timezone(reader, found.get("timezone"), "lead.timezone")
    if values.get("country"):
        values["country"] = values["country"].upper()
    tags = reader.field(found, _LEAD, "tags", "lead") or ()
    fields = reader.text_mapping(found.get("fields"), "lead.fields") or {}
    refusal = None
    if reader.field(found, _LEAD, "consent", "lead") is False:
        refusal = "consent withdrawn"
    if reader.field(found, _LEAD, "unsubscribed", "lead"):
        refusal = "unsubscribed"
    values = {key: value for key, value in values.items() if value is not None}
    values.setdefault("email", "lead@example.com")
    profile = LeadProfile(
        **values,
        tags=frozenset(item.text.strip() for item in tags),
        fields=MappingProxyType(fields),
    )
    return profile, refusal


def _events(reader: Reader, node: Located | None) -> tuple[ScenarioEvent, ...]:
    found: list[ScenarioEvent] = []
    items = reader.items(node, "events", "a list of events")
    for index, item in enumerate(items, start=1):
        where = at("events", index)
        event = reader.keyed(item, where, _EVENT)
        if event is None:
            continue
        kinds = [key for key in _ACTIONS if key in event]
        if len(kinds) != 1:
            shown = " and ".join(kinds) if kinds else "none"
            reader.problem(
                event.line, where, f"expected one of {', '.join(_ACTIONS)}; found {shown}"
            )
            continue
        kind = kinds[0]
        if "properties" in event and kind != "event":
            reader.problem(event.key_lines["properties"], at(where, "properties"), "only for event")
        when = _when(reader, event, _EVENT, "at", where)
        if "at" not in event and kind not in ("click", "open"):
            reader.problem(event.line, where, 'missing required key "at"')
        value = reader.field(event, _EVENT, kind, where)
        properties = reader.text_mapping(event.get("properties"), at(where, "properties")) or {}
        if value is not None:
            found.append(
                ScenarioEvent(event.line, kind, str(value), when, MappingProxyType(properties))
            )
    return tuple(found)


def _expect(
    reader: Reader, node: Located | None
) -> tuple[
    tuple[ExpectedEmail, ...], ExpectedExit | None, str | None, tuple[ExpectedStage, ...] | None
]:
    found = reader.keyed(node, "expect", _EXPECT)
    if found is None:
        return (), None, None, None
    emails: list[ExpectedEmail] = []
    items = reader.items(found.get("emails"), "expect.emails", "a list of expected emails")
    for index, item in enumerate(items, start=1):
        where = at("expect.emails", index)
        email = reader.keyed(item, where, _EMAIL)
        if email is None:
            continue
        step = reader.field(email, _EMAIL, "step", where)
        when = _moment(reader, email, _EMAIL, where)
        within = _within(reader, email, _EMAIL, where)
        template = reader.field(email, _EMAIL, "template", where)
        if step is not None:
            emails.append(ExpectedEmail(email.line, step, when, within, template))
    leaves = None
    left = reader.keyed(found.get("leaves"), "expect.leaves", _LEAVES)
    if left is not None:
        reason = reader.field(left, _LEAVES, "reason", "expect.leaves")
        when = _moment(reader, left, _LEAVES, "expect.leaves")
        leaves = ExpectedExit(
            left.line, reason, when, _within(reader, left, _LEAVES, "expect.leaves")
        )
    stages: list[ExpectedStage] | None = None
    if "stages" in found:
        stages = []
        items = reader.items(found.get("stages"), "expect.stages", "a list of expected stages")
        for index, item in enumerate(items, start=1):
            where = at("expect.stages", index)
            entry = reader.keyed(item, where, _STAGE)
            if entry is None:
                continue
            stage = reader.field(entry, _STAGE, "stage", where)
            when = _moment(reader, entry, _STAGE, where)
            within = _within(reader, entry, _STAGE, where)
            if stage is not None:
                stages.append(ExpectedStage(entry.line, stage, when, within))
    kept = reader.field(found, _EXPECT, "kept_out", "expect")
    if kept is not None and (emails or leaves is not None):
        reader.problem(
            found.line, "expect", "kept_out: the lead gets nothing; give no emails nor leaves"
        )
    return tuple(emails), leaves, kept, None if stages is None else tuple(stages)


def _moment(reader: Reader, found: LocatedMapping, shape: Keys, where: str) -> When | None:
    if "at" in found and "on" in found:
        reader.problem(found.key_lines["on"], at(where, "on"), "give at or on, not both")
        return None
    if "on" in found:
        return _when(reader, found, shape, "on", where, relative=False)
    return _when(reader, found, shape, "at", where)
