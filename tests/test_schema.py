"""`nurture schema`: the JSON Schema of each file language, made from the shapes the
parsers check files with. The published files are the generated ones; every shipped
file validates; and a file the parser refuses for a wrong key or type, the schema
refuses too (and what the parser accepts, the schema accepts)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from nurture.cli import cli
from nurture.core.broadcast_parser import parse_broadcast
from nurture.core.qualification_parser import parse_qualification
from nurture.core.routing_parser import parse_routing
from nurture.core.scenario import parse_scenario
from nurture.core.schema import dumps, json_schema, languages
from nurture.core.scoring_parser import parse_scoring
from nurture.core.sequence_parser import parse_sequence
from nurture.core.yamlsource import Located, LocatedList, LocatedMapping, load

ROOT = Path(__file__).resolve().parent.parent
PUBLISHED = ROOT / "docs" / "schemas"


def _refusals(parse: Callable[[str, str], Any]) -> Callable[[str, str], list[str]]:
    def problems(text: str, path: str) -> list[str]:
        result = parse(text, path)
        found = result[1] if isinstance(result, tuple) else result.problems
        return [str(problem) for problem in found]

    return problems


PARSERS = {
    "sequence": _refusals(parse_sequence),
    "scoring": _refusals(parse_scoring),
    "routing": _refusals(parse_routing),
    "qualification": _refusals(parse_qualification),
    "scenario": _refusals(parse_scenario),
    "broadcast": _refusals(parse_broadcast),
}
SHIPPED = {
    "sequence": sorted((ROOT / "sequences").glob("*.yaml")),
    "scoring": [ROOT / "sequences" / "rules" / "scoring.yaml"],
    "routing": [ROOT / "sequences" / "rules" / "routing.yaml"],
    "qualification": [ROOT / "sequences" / "rules" / "qualification.yaml"],
    "scenario": sorted((ROOT / "tests" / "sequences").glob("*.yaml")),
    "broadcast": sorted((ROOT / "sequences" / "broadcasts").glob("*.yaml")),
}
SHIPPED_FILES = [(name, path) for name, paths in SHIPPED.items() for path in paths]
IDS = [f"{name}:{path.name}" for name, path in SHIPPED_FILES]


def plain(node: Located) -> Any:
    """A file's data as the parser reads it (YAML 1.1 words and dates stay texts), which
    is also how an editor's YAML 1.2 language server reads them."""
    if isinstance(node, LocatedMapping):
        return {key: plain(value) for key, value in node.entries.items()}
    if isinstance(node, LocatedList):
        return [plain(item) for item in node.items]
    return node.value


def data_of(text: str) -> Any:
    root, problems = load(text, "x.yaml")
    assert not problems and root is not None
    return plain(root)


@functools.cache
def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json_schema(languages()[name])
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_published_schemas_are_the_generated_ones() -> None:
    published = sorted(path.stem for path in PUBLISHED.glob("*.json"))
    assert published == sorted(languages()), "run: nurture schema --output docs/schemas"
    for name, language in languages().items():
        assert (PUBLISHED / f"{name}.json").read_text(encoding="utf-8") == dumps(
            json_schema(language)
        ), f"docs/schemas/{name}.json is stale: run nurture schema --output docs/schemas"


def test_the_command_prints_one_schema_and_writes_them_all(tmp_path: Path) -> None:
    printed = CliRunner().invoke(cli, ["schema", "sequence"])
    assert printed.exit_code == 0, printed.output
    schema = json.loads(printed.output)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    kinds = schema["$defs"]["step"]["properties"]["email"]["properties"]["kind"]["enum"]
    assert "testimonial" in kinds
    written = CliRunner().invoke(cli, ["schema", "--output", str(tmp_path)])
    assert written.exit_code == 0, written.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "broadcast.json",
        "qualification.json",
        "routing.json",
        "scenario.json",
        "scoring.json",
        "sequence.json",
    ]
    refused = CliRunner().invoke(cli, ["schema"])
    assert refused.exit_code == 2 and "--output" in refused.output


