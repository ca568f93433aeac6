"""Turn the routing file (YAML) into a `RoutingModel`, or into located problems.

The file is described in docs/crm.md. Conditions (`if`) are written exactly like a
sequence's `entry.audience` and are read by the sequence parser's own code, so the
two languages cannot drift apart. Every mistake is reported as
`file:line: field.path: what was expected`; a file with any problem yields no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

from nurture.core.problems import Problem
from nurture.core.routing import RoutingModel, RoutingRule, SalesRep
from nurture.core.sequence_language import AUDIENCE
from nurture.core.sequence_values import audience as _audience
from nurture.core.sequence_values import timezone as _timezone
from nurture.core.sequences import Audience
from nurture.core.shapes import Integer, Items, Keys, Language, Text, Texts
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

ROUTING_FILE = Path("rules") / "routing.yaml"  # inside the sequences folder
ROUND_ROBIN = "round_robin"

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")

# The file's shape: checked here, published by `nurture schema routing`.
_ASSIGN = Texts(what=f"{ROUND_ROBIN}, a rep's email or a list of reps' emails")
REP = Keys(
    MappingProxyType(
        {
            "name": Text("the rep's name"),
            "email": Text("the rep's email address"),
            "timezone": Text('a time zone name such as "Europe/Paris"'),
            "capacity": Integer("a whole number above 0", minimum=1),
            "phone": Text("a phone number"),
        }
    ),
    required=("name", "email", "timezone"),
)
RULE = Keys(
    MappingProxyType(
        {
            "name": Text("a rule name"),
            "if": AUDIENCE,
            "assign": _ASSIGN,
        }
    ),
    required=("name", "assign"),
)
ROUTING = Keys(
    MappingProxyType(
        {"reps": Items(REP, "a list of reps", min_items=1), "rules": Items(RULE, min_items=1)}
    ),
    required=("reps", "rules"),
    what="a mapping with reps and rules",
)
LANGUAGE = Language(
    name="routing",
    title="nurture routing file",
    description="The sales reps and which promoted lead goes to whom (first rule that matches).",
    root=ROUTING,
)
# Where the sequence parser says an audience problem is; rewritten to our own path.
_AUDIENCE_WHERE = "entry.audience"


@dataclass(frozen=True)
class RoutingResult:
    """The routing model, or the problems that prevent it.

    Both empty (`model is None`, no problems) means there is no routing file:
    promoted leads then get no rep.
    """

    model: RoutingModel | None
    problems: tuple[Problem, ...] = ()


def routing_path(sequences_dir: Path) -> Path:
    """Where the routing file lives: `rules/routing.yaml` in the sequences folder."""
    return sequences_dir / ROUTING_FILE


def load_routing(path: Path) -> RoutingResult:
    """Read and parse the routing file at `path`; a missing file is no routing at all."""
    if not path.exists():
        return RoutingResult(None)
    text, problem = read_text(path)
    if text is None:
        return RoutingResult(None, (problem,) if problem else ())
    return parse_routing(text, str(path))


def parse_routing(text: str, path: str) -> RoutingResult:
    """Parse the routing file's text; `path` is used in problems."""
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; it needs reps and rules")
    top = reader.keyed(root, "", ROUTING)
    if top is None:
        return RoutingResult(None, _sorted(reader.problems))
    roster = _reps(reader, top.get("reps"))
    rules = _rules(reader, top.get("rules"), roster, top.key_lines.get("rules", 1))
    if reader.problems or not roster.reps or not rules:
        return RoutingResult(None, _sorted(reader.problems))
    return RoutingResult(RoutingModel(reps=tuple(roster.reps), rules=tuple(rules), path=path))


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda problem: problem.line))


def _list(reader: Reader, node: Located | None, where: str, what: str) -> LocatedList | None:
    if node is None:
        return None
    if not isinstance(node, LocatedList):
        reader.expected(node, where, f"a list of {what}")
        return None
    if not node.items:
        reader.problem(node.line, where, f"expected at least one of {what}, got an empty list")
        return None
    return node


# --- reps --------------------------------------------------------------------------


@dataclass
class _Roster:
    """The valid reps, and every email the list mentions (valid or not).

    A rule naming a rep whose own entry is wrong gets no second message; nor does
    any rule when the list itself is missing or unreadable.
    """

    reps: list[SalesRep] = field(default_factory=list)
    mentioned: set[str] = field(default_factory=set)
    readable: bool = False


def _reps(reader: Reader, node: Located | None) -> _Roster:
    found = _list(reader, node, "reps", "reps")
    roster = _Roster(readable=found is not None)
    first_line: dict[str, int] = {}
    for index, item in enumerate(found.items if found else (), start=1):
        email_node = item.get("email") if isinstance(item, LocatedMapping) else None
        if isinstance(email_node, LocatedScalar):
            roster.mentioned.add(email_node.text.strip().casefold())
        rep = _rep(reader, item, at("reps", index))
        if rep is None:
            continue
        key = rep.email.casefold()
        if key in first_line:
            reader.problem(
                item.line,
                at(at("reps", index), "email"),
                f"{rep.email} is already a rep (line {first_line[key]}); list each rep once",
            )
            continue
        first_line[key] = item.line
        roster.reps.append(rep)
    return roster


