"""Values written the same way in sequence and rules files: time zones, durations,
stages, ranges of numbers, lists of texts and audiences, each read and checked."""

from __future__ import annotations

import re
from types import MappingProxyType
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nurture.core.sequence_language import AUDIENCE, COUNTRY, RANGE
from nurture.core.sequences import STAGES, Audience, Duration, IntRange
from nurture.core.timing import is_valid_timezone, parse_duration
from nurture.core.yamlsource import Located, LocatedScalar, Reader, at

_COUNTRY = re.compile(COUNTRY)
_FIELDS = AUDIENCE.nested("fields")


def timezone(reader: Reader, node: Located | None, where: str) -> str | None:
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


def duration(reader: Reader, node: Located | None, where: str) -> Duration | None:
    text = reader.string(node, where, 'a duration such as "2 days"')
    if text is None or node is None:
        return None
    try:
        return parse_duration(text)
    except ValueError as exc:
        reader.problem(node.line, where, str(exc))
        return None


def stages(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where, "a stage or a list of stages")
    if items is None:
        return None
    found: set[str] = set()
    for item in items:
        stage = stage_name(reader, item, where)
        if stage is not None:
            found.add(stage)
    return frozenset(found)


def stage_name(reader: Reader, item: LocatedScalar, where: str) -> str | None:
    stage = item.text.strip()
    if stage in STAGES:
        return stage
    reader.problem(item.line, where, f'unknown stage "{stage}"; stages are {", ".join(STAGES)}')
    return None


def int_range(reader: Reader, node: Located | None, where: str) -> IntRange | None:
    found = reader.keyed(node, where, RANGE)
    if found is None:
        return None
    low = reader.field(found, RANGE, "min", where)
    high = reader.field(found, RANGE, "max", where)
    if "min" not in found and "max" not in found:
        reader.problem(found.line, where, "expected min, max or both")
    if low is not None and high is not None and low > high:
        reader.problem(found.line, where, f"min ({low}) is greater than max ({high})")
    return IntRange(low, high)


def texts(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where)
    return None if items is None else frozenset(item.text.strip() for item in items)


def audience(reader: Reader, node: Located | None, where: str = "entry.audience") -> Audience:
    found = reader.keyed(node, where, AUDIENCE)
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
    titles = reader.field(found, AUDIENCE, "job_title_contains", where)
    fields: dict[str, frozenset[str]] = {}
    fields_node = reader.keyed(found.get("fields"), at(where, "fields"), _FIELDS)
    if fields_node is not None:
        for key, value in fields_node.entries.items():
            values = texts(reader, value, at(at(where, "fields"), key))
            if values is not None:
                fields[key] = values
    return Audience(
        countries=None if countries is None else frozenset(countries),
        company_size=int_range(reader, size, at(where, "company_size")),
        job_title_contains=tuple(item.text.strip() for item in titles or ()),
        sources=texts(reader, found.get("source"), at(where, "source")),
        locales=texts(reader, found.get("locale"), at(where, "locale")),
        stages=stages(reader, found.get("stage"), at(where, "stage")),
        fields=MappingProxyType(fields),
    )
