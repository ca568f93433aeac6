"""Turn the qualification file (YAML) into a `QualificationModel`, or into located problems.

The file is described in docs/qualification.md. Conditions (`if`) are written
exactly like a sequence's `entry.audience` and are read by the sequence parser's
own code, so the languages cannot drift apart. Every mistake is reported as
`file:line: field.path: what was expected`; a file with any problem yields no model.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

from nurture.core.problems import Problem
from nurture.core.qualification import (
    BUILT_IN_CODES,
    CATEGORIES,
    FREE_MAIL_DOMAINS,
    NO_INTEREST,
    ROLE_ADDRESSES,
    RULE_CATEGORIES,
    SALES_READY,
    CategoryRule,
    Disqualifier,
    QualificationModel,
)
from nurture.core.scoring_language import GRADE
from nurture.core.sequence_language import AUDIENCE
from nurture.core.sequence_values import audience as _audience
from nurture.core.sequences import Audience
from nurture.core.shapes import Boolean, Either, Integer, Items, Keys, Language, Nothing, Text
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

QUALIFICATION_FILE = Path("rules") / "qualification.yaml"  # inside the sequences folder

# The file's shape: checked here, published by `nurture schema qualification`.
_DOMAINS = Items(Text("a domain such as asprova.example"), "a list, one domain per item", 1)
_REASON = Text("a sentence saying why")
DISQUALIFIER = Keys(
    MappingProxyType(
        {"code": Text("a reason code such as too_small"), "if": AUDIENCE, "reason": _REASON}
    ),
    required=("code", "if"),
)
CATEGORY_RULE = Keys(
    MappingProxyType(
        {
            "if": AUDIENCE,
            "grade_at_least": GRADE,
            "score_at_least": Integer(),
            "reason": _REASON,
        }
    ),
    what="a mapping of conditions",
)
QUALIFICATION = Keys(
    MappingProxyType(
        {
            "b2b_only": Boolean(),
            "free_mail_domains": _DOMAINS,
            "role_addresses": Items(
                Text("the part before @, such as info"),
                "a list, one address name (the part before @) per item",
                1,
            ),
            "competitors": _DOMAINS,
            "partners": _DOMAINS,
            "disqualify": Items(DISQUALIFIER, "a list, one disqualifier per item", 1),
            "categories": Keys(
                MappingProxyType(
                    {
                        name: Either((Nothing(), CATEGORY_RULE, Items(CATEGORY_RULE, min_items=1)))
                        for name in RULE_CATEGORIES
                    }
                ),
                what="a mapping of categories, such as sales_ready: {grade_at_least: B}",
            ),
        }
    ),
    what="a mapping of qualification rules",
)
_CATEGORY_KEYS = tuple(CATEGORY_RULE.keys)
LANGUAGE = Language(
    name="qualification",
    title="nurture qualification file",
    description="Which leads are disqualified, and which go to sales or stay in nurture.",
    root=QUALIFICATION,
)
_CODE = re.compile(r"[a-z][a-z_]*")
_MAX_CODE = 50  # stored on every disqualified lead and grouped by in reports
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"  # letters (any script), digits, inner hyphens
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})+")
_DOMAIN_PATTERN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.\*")
_LOCAL_PART = re.compile(r"[^\s@\"(),:;<>\[\]\\]+")
# Where the sequence parser says an audience problem is; rewritten to our own path.
_AUDIENCE_WHERE = "entry.audience"


@dataclass(frozen=True)
class QualificationResult:
    """The qualification model, or the problems that prevent it.

    Both empty (`model is None`, no problems) means there is no qualification
    file: no lead is disqualified or categorised.
    """

    model: QualificationModel | None
    problems: tuple[Problem, ...] = ()


def qualification_path(sequences_dir: Path) -> Path:
    """Where the qualification file lives: `rules/qualification.yaml` in the sequences folder."""
    return sequences_dir / QUALIFICATION_FILE


def load_qualification(path: Path) -> QualificationResult:
    """Read and parse the qualification file at `path`; a missing file is no rules at all."""
    if not path.exists():
        return QualificationResult(None)
    text, problem = read_text(path)
    if text is None:
        return QualificationResult(None, (problem,) if problem else ())
    return parse_qualification(text, str(path))


def parse_qualification(text: str, path: str) -> QualificationResult:
    """Parse the qualification file's text; `path` is used in problems."""
    root, problems = load(text, path)
    reader = Reader(path, problems)
    if root is None and not problems:
        reader.problem(1, "", "the file is empty; give at least one rule, or delete the file")
    top = reader.keyed(root, "", QUALIFICATION)
    if top is None:
        return QualificationResult(None, _sorted(reader.problems))
    b2b_only = reader.field(top, QUALIFICATION, "b2b_only", "")
    free_mail = _domains(reader, top.get("free_mail_domains"), "free_mail_domains")
    roles = _local_parts(reader, top.get("role_addresses"), "role_addresses")
    competitors = _domains(reader, top.get("competitors"), "competitors")
    partners = _domains(reader, top.get("partners"), "partners")
    for domain, item in partners.items():
        if domain in competitors:
            reader.problem(
                item.line,
                "partners",
                f"{domain} is also listed under competitors (line {competitors[domain].line});"
                " a domain is one or the other",
            )
    disqualifiers = _disqualifiers(reader, top.get("disqualify"))
    categories = _categories(reader, top.get("categories"))
    if reader.problems:
        return QualificationResult(None, _sorted(reader.problems))
    model = QualificationModel(
        b2b_only=True if b2b_only is None else b2b_only,
        free_mail_domains=FREE_MAIL_DOMAINS | frozenset(free_mail),
        role_addresses=ROLE_ADDRESSES | frozenset(roles),
        competitors=frozenset(competitors),
        partners=frozenset(partners),
        disqualifiers=tuple(disqualifiers),
        categories=tuple(categories),
        version=hashlib.sha256(text.encode("utf-8")).hexdigest()[:16],
        path=path,
    )
    return QualificationResult(model)


