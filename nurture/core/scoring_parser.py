"""Turn the scoring file (YAML) into a `ScoringModel`, or into located problems.

The file is described in docs/scoring.md. Like sequence files, every mistake is
reported as `file:line: field.path: what was expected`, and a file with any
problem yields no model.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path, PurePath
from types import MappingProxyType

from nurture.core.accounts import DEFAULT_EVENTS, DEFAULT_WINDOW, AccountRule
from nurture.core.problems import Problem
from nurture.core.scoring import (
    CLASSIFICATIONS,
    BehaviourRule,
    Cap,
    FitCondition,
    FitRule,
    Grades,
    ScoringModel,
    Thresholds,
    describe_event_rule,
    grade_at_least,
    span,
)
from nurture.core.scoring_language import (
    ACCOUNT,
    BEHAVIOUR,
    BEHAVIOUR_RULE,
    CAP,
    DECISIVE,
    EVENT_NAME,
    EVENT_NAMES,
    FIT,
    FIT_CONDITION,
    FIT_RULE,
    GRADE,
    GRADES_SHAPE,
    LIFECYCLE,
    RANGE,
    RULE_ID,
    SCORING,
    THRESHOLDS,
)
from nurture.core.sequence_language import COUNTRY
from nurture.core.sequences import STAGES, Duration, FieldMatches, IntRange
from nurture.core.timing import parse_duration
from nurture.core.yamlsource import (
    Located,
    LocatedList,
    LocatedMapping,
    Reader,
    at,
    load,
    read_text,
)

SCORING_FILE = PurePath("rules", "scoring.yaml")
"""Where the scoring file lives, relative to the sequences folder."""


@dataclass(frozen=True)
class ScoringResult:
    """The file's outcome: a model, or the problems that prevent it."""

    model: ScoringModel | None
    problems: tuple[Problem, ...] = ()


_EVENT_NAME = re.compile(EVENT_NAME.pattern or "")
_RULE_ID = re.compile(RULE_ID)
_COUNTRY = re.compile(COUNTRY)
_EVENT_WHAT = EVENT_NAME.what
# A rule id is stored with every score change: keep made-up ones short.
_MAX_ID = 100


def parse_scoring(text: str, path: str) -> ScoringResult:
    """Parse the scoring file's text; `path` is used in problems."""
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; it needs fit, behaviour and lifecycle")
    top = reader.keyed(root, "", SCORING)
    if top is None:
        return ScoringResult(None, _sorted(reader.problems))
    fit = _fit(reader, top.get("fit"))
    behaviour = _behaviour(reader, top.get("behaviour"))
    lifecycle = _lifecycle(reader, top.get("lifecycle"))
    if reader.problems or fit is None or behaviour is None or lifecycle is None:
        return ScoringResult(None, _sorted(reader.problems))
    fit_rules, grades = fit
    half_life, rules = behaviour
    mql, promote, decisive, decisive_grade, account = lifecycle
    model = ScoringModel(
        fit_rules=fit_rules,
        grades=grades,
        behaviour_rules=rules,
        mql=mql,
        promote=promote,
        half_life=half_life,
        decisive=decisive,
        decisive_grade=decisive_grade,
        account=account,
        version=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        path=path,
    )
    return ScoringResult(model, ())


def load_scoring(path: Path) -> ScoringResult:
    """Read and parse the scoring file at `path`."""
    text, problem = read_text(path)
    if text is None:
        return ScoringResult(None, (problem,) if problem is not None else ())
    return parse_scoring(text, str(path))


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda problem: problem.line))


# --- shared pieces -----------------------------------------------------------------


def _rule_list(reader: Reader, node: Located | None, where: str) -> LocatedList | None:
    if node is None:
        return None
    if not isinstance(node, LocatedList):
        reader.expected(node, where, "a list of rules")
        return None
    if not node.items:
        reader.problem(node.line, where, "expected at least one rule")
        return None
    return node