@pytest.mark.parametrize(("name", "path"), SHIPPED_FILES, ids=IDS)
def test_every_shipped_file_validates_against_its_schema(name: str, path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert PARSERS[name](text, str(path)) == []
    errors = [error.message for error in validator(name).iter_errors(data_of(text))]
    assert errors == []


def _mappings(data: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(data, dict):
        yield trail
        for key, value in data.items():
            yield from _mappings(value, (*trail, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _mappings(item, (*trail, index))


def _scalars(data: Any, trail: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(data, dict):
        for key, value in data.items():
            yield from _scalars(value, (*trail, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            yield from _scalars(item, (*trail, index))
    else:
        yield trail


def _one_per_place(trails: Iterator[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """One trail per place in the language: the 2nd item of a list is like the 1st."""
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for trail in trails:
        seen.setdefault(tuple("*" if isinstance(k, int) else k for k in trail), trail)
    return list(seen.values())


def _changed(data: Any, trail: tuple[Any, ...], change: Callable[[Any], Any]) -> Any:
    if not trail:
        return change(data)
    copy = dict(data) if isinstance(data, dict) else list(data)
    copy[trail[0]] = _changed(data[trail[0]], trail[1:], change)  # type: ignore[index]
    return copy


def _agree(name: str, path: Path, data: Any) -> str | None:
    """None when the parser and the schema agree on `data`; else what each said."""
    text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    refused = PARSERS[name](text, str(path))
    errors = [e.message for e in validator(name).iter_errors(data_of(text))]
    if bool(refused) == bool(errors):
        return None
    return f"parser: {refused or 'accepts'}; schema: {errors or 'accepts'}"


@pytest.mark.parametrize(("name", "path"), SHIPPED_FILES, ids=IDS)
def test_an_unknown_key_anywhere_is_refused_by_both_or_by_neither(name: str, path: Path) -> None:
    data = data_of(path.read_text(encoding="utf-8"))
    disagreements = []
    for trail in _one_per_place(_mappings(data)):
        mutated = _changed(data, trail, lambda found: {**found, "colour": "blue"})
        said = _agree(name, path, mutated)
        if said is not None:
            disagreements.append(f"{'.'.join(map(str, trail)) or 'top'}: {said}")
    assert disagreements == []


@pytest.mark.parametrize(("name", "path"), SHIPPED_FILES, ids=IDS)
def test_a_value_of_the_wrong_type_anywhere_is_refused_by_both(name: str, path: Path) -> None:
    data = data_of(path.read_text(encoding="utf-8"))
    disagreements = []
    for trail in _one_per_place(_scalars(data)):
        for wrong in ({"colour": "blue"}, [{"colour": "blue"}]):
            said = _agree(name, path, _changed(data, trail, lambda _, wrong=wrong: wrong))
            if said is not None:
                disagreements.append(f"{'.'.join(map(str, trail))} = {wrong}: {said}")
    assert disagreements == []


@pytest.mark.parametrize(
    ("name", "text", "problem"),
    [
        ("sequence", "name: x\nentry: {triggers: [lead_created]}\npriority: high\n"
         "steps: [{email: {template: a, kind: guide}}]\n", "priority: expected a whole number"),
        ("sequence", "name: x\nentry: {triggers: [lead_created]}\n"
         "steps: [{email: {template: a, kind: brochure}}]\n", 'unknown content kind "brochure"'),
        ("sequence", "name: x\nentry: {triggers: [{stage_reached: hot}]}\n"
         "steps: [{wait: 2 days}]\n", 'unknown stage "hot"'),
        ("sequence", "name: x\nentry: {triggers: [lead_created]}\n"
         "steps: [{email: {template: a, kind: guide}, wait: 2 days}]\n", "exactly one of email"),
        ("scoring", "fit: {rules: [{if: {country: FR}, points: 5}], grades: {A: 3, B: 2, C: 1}}\n"
         "behaviour: {rules: [{on: demo_requested, points: 5, count: [robots]}]}\n"
         "lifecycle: {mql: {score: 10}, promote: {score: 20, grade: E}}\n", 'unknown grade "E"'),
        ("routing", "reps: [{name: A, email: a@x.example, timezone: UTC, capacity: many}]\n"
         "rules: [{name: all, assign: round_robin}]\n", "capacity: expected a whole number"),
        ("qualification", "b2b_only: maybe\n", "b2b_only: expected true or false"),
        ("scenario", "scenario: x\nsequence: s\nstart: 2026-03-02 10:00\nlead: {stage: hot}\n"
         "expect: {}\n", 'unknown stage "hot"'),
    ],
)  # fmt: skip
def test_a_file_the_parser_refuses_the_schema_refuses(name: str, text: str, problem: str) -> None:
    refused = PARSERS[name](text, f"{name}.yaml")
    assert any(problem in said for said in refused), refused
    assert list(validator(name).iter_errors(data_of(text))) != []


def _blocks(path: Path) -> list[tuple[int, str]]:
    """The YAML blocks of a documentation page, with the line each starts at."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[tuple[int, str]] = []
    start = None
    for number, line in enumerate(lines, start=1):
        if line.strip() == "```yaml":
            start = number + 1
        elif line.strip() == "```" and start is not None:
            found.append((start, "\n".join(lines[start - 1 : number - 1]) + "\n"))
            start = None
    return found


def test_every_documented_sequence_the_parser_accepts_the_schema_accepts() -> None:
    checked = 0
    for page in (ROOT / "README.md", ROOT / "docs" / "sequences.md"):
        for line, block in _blocks(page):
            if "steps:" not in block or PARSERS["sequence"](block, "example.yaml"):
                continue
            errors = [e.message for e in validator("sequence").iter_errors(data_of(block))]
            assert errors == [], f"{page.name}:{line}"
            checked += 1
    assert checked >= 3