def _sorted(problems: list[Problem]) -> tuple[Problem, ...]:
    return tuple(sorted(problems, key=lambda problem: problem.line))


def _list(reader: Reader, node: Located | None, where: str, one: str) -> LocatedList | None:
    """The non-empty list at `where`; `one` names an item ("domain")."""
    if node is None:
        return None
    if not isinstance(node, LocatedList):
        reader.expected(node, where, f"a list, one {one} per item")
        return None
    if not node.items:
        # Nearly always a value left out by mistake; leaving the key out says "none".
        reader.problem(node.line, where, f"expected at least one {one}, got an empty list")
        return None
    return node


# --- domains and local parts -------------------------------------------------------


def _domains(reader: Reader, node: Located | None, where: str) -> dict[str, LocatedScalar]:
    """The domains listed at `where`, lower case, each with the item that first gave it."""
    found = _list(reader, node, where, "domain")
    domains: dict[str, LocatedScalar] = {}
    for index, item in enumerate(found.items if found else (), start=1):
        item_where = at(where, index)
        scalar = reader.scalar_text(item, item_where, "a domain such as asprova.example")
        if scalar is None:
            continue
        domain = _domain(reader, scalar, item_where, patterns=where == "free_mail_domains")
        if domain is None:
            continue
        if domain in domains:
            reader.problem(
                scalar.line,
                item_where,
                f"{domain} is listed twice (first at line {domains[domain].line})",
            )
            continue
        domains[domain] = scalar
    return domains


def _domain(reader: Reader, item: LocatedScalar, where: str, patterns: bool) -> str | None:
    """The domain in lower case; `patterns` also allows `name.*` (any ending)."""
    text = item.text.strip().lower()
    if _DOMAIN.fullmatch(text) and not text.startswith("www."):
        return text
    if patterns and _DOMAIN_PATTERN.fullmatch(text):
        return text
    if text.startswith("@") and _DOMAIN.fullmatch(text[1:]):
        hint = f"write the domain without @: {text[1:]}"
    elif "@" in text:
        hint = f'expected a domain such as asprova.example, not an email address: "{text}"'
    elif "/" in text:
        hint = f'expected a domain such as asprova.example, not a web address: "{text}"'
    elif text.startswith("www.") and _DOMAIN.fullmatch(text):
        hint = f"{text} is a web site; write the domain of the email addresses: {text[4:]}"
    elif "*" in text:
        hint = (
            "a * only ends a free-mail domain, as in yahoo.*"
            if patterns
            else f'expected a domain without *, such as asprova.example, got "{text}"'
        )
    else:
        hint = f'expected a domain such as asprova.example, got "{text}"'
    reader.problem(item.line, where, hint)
    return None


def _local_parts(reader: Reader, node: Located | None, where: str) -> set[str]:
    found = _list(reader, node, where, "address name (the part before @)")
    parts: dict[str, int] = {}
    for index, item in enumerate(found.items if found else (), start=1):
        item_where = at(where, index)
        scalar = reader.scalar_text(item, item_where, "the part before @, such as info")
        if scalar is None:
            continue
        text = scalar.text.strip().lower()
        if "@" in text:
            before = text.split("@", 1)[0]
            reader.problem(scalar.line, item_where, f'write only the part before @: "{before}"')
        elif not _LOCAL_PART.fullmatch(text):
            reader.expected(scalar, item_where, "the part before @, such as info")
        elif text in parts:
            reader.problem(
                scalar.line, item_where, f'"{text}" is listed twice (first at line {parts[text]})'
            )
        else:
            parts[text] = scalar.line
    return set(parts)


# --- disqualify ----------------------------------------------------------------------


def _disqualifiers(reader: Reader, node: Located | None) -> list[Disqualifier]:
    found = _list(reader, node, "disqualify", "disqualifier")
    rules: list[Disqualifier] = []
    first_line: dict[str, int] = {}
    for index, item in enumerate(found.items if found else (), start=1):
        where = at("disqualify", index)
        entry = reader.keyed(item, where, DISQUALIFIER)
        if entry is None:
            continue
        code = _code(reader, entry.get("code"), at(where, "code"), first_line)
        when = _condition(reader, entry.get("if"), at(where, "if"))
        reason = reader.field(entry, DISQUALIFIER, "reason", where)
        if when == Audience():
            reader.problem(
                entry.key_lines["if"],
                at(where, "if"),
                "expected at least one condition; without one every lead is disqualified",
            )
        elif code is not None and when is not None:
            rules.append(Disqualifier(code, when, reason or "", entry.line))
    return rules