def _points(reader: Reader, node: Located | None, where: str) -> int | None:
    points = reader.integer(node, where, "a whole number of points, such as 10 or -20")
    if points == 0 and node is not None:
        reader.problem(node.line, where, "0 points changes nothing; remove the rule or give points")
        return None
    return points


def _duration(reader: Reader, node: Located | None, where: str) -> Duration | None:
    text = reader.string(node, where, 'a duration such as "30 days"')
    if text is None or node is None:
        return None
    try:
        duration = parse_duration(text)
        span(duration)
    except ValueError as exc:
        reader.problem(node.line, where, str(exc))
        return None
    return duration


def _grade(reader: Reader, node: Located | None, where: str) -> str | None:
    return reader.text(node, where, GRADE)


def _folded(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where)
    return None if items is None else frozenset(item.text.strip().casefold() for item in items)


def _int_range(reader: Reader, node: Located | None, where: str) -> IntRange | None:
    found = reader.keyed(node, where, RANGE)
    if found is None:
        return None
    low = reader.integer(found.get("min"), at(where, "min"))
    high = reader.integer(found.get("max"), at(where, "max"))
    if "min" not in found and "max" not in found:
        reader.problem(found.line, where, "expected min, max or both")
        return None
    if low is not None and high is not None and low > high:
        reader.problem(found.line, where, f"min ({low}) is greater than max ({high})")
        return None
    if (low is None and "min" in found) or (high is None and "max" in found):
        return None
    return IntRange(low, high)


# --- fit -----------------------------------------------------------------------------


def _fit(reader: Reader, node: Located | None) -> tuple[tuple[FitRule, ...], Grades] | None:
    found = reader.keyed(node, "fit", FIT)
    if found is None:
        return None
    rules: list[FitRule] = []
    ok = True
    listed = _rule_list(reader, found.get("rules"), "fit.rules")
    for index, item in enumerate(listed.items if listed else (), start=1):
        rule = _fit_rule(reader, item, at("fit.rules", index))
        ok = ok and rule is not None
        if rule is not None:
            rules.append(rule)
    grades = _grades(reader, found.get("grades"))
    if listed is None or not ok or grades is None:
        return None
    return tuple(rules), grades


def _fit_rule(reader: Reader, node: Located, where: str) -> FitRule | None:
    found = reader.keyed(node, where, FIT_RULE)
    if found is None:
        return None
    condition = _fit_condition(reader, found.get("if"), at(where, "if"))
    points = _points(reader, found.get("points"), at(where, "points"))
    reason = reader.field(found, FIT_RULE, "reason", where)
    if condition is None or points is None or ("reason" in found and reason is None):
        return None
    return FitRule(condition, points, reason or condition.describe(), found.line)


def _fit_condition(reader: Reader, node: Located | None, where: str) -> FitCondition | None:
    what = f"a condition on the lead, with any of {', '.join(FIT_CONDITION.keys)}"
    found = reader.mapping(node, where, tuple(FIT_CONDITION.keys), what=what)
    if found is None:
        return None
    if not found:
        reader.problem(found.line, where, f"expected {what}")
        return None
    before = len(reader.problems)
    countries = _countries(reader, found.get("country"), at(where, "country"))
    size = _int_range(reader, found.get("company_size"), at(where, "company_size"))
    words = reader.field(found, FIT_CONDITION, "job_title_contains", where)
    stages = _stages(reader, found.get("stage"), at(where, "stage"))
    condition = FitCondition(
        countries=countries,
        company_size=size,
        job_title_contains=tuple(w.text.strip().casefold() for w in words or ()),
        sources=_folded(reader, found.get("source"), at(where, "source")),
        campaigns=_folded(reader, found.get("campaign"), at(where, "campaign")),
        locales=_folded(reader, found.get("locale"), at(where, "locale")),
        stages=stages,
        tags=_folded(reader, found.get("tags"), at(where, "tags")),
        fields=_fields(reader, found.get("fields"), at(where, "fields")),
    )
    return None if len(reader.problems) > before else condition


def _countries(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where, "a country code or a list of them")
    if items is None:
        return None
    for item in items:
        if not _COUNTRY.fullmatch(item.text.strip()):
            reader.expected(item, where, 'a two-letter country code such as "FR"')
    return frozenset(item.text.strip().upper() for item in items)


