"""Turn broadcast files (YAML) into `Broadcast` values, or into located problems.

Written like the sequence parser and with its readers: every mistake is reported as
`file:line: field.path: what was expected`, and a broken file never stops its
neighbours loading. The language is described in docs/broadcasts.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path, PurePath
from types import MappingProxyType

from nurture.core.broadcast_language import AT, BROADCAST, SEGMENT, SEND
from nurture.core.broadcasts import PREFIX, WEEKDAYS, Broadcast, Schedule, Segment
from nurture.core.problems import Problem
from nurture.core.sequence_language import AUDIENCE, EMAIL, LOCALE, SEQUENCE_ID, TEMPLATE_NAME

# A send window is read as in a sequence file, by the same reader.
from nurture.core.sequence_parser import _send_window, content_version
from nurture.core.sequence_steps import TemplateChecker
from nurture.core.sequence_values import audience, duration, int_range, texts, timezone
from nurture.core.sequences import EmailStep
from nurture.core.yamlsource import (
    Located,
    LocatedMapping,
    LocatedScalar,
    Reader,
    at,
    load,
    read_text,
)

_ID = re.compile(SEQUENCE_ID)
_LOCALE = re.compile(LOCALE)
_ONCE = re.compile(r"\s*(\d{4}-\d{2}-\d{2})[ T](\d{1,2}:\d{2})\s*")
_CLOCK = re.compile(r"\s*(\d{1,2}):(\d{2})\s*")


@dataclass(frozen=True)
class ParsedBroadcast:
    broadcast: Broadcast | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class Broadcasts:
    """Every valid broadcast of a folder by id, and every problem found in it."""

    broadcasts: Mapping[str, Broadcast]
    problems: tuple[Problem, ...] = ()


def parse_broadcast(
    text: str, path: str, templates: TemplateChecker | None = None
) -> ParsedBroadcast:
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; a broadcast needs at least name, send and email")
    top = reader.keyed(root, "", BROADCAST)
    if top is None:
        return ParsedBroadcast(None, _sorted(reader.problems))
    broadcast_id = _id(reader, top, path)
    name = reader.string(top.get("name"), "name")
    enabled = reader.boolean(top.get("enabled"), "enabled")
    priority = reader.integer(top.get("priority"), "priority")
    locales = _locales(reader, top.get("locales"))
    zone = timezone(reader, top.get("timezone"), "timezone")
    segment = _segment(reader, top.get("segment"))
    schedule = _schedule(reader, top.get("send"))
    window = _send_window(reader, top.get("send_window"))
    email = _email(reader, top.get("email"), locales, templates)
    if reader.problems or None in (broadcast_id, name, schedule, email):
        return ParsedBroadcast(None, _sorted(reader.problems))
    assert broadcast_id is not None and name is not None
    assert schedule is not None and email is not None
    return ParsedBroadcast(
        Broadcast(
            id=broadcast_id,
            name=name,
            path=path,
            version=content_version(text),
            source=text,
            segment=segment,
            schedule=schedule,
            email=email,
            window=window,
            timezone=zone or "UTC",
            priority=0 if priority is None else priority,
            locales=locales,
            enabled=True if enabled is None else enabled,
            line=top.key_lines.get("send", 1),
        )
    )


def load_broadcasts(
    directory: Path,
    templates: TemplateChecker | None = None,
    sequence_ids: frozenset[str] = frozenset(),
) -> Broadcasts:
    """Every `*.yaml` / `*.yml` file of `directory`; no folder: no broadcasts.

    `sequence_ids` are the live sequences: a broadcast is sent as the sequence
    `broadcast-<id>`, which must not be one of them."""
    if not directory.is_dir():
        return Broadcasts(MappingProxyType({}))
    found: dict[str, Broadcast] = {}
    problems: list[Problem] = []
    files = sorted(
        entry
        for entry in directory.iterdir()
        if entry.suffix in (".yaml", ".yml") and not entry.name.startswith(".") and entry.is_file()
    )
    for file in files:
        text, problem = read_text(file)
        if text is None:
            problems.extend([problem] if problem is not None else [])
            continue
        result = parse_broadcast(text, str(file), templates)
        problems.extend(result.problems)
        broadcast = result.broadcast
        if broadcast is None:
            continue
        first = found.get(broadcast.id)
        if first is not None:
            problems.append(
                Problem(str(file), 1, f'id: "{broadcast.id}" is already the id of {first.path}')
            )
        elif broadcast.sequence_id in sequence_ids:
            problems.append(
                Problem(
                    str(file),
                    1,
                    f'id: it is sent as the sequence "{broadcast.sequence_id}", which is the id'
                    " of a sequence file; rename one of them",
                )
            )
        else:
            found[broadcast.id] = broadcast
    return Broadcasts(MappingProxyType(found), tuple(problems))


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda problem: problem.line))


def _id(reader: Reader, top: LocatedMapping, path: str) -> str | None:
    node = top.get("id")
    if node is None:
        stem = PurePath(path).stem
        if _ID.fullmatch(stem):
            return stem
        reader.problem(1, "id", f'the file name gives the id "{stem}", which is not made of'
                       ' a-z, 0-9 and "-"; rename the file or give an id')  # fmt: skip
        return None
    return reader.field(top, BROADCAST, "id", "")


def _locales(reader: Reader, node: Located | None) -> tuple[str, ...]:
    found: list[str] = []
    for item in reader.strings(node, "locales") or ():
        if not _LOCALE.fullmatch(item.text.strip()):
            reader.expected(item, "locales", 'a language code such as "en", "fr" or "pt-BR"')
        elif item.text.strip() not in found:
            found.append(item.text.strip())
    return tuple(found) or ("en",)


def _segment(reader: Reader, node: Located | None) -> Segment:
    found = reader.keyed(node, "segment", SEGMENT)
    if found is None:
        return Segment()
    # The sequence audience's own reader, on the keys the two languages share.
    shared = LocatedMapping(
        MappingProxyType({k: v for k, v in found.entries.items() if k in AUDIENCE.keys}),
        MappingProxyType({k: v for k, v in found.key_lines.items() if k in AUDIENCE.keys}),
        found.line,
    )
    admitted = audience(reader, shared, "segment")
    active = None
    spent = duration(reader, found.get("active_within"), "segment.active_within")
    if spent is not None:
        if spent.unit in ("days", "weeks"):
            active = spent.amount * (7 if spent.unit == "weeks" else 1)
        else:
            line = found.key_lines["active_within"]
            reader.problem(
                line,
                "segment.active_within",
                f'expected days or weeks such as "90 days", not "{spent}"',
            )
    return Segment(
        audience=admitted,
        tags=texts(reader, found.get("tags"), "segment.tags"),
        score=int_range(reader, found.get("score"), "segment.score"),
        active_within_days=active,
    )


def _schedule(reader: Reader, node: Located | None) -> Schedule | None:
    where = "send"
    found = reader.keyed(node, where, SEND)
    if found is None:
        return None
    at_node = found.get("at")
    written = reader.string(at_node, at(where, "at"), AT.what)
    every = reader.field(found, SEND, "every", where)
    starting = _date(reader, found.get("starting"), at(where, "starting"))
    until = _date(reader, found.get("until"), at(where, "until"))
    if written is None or at_node is None or ("every" in found and every is None):
        return None
    if every is None:
        for key in ("day", "starting", "until"):
            if key in found:
                reader.problem(found.key_lines[key], at(where, key), "only with every")
        once = _ONCE.fullmatch(written)
        moment = _moment(once.group(1), once.group(2)) if once else None
        if moment is None:
            reader.expected(
                at_node,
                at(where, "at"),
                'a date and a local time such as "2026-12-10 09:00" (or every: ...)',
            )
            return None
        return Schedule(at=moment.time(), once=moment)
    clock = _CLOCK.fullmatch(written)
    hour_minute = (int(clock.group(1)), int(clock.group(2))) if clock else None
    if hour_minute is None or hour_minute[0] > 23 or hour_minute[1] > 59:
        reader.expected(at_node, at(where, "at"), f'a local time such as "09:00" (every {every})')
        return None
    day = _day(reader, found, every)
    if every != "day" and day is None and "day" not in found:
        reader.problem(found.line, where, f"every {every} needs a day")
    if starting and until and until < starting:
        reader.problem(found.key_lines["until"], at(where, "until"), "is before starting")
    return Schedule(at=time(*hour_minute), every=every, day=day, starting=starting, until=until)


def _day(reader: Reader, found: LocatedMapping, every: str) -> int | None:
    node = found.get("day")
    if node is None:
        return None
    where = "send.day"
    if every == "day":
        reader.problem(node.line, where, "not with every: day")
        return None
    value = node.value if isinstance(node, LocatedScalar) else None
    if every == "month":
        if type(value) is int and 1 <= value <= 31:
            return value
        reader.expected(node, where, "a day of the month, 1 to 31")
        return None
    text = node.text.strip().lower()[:3] if isinstance(node, LocatedScalar) else ""
    if text in WEEKDAYS:
        return WEEKDAYS.index(text)
    reader.expected(node, where, "a day of the week such as mon")
    return None


def _date(reader: Reader, node: Located | None, where: str) -> date | None:
    text = reader.string(node, where, 'a date such as "2027-01-01"')
    if text is None or node is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        reader.expected(node, where, 'a date such as "2027-01-01"')
        return None


def _moment(day: str, clock: str) -> datetime | None:
    try:
        return datetime.fromisoformat(f"{day} {clock.zfill(5)}")  # a wall time: naive
    except ValueError:
        return None


def _email(
    reader: Reader,
    node: Located | None,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> EmailStep | None:
    found = reader.keyed(node, "email", EMAIL)
    if found is None:
        return None
    template = reader.field(found, EMAIL, "template", "email")
    kind = reader.field(found, EMAIL, "kind", "email")
    subject = reader.field(found, EMAIL, "subject", "email")
    if template is not None and ".." in template:
        node = found.get("template")
        assert node is not None
        reader.expected(node, "email.template", TEMPLATE_NAME.what)
        return None
    if template is None or kind is None or ("subject" in found and subject is None):
        return None
    if templates is not None:
        for message in templates.check(template, locales, subject):
            reader.problem(found.line, "email", message)
    return EmailStep(id="email", template=template, kind=kind, subject=subject, line=found.line)


__all__ = ["PREFIX", "Broadcasts", "ParsedBroadcast", "load_broadcasts", "parse_broadcast"]