def _code(
    reader: Reader, node: Located | None, where: str, first_line: dict[str, int]
) -> str | None:
    code = reader.string(node, where, "a reason code such as too_small")
    if code is None or node is None:
        return None
    if not _CODE.fullmatch(code) or len(code) > _MAX_CODE:
        reader.problem(
            node.line,
            where,
            f'"{code}" is not a reason code: use lower-case letters and _ (at most'
            f" {_MAX_CODE}), such as too_small",
        )
        return None
    if code in BUILT_IN_CODES:
        reader.problem(node.line, where, f'"{code}" is a built-in reason code; choose another')
        return None
    if code in CATEGORIES:
        reader.problem(node.line, where, f'"{code}" is a category; choose another code')
        return None
    if code in first_line:
        reader.problem(
            node.line, where, f'duplicate code "{code}" (first used at line {first_line[code]})'
        )
        return None
    first_line[code] = node.line
    return code


def _condition(reader: Reader, node: Located | None, where: str) -> Audience | None:
    """The sequence audience language, with problems located at `where`."""
    if node is None:
        return None
    inner = Reader(reader.path)
    audience = _audience(inner, node)
    for problem in inner.problems:
        reader.problems.append(
            replace(problem, message=problem.message.replace(_AUDIENCE_WHERE, where, 1))
        )
    return None if inner.problems else audience


# --- categories ----------------------------------------------------------------------


def _categories(reader: Reader, node: Located | None) -> list[CategoryRule]:
    shape = QUALIFICATION.nested("categories")
    what = shape.what
    # Unknown categories get their own message below, hence no allowed keys here.
    found = reader.mapping(node, "categories", None, what=what)
    if found is None:
        return []
    if not found:
        reader.problem(found.line, "categories", f"expected {what}, got an empty mapping")
    rules: list[CategoryRule] = []
    catch_all: tuple[str, int] | None = None  # (where, line) of the first rule for every lead
    for name, value in found.entries.items():
        where = at("categories", name)
        line = found.key_lines[name]
        if name not in RULE_CATEGORIES:
            if name == NO_INTEREST:
                message = "no_interest comes from disqualify: add a rule there, with a code"
            else:
                message = f"unknown category; categories here are {' and '.join(RULE_CATEGORIES)}"
            reader.problem(line, where, message)
            continue
        for rule_where, rule_node in _alternatives(reader, value, where, line):
            rule = _category_rule(reader, name, rule_node, rule_where, line)
            if rule is None:
                continue
            if catch_all is not None:
                reader.problem(
                    rule.line,
                    rule_where,
                    f"this rule is never used: {catch_all[0]} (line {catch_all[1]})"
                    " already takes every lead left",
                )
            elif rule.matches_everyone and name == SALES_READY:
                reader.problem(
                    rule.line,
                    rule_where,
                    "expected a condition (if, grade_at_least or score_at_least);"
                    " without one every lead would go to sales",
                )
            elif rule.matches_everyone:
                catch_all = (rule_where, rule.line)
            rules.append(rule)
    return rules


def _alternatives(
    reader: Reader, node: Located, where: str, line: int
) -> list[tuple[str, Located]]:
    """A category's rules: one mapping, a list of them (any one holding), or nothing."""
    if isinstance(node, LocatedScalar) and node.is_null and not node.reported:
        # `long_term_nurture:` with nothing after it reads as "every lead left".
        return [(where, LocatedMapping(MappingProxyType({}), MappingProxyType({}), line))]
    if isinstance(node, LocatedList):
        found = _list(reader, node, where, "rule")
        return [
            (at(where, index), item) for index, item in enumerate(found.items if found else (), 1)
        ]
    return [(where, node)]


def _category_rule(
    reader: Reader, category: str, node: Located, where: str, key_line: int
) -> CategoryRule | None:
    entry = reader.keyed(node, where, CATEGORY_RULE)
    if entry is None:
        return None
    when = (
        Audience()
        if entry.get("if") is None
        else _condition(reader, entry.get("if"), at(where, "if"))
    )
    grade_node = entry.get("grade_at_least")
    grade = reader.field(entry, CATEGORY_RULE, "grade_at_least", where)
    score = reader.field(entry, CATEGORY_RULE, "score_at_least", where)
    reason = reader.field(entry, CATEGORY_RULE, "reason", where)
    if when is None or (grade_node is not None and grade is None):
        return None
    if "score_at_least" in entry and score is None:
        return None
    if any(key not in _CATEGORY_KEYS for key in entry):
        return None  # a misspelt condition: judging the rest would say it has none
    line = entry.line if entry else key_line
    return CategoryRule(category, when, grade, score, reason or "", line)