def _stages(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where, "a stage or a list of stages")
    if items is None:
        return None
    for item in items:
        if item.text.strip() not in STAGES:
            reader.problem(
                item.line,
                where,
                f'unknown stage "{item.text.strip()}"; stages are {", ".join(STAGES)}',
            )
    return frozenset(item.text.strip() for item in items)


def _fields(reader: Reader, node: Located | None, where: str) -> tuple[FieldMatches, ...]:
    shape = FIT_CONDITION.nested("fields")
    what = shape.what
    found = reader.keyed(node, where, shape)
    if found is None:
        return ()
    if not found:
        reader.problem(found.line, where, f"expected {what}")
    tests: list[FieldMatches] = []
    for name, value in found.entries.items():
        inner = at(where, name)
        if isinstance(value, LocatedMapping):
            rng = _int_range(reader, value, inner)
            if rng is not None:
                tests.append(FieldMatches(name, range=rng))
            continue
        values = _folded(reader, value, inner)
        if values is not None:
            tests.append(FieldMatches(name, values=values))
    return tuple(tests)


def _grades(reader: Reader, node: Located | None) -> Grades | None:
    found = reader.keyed(node, "fit.grades", GRADES_SHAPE)
    if found is None:
        return None
    if "D" in found:
        reader.problem(
            found.key_lines["D"], "fit.grades.D", "D needs no threshold: it is every lead below C"
        )
    a, b, c = (reader.field(found, GRADES_SHAPE, grade, "fit.grades") for grade in "ABC")
    if a is None or b is None or c is None:
        return None
    if not a > b > c:
        reader.problem(
            found.line,
            "fit.grades",
            f"A ({a}) must need more points than B ({b}), and B more than C ({c})",
        )
        return None
    return Grades(a, b, c)


# --- behaviour -------------------------------------------------------------------------


def _behaviour(
    reader: Reader, node: Located | None
) -> tuple[Duration | None, tuple[BehaviourRule, ...]] | None:
    found = reader.keyed(node, "behaviour", BEHAVIOUR)
    if found is None:
        return None
    half_life = _duration(reader, found.get("half_life"), "behaviour.half_life")
    listed = _rule_list(reader, found.get("rules"), "behaviour.rules")
    if listed is None:
        return None
    rules: list[BehaviourRule | None] = [
        _behaviour_rule(reader, item, at("behaviour.rules", index))
        for index, item in enumerate(listed.items, start=1)
    ]
    if any(rule is None for rule in rules):
        return None
    parsed = [rule for rule in rules if rule is not None]
    _check_rules(reader, parsed)
    return half_life, tuple(parsed)


def _behaviour_rule(reader: Reader, node: Located, where: str) -> BehaviourRule | None:
    found = reader.keyed(node, where, BEHAVIOUR_RULE)
    if found is None:
        return None
    before = len(reader.problems)
    event = _event_name(reader, found.get("on"), at(where, "on"))
    where_node = found.get("where")
    conditions = _where(reader, where_node, at(where, "where"))
    points = _points(reader, found.get("points"), at(where, "points"))
    cap = _cap(reader, found.get("cap"), at(where, "cap"), points)
    count = _count(reader, found.get("count"), at(where, "count"))
    reason = reader.field(found, BEHAVIOUR_RULE, "reason", where)
    rule_id = _given_id(reader, found.get("id"), at(where, "id"))
    if len(reader.problems) > before or event is None or points is None:
        return None
    where_values = conditions or {}
    return BehaviourRule(
        id=rule_id or _made_id(event, where_values),
        event=event,
        points=points,
        reason=reason or describe_event_rule(event, where_values),
        where=MappingProxyType(where_values),
        cap=cap,
        count=count or frozenset({"human"}),
        line=found.line,
    )