def _rep(reader: Reader, node: Located, where: str) -> SalesRep | None:
    item = reader.keyed(node, where, REP)
    if item is None:
        return None
    name = reader.field(item, REP, "name", where)
    email = reader.field(item, REP, "email", where)
    email_node = item.get("email")
    if email is not None and email_node is not None and not _EMAIL.fullmatch(email):
        reader.expected(email_node, at(where, "email"), "an email address")
        email = None
    timezone = _timezone(reader, item.get("timezone"), at(where, "timezone"))
    capacity = 1
    capacity_node = item.get("capacity")
    if capacity_node is not None:
        given = reader.integer(capacity_node, at(where, "capacity"), "a whole number above 0")
        if given is not None and given <= 0:
            reader.problem(
                capacity_node.line,
                at(where, "capacity"),
                f"expected a whole number above 0, got {given};"
                " to give a rep no leads, leave them out of the rules",
            )
            return None
        capacity = capacity if given is None else given
    phone = reader.field(item, REP, "phone", where)
    if name is None or email is None or timezone is None:
        return None
    return SalesRep(name=name, email=email, timezone=timezone, capacity=capacity, phone=phone)


# --- rules -------------------------------------------------------------------------


def _rules(
    reader: Reader, node: Located | None, roster: _Roster, key_line: int
) -> list[RoutingRule]:
    found = _list(reader, node, "rules", "rules")
    rules: list[RoutingRule] = []
    first_line: dict[str, int] = {}
    catch_all: tuple[str, int] | None = None  # (name, line) of the first rule for everyone
    for index, item in enumerate(found.items if found else (), start=1):
        where = at("rules", index)
        rule = _rule(reader, item, where, roster)
        if rule is not None:
            if rule.name in first_line:
                reader.problem(
                    rule.line,
                    at(where, "name"),
                    f'duplicate rule name "{rule.name}"'
                    f" (first used at line {first_line[rule.name]})",
                )
            first_line.setdefault(rule.name, rule.line)
            rules.append(rule)
        if not isinstance(item, LocatedMapping):
            continue
        # Judged on what is written, so a broken `assign` does not also hide the rule.
        if catch_all is not None:
            reader.problem(
                item.line,
                where,
                f'this rule is never used: "{catch_all[0]}" (line {catch_all[1]})'
                " already takes every lead",
            )
        elif _for_everyone(item):
            name_node = item.get("name")
            shown = name_node.text if isinstance(name_node, LocatedScalar) else where
            catch_all = (shown, item.line)
    if found is not None and catch_all is None:
        # A promoted lead with no owner is the lead nobody calls back.
        reader.problem(
            key_line,
            "rules",
            "no rule takes every lead: end with a rule without `if`,"
            " such as {name: everyone else, assign: round_robin}",
        )
    return rules


def _for_everyone(item: LocatedMapping) -> bool:
    condition = item.get("if")
    return condition is None or (isinstance(condition, LocatedMapping) and not condition)


def _rule(reader: Reader, node: Located, where: str, roster: _Roster) -> RoutingRule | None:
    item = reader.keyed(node, where, RULE)
    if item is None:
        return None
    name = reader.field(item, RULE, "name", where)
    when = _condition(reader, item.get("if"), at(where, "if"))
    assigned = _assign(reader, item.get("assign"), at(where, "assign"), roster)
    if name is None or when is None or not assigned:
        return None
    return RoutingRule(name=name, reps=assigned, when=when, line=item.line)


def _condition(reader: Reader, node: Located | None, where: str) -> Audience | None:
    """The sequence audience language, with problems located at `where`."""
    if node is None:
        return Audience()
    inner = Reader(reader.path)
    audience = _audience(inner, node)
    for problem in inner.problems:
        reader.problems.append(
            replace(problem, message=problem.message.replace(_AUDIENCE_WHERE, where, 1))
        )
    return None if inner.problems else audience


def _assign(
    reader: Reader, node: Located | None, where: str, roster: _Roster
) -> tuple[SalesRep, ...]:
    if isinstance(node, LocatedScalar) and node.text.strip() == ROUND_ROBIN:
        return tuple(roster.reps)
    items = reader.strings(node, where, _ASSIGN.what)
    if items is None:
        return ()
    known = {rep.email.casefold(): rep for rep in roster.reps}
    chosen: list[SalesRep] = []
    for item in items:
        email = item.text.strip()
        rep = known.get(email.casefold())
        if rep in chosen:
            reader.problem(item.line, where, f"{email} is listed twice")
        elif rep is not None:
            chosen.append(rep)
        elif email == ROUND_ROBIN:
            reader.problem(item.line, where, f"{ROUND_ROBIN} stands alone, not in a list")
        elif roster.readable and email.casefold() not in roster.mentioned:
            reader.problem(item.line, where, f"{email} is not one of the reps listed under reps")
    return tuple(chosen) if len(chosen) == len(items) else ()