def _event_name(reader: Reader, node: Located | None, where: str) -> str | None:
    name = reader.string(node, where, _EVENT_WHAT)
    if name is not None and node is not None and not _EVENT_NAME.fullmatch(name):
        reader.expected(node, where, _EVENT_WHAT)
        return None
    return name


def _where(reader: Reader, node: Located | None, where: str) -> dict[str, frozenset[str]] | None:
    shape = BEHAVIOUR_RULE.nested("where")
    what = shape.what
    found = reader.keyed(node, where, shape)
    if found is None:
        return None
    if not found:
        reader.problem(found.line, where, f"expected {what}")
        return None
    values: dict[str, frozenset[str]] = {}
    for key, value in found.entries.items():
        allowed = _folded(reader, value, at(where, key))
        if allowed is not None:
            values[key] = allowed
    return values


def _cap(reader: Reader, node: Located | None, where: str, points: int | None) -> Cap | None:
    found = reader.keyed(node, where, CAP)
    if found is None:
        return None
    limit = reader.field(found, CAP, "points", where)
    per = _duration(reader, found.get("per"), at(where, "per"))
    if points is not None and points < 0:
        reader.problem(found.line, where, "only rules that give points have a cap")
        return None
    if limit is not None and limit <= 0:
        reader.problem(found.line, at(where, "points"), f"a cap of {limit} points allows nothing")
        return None
    if limit is not None and points is not None and limit < points:
        reader.problem(
            found.line,
            at(where, "points"),
            f"the cap ({limit}) is below the rule's points ({points}): the rule could never"
            " give them",
        )
        return None
    return None if limit is None or per is None else Cap(limit, per)


def _count(reader: Reader, node: Located | None, where: str) -> frozenset[str] | None:
    items = reader.strings(node, where, "classifications, such as [human, unknown]")
    if items is None:
        return None
    for item in items:
        if item.text.strip() not in CLASSIFICATIONS:
            reader.problem(
                item.line,
                where,
                f'unknown classification "{item.text.strip()}"; expected any of'
                f" {', '.join(CLASSIFICATIONS)}",
            )
    return frozenset(item.text.strip() for item in items)


def _given_id(reader: Reader, node: Located | None, where: str) -> str | None:
    what = 'a rule id made of a-z, 0-9, "_" and "-"'
    rule_id = reader.string(node, where, what)
    bad = rule_id is not None and (not _RULE_ID.fullmatch(rule_id) or len(rule_id) > _MAX_ID)
    if bad and node is not None:
        reader.expected(node, where, f"{what}, at most {_MAX_ID} characters")
        return None
    return rule_id


def _made_id(event: str, where: dict[str, frozenset[str]]) -> str:
    """A rule's id when the file gives none: its event and its conditions."""
    if not where:
        return event
    conditions = ";".join(f"{key}={','.join(sorted(values))}" for key, values in where.items())
    made = f"{event}[{conditions}]"
    if len(made) <= _MAX_ID:
        return made
    digest = hashlib.sha256(conditions.encode("utf-8")).hexdigest()[:8]
    return f"{event}[{digest}]"


def _check_rules(reader: Reader, rules: list[BehaviourRule]) -> None:
    """Ids must be unique, and every rule must be able to match an event.

    The first matching rule wins, so a rule is dead when an earlier one on the
    same event asks no more of the event and counts at least the same people.
    """
    seen: dict[str, BehaviourRule] = {}
    for index, rule in enumerate(rules, start=1):
        where = at("behaviour.rules", index)
        first = seen.get(rule.id)
        if first is not None:
            reader.problem(
                rule.line,
                where,
                f'this rule and the rule at line {first.line} are both named "{rule.id}";'
                " give one of them an id",
            )
        else:
            seen[rule.id] = rule
        for earlier in rules[: index - 1]:
            if _covers(earlier, rule):
                reader.problem(
                    rule.line,
                    where,
                    f"this rule never applies: the rule at line {earlier.line} comes first and"
                    f" takes every {rule.event} event it would match; put the more specific"
                    " rule first",
                )
                break


def _covers(earlier: BehaviourRule, later: BehaviourRule) -> bool:
    if earlier.event != later.event or not later.count <= earlier.count:
        return False
    return all(
        key in later.where and later.where[key] <= allowed for key, allowed in earlier.where.items()
    )


# --- lifecycle ---------------------------------------------------------------------------


def _lifecycle(
    reader: Reader, node: Located | None
) -> tuple[Thresholds, Thresholds, tuple[str, ...], str, AccountRule | None] | None:
    found = reader.keyed(node, "lifecycle", LIFECYCLE)
    if found is None:
        return None
    mql = _thresholds(reader, found.get("mql"), "lifecycle.mql")
    promote = _thresholds(reader, found.get("promote"), "lifecycle.promote")
    decisive = _decisive(reader, found.get("decisive"))
    before = len(reader.problems)
    account = _account(reader, found.get("account"))
    if mql is None or promote is None or decisive is None or len(reader.problems) > before:
        return None
    if promote.score < mql.score or not grade_at_least(promote.grade, mql.grade):
        promote_node = found.get("promote")
        reader.problem(
            promote_node.line if promote_node is not None else found.line,
            "lifecycle.promote",
            f"promote ({promote.describe()}) must ask at least as much as mql ({mql.describe()})",
        )
        return None
    return mql, promote, *decisive, account


def _account(reader: Reader, node: Located | None) -> AccountRule | None:
    """`lifecycle.account`: None when absent (no account rule) or wrong (a problem)."""
    where = "lifecycle.account"
    found = reader.keyed(node, where, ACCOUNT)
    if found is None:
        return None
    count_node = found.get("engaged_contacts")
    count = reader.integer(count_node, at(where, "engaged_contacts"), "a number of contacts")
    if count is not None and count < 2 and count_node is not None:
        reader.problem(
            count_node.line,
            at(where, "engaged_contacts"),
            f"expected 2 contacts or more ({count} is a single lead's matter: use promote)",
        )
        return None
    within = _duration(reader, found.get("within"), at(where, "within"))
    events: tuple[str, ...] = DEFAULT_EVENTS
    if "on" in found:
        items = reader.strings(found.get("on"), at(where, "on"), EVENT_NAMES.what)
        names = [_event_name(reader, item, at(where, "on")) for item in items or ()]
        if items is None or None in names:
            return None
        events = tuple(dict.fromkeys(name for name in names if name is not None))
    grade = _grade(reader, found.get("grade"), at(where, "grade"))
    if count is None or ("within" in found and within is None):
        return None
    if "grade" in found and grade is None:
        return None
    return AccountRule(count, within or DEFAULT_WINDOW, events, grade or "D")


def _thresholds(reader: Reader, node: Located | None, where: str) -> Thresholds | None:
    found = reader.keyed(node, where, THRESHOLDS)
    if found is None:
        return None
    score = reader.integer(found.get("score"), at(where, "score"), "a whole number of points")
    grade = _grade(reader, found.get("grade"), at(where, "grade"))
    score_node = found.get("score")
    if score is not None and score <= 0 and score_node is not None:
        reader.problem(score_node.line, at(where, "score"), "expected a score above 0")
        return None
    if score is None or ("grade" in found and grade is None):
        return None
    return Thresholds(score, grade or "D")


def _decisive(reader: Reader, node: Located | None) -> tuple[tuple[str, ...], str] | None:
    if node is None:
        return (), "C"
    where = "lifecycle.decisive"
    events_node: Located | None = node
    decisive_grade: str | None = "C"
    if isinstance(node, LocatedMapping):
        found = reader.keyed(node, where, DECISIVE)
        assert found is not None
        events_node = found.get("events")
        where = at(where, "events")
        if "grade" in found:
            decisive_grade = _grade(reader, found.get("grade"), "lifecycle.decisive.grade")
    items = reader.strings(events_node, where, EVENT_NAMES.what)
    if items is None or decisive_grade is None:
        return None
    names: list[str] = []
    for item in items:
        name = _event_name(reader, item, where)
        if name is not None and name not in names:
            names.append(name)
    if len(names) < len(items):
        return None
    return tuple(names), decisive_grade
