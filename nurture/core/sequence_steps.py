"""The steps of a sequence file: email, wait, branch and split steps and their conditions,
read into `Step` values; where each step goes is then checked by nurture.core.sequence_flow."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol

from nurture.core.sequence_flow import check_flow
from nurture.core.sequence_language import (
    BRANCH,
    CONDITION,
    CONDITIONS,
    ELSE,
    EMAIL,
    RULE,
    SPLIT,
    STEP,
    STEP_ID,
    STEP_KINDS,
    STOP,
    TEMPLATE_NAME,
    VARIANT,
    VARIANT_NAME,
    WAIT_UNTIL,
)
from nurture.core.sequence_values import duration, int_range, stages, texts
from nurture.core.sequences import (
    END,
    HOLDOUT,
    BranchRule,
    BranchStep,
    Clicked,
    Condition,
    EmailStep,
    EventSeen,
    FieldMatches,
    NotClicked,
    Opened,
    ScoreAtLeast,
    SplitStep,
    StageIs,
    Step,
    StopRule,
    Variant,
    WaitStep,
)
from nurture.core.yamlsource import Located, LocatedList, LocatedMapping, LocatedScalar, Reader, at

_STEP_ID = re.compile(STEP_ID)
_VARIANT_NAME = re.compile(VARIANT_NAME)
_EMAIL_CONDITIONS: Mapping[str, Callable[[str], Condition]] = MappingProxyType(
    {"clicked": Clicked, "not_clicked": NotClicked, "opened": Opened}
)


class TemplateChecker(Protocol):
    """Says what is wrong with an email step's template (an empty list when nothing).

    `locales` are the sequence's locales, its default locale first; `subject` is
    the step's subject override (a Jinja template) or None.
    """

    def check(self, template: str, locales: tuple[str, ...], subject: str | None) -> list[str]: ...


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


MAX_STEPS = 500  # a nurture journey has tens; more is a generated file gone wrong


def parse_steps(
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
        elif step is not None and not _sends(step):
            reader.problem(
                ref.line, ref.where, f'"{ref.step}" is not an email step; expected an email step id'
            )
    if any(step is None for step in parsed):
        return None
    steps = _resolve(ctx, [step for step in parsed if step is not None])
    check_flow(reader, steps)
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
    item = reader.keyed(node, where, STEP)
    if item is None:
        return None
    present = [kind for kind in STEP_KINDS if kind in item]
    if len(present) != 1:
        found = " and ".join(present) if present else "none"
        reader.problem(
            item.line, where, f"expected exactly one of email, wait, branch, split; found {found}"
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
    if kind == "split":
        return _split(ctx, body, at(where, kind), step_id, item.line, locales, templates)
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
    found = reader.keyed(node, where, EMAIL)
    if found is None:
        return None
    template = reader.field(found, EMAIL, "template", where)
    template_node = found.get("template")
    if template is not None and template_node is not None and ".." in template:
        # A folder name, never a path out of the templates folder.
        reader.expected(template_node, at(where, "template"), TEMPLATE_NAME.what)
        template = None
    kind = reader.field(found, EMAIL, "kind", where)
    subject = reader.field(found, EMAIL, "subject", where)
    if template is None or kind is None or ("subject" in found and subject is None):
        return None
    if templates is not None:
        for message in templates.check(template, locales, subject):
            reader.problem(line, where, message)
    return EmailStep(id=step_id, template=template, kind=kind, subject=subject, line=line)


def _sends(step: Step) -> bool:
    """Is this a step that sends an email (so a condition may look at its clicks)?"""
    return isinstance(step, EmailStep) or (isinstance(step, SplitStep) and step.email is not None)


def _split(
    ctx: _Context,
    node: Located,
    where: str,
    step_id: str,
    line: int,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> SplitStep | None:
    reader = ctx.reader
    found = reader.keyed(node, where, SPLIT)
    if found is None:
        return None
    email = None
    if "email" in found:
        email_node = found.get("email")
        assert email_node is not None
        email = _email(ctx, email_node, at(where, "email"), step_id, line, locales, templates)
        if email is None:
            return None
    holdout = reader.field(found, SPLIT, "holdout", where)
    variants = _variants(
        ctx, found.get("variants"), at(where, "variants"), email, locales, templates
    )
    stop = _stop(reader, found.get("stop"), at(where, "stop"))
    if (
        variants is None
        or ("holdout" in found and holdout is None)
        or ("stop" in found and stop is None)
    ):
        return None
    if len(variants) < 2 and not holdout:
        reader.problem(found.line, where, "a split needs two variants, or one and a holdout")
        return None
    if stop is not None and len(variants) < 2:
        reader.problem(
            found.key_lines["stop"], at(where, "stop"), "a stop rule needs at least two variants"
        )
        return None
    return SplitStep(
        id=step_id, variants=variants, email=email, holdout=holdout or 0.0, stop=stop, line=line
    )


def _variants(
    ctx: _Context,
    node: Located | None,
    where: str,
    email: EmailStep | None,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> tuple[Variant, ...] | None:
    reader = ctx.reader
    found = reader.mapping(node, where, None, what="a mapping of variant names to variants")
    if found is None:
        return None
    if not len(found):
        reader.problem(found.line, where, "expected at least one variant")
        return None
    variants: list[Variant] = []
    ok = True
    for name in found:
        inner = at(where, name)
        line = found.key_lines[name]
        if not _VARIANT_NAME.fullmatch(name) or name == HOLDOUT:
            reader.problem(
                line,
                inner,
                f'"{name}" is not a variant name: expected a-z, 0-9, "_"'
                f' and "-", and not "{HOLDOUT}" (the share that gets nothing)',
            )
            ok = False
            continue
        variant = _variant(ctx, found.get(name), inner, name, email, locales, templates)
        if variant is None:
            ok = False
        else:
            variants.append(variant)
    return tuple(variants) if ok else None


def _variant(
    ctx: _Context,
    node: Located | None,
    where: str,
    name: str,
    email: EmailStep | None,
    locales: tuple[str, ...],
    templates: TemplateChecker | None,
) -> Variant | None:
    reader = ctx.reader
    found = reader.keyed(node, where, VARIANT)
    if found is None:
        return None
    weight = reader.field(found, VARIANT, "weight", where)
    template = reader.field(found, VARIANT, "template", where)
    template_node = found.get("template")
    if template is not None and template_node is not None and ".." in template:
        reader.expected(template_node, at(where, "template"), TEMPLATE_NAME.what)
        return None
    subject = reader.field(found, VARIANT, "subject", where)
    goto = ctx.target(found.get("goto"), at(where, "goto"))
    if weight is None or any(
        key in found and value is None
        for key, value in (("template", template), ("subject", subject), ("goto", goto))
    ):
        return None
    if goto is not None and (template is not None or subject is not None):
        reader.problem(
            found.line,
            where,
            "a variant either changes the email (subject,"
            " template) or goes to a step (goto), not both",
        )
        return None
    if goto is None and email is None:
        reader.problem(
            found.line,
            where,
            "this split has no email to vary: give the variant a goto, or give the split an email",
        )
        return None
    if email is not None and goto is None and templates is not None and (template or subject):
        chosen = template or email.template
        for message in templates.check(chosen, locales, subject or email.subject):
            reader.problem(found.line, where, message)
    return Variant(name, weight, template, subject, goto, found.line)


def _stop(reader: Reader, node: Located | None, where: str) -> StopRule | None:
    found = reader.keyed(node, where, STOP)
    if found is None:
        return None
    metric = reader.field(found, STOP, "metric", where)
    confidence = reader.field(found, STOP, "confidence", where)
    least = reader.field(found, STOP, "min_per_variant", where)
    given = (("metric", metric), ("confidence", confidence), ("min_per_variant", least))
    if metric is None or any(key in found and value is None for key, value in given):
        return None
    return StopRule(
        metric, 0.95 if confidence is None else confidence, 100 if least is None else least
    )


def _wait(
    ctx: _Context, node: Located, where: str, step_id: str, line: int, index: int
) -> WaitStep | None:
    reader = ctx.reader
    if isinstance(node, LocatedScalar):
        span = duration(reader, node, where)
        return None if span is None else WaitStep(id=step_id, duration=span, line=line)
    found = reader.keyed(node, where, WAIT_UNTIL)
    if found is None:
        return None
    event = reader.field(found, WAIT_UNTIL, "until", where)
    match = reader.text_mapping(found.get("match"), at(where, "match"))
    timeout = duration(reader, found.get("timeout"), at(where, "timeout"))
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
        reader.expected(node, where, BRANCH.what)
        return None
    rules: list[BranchRule] = []
    otherwise: str | None = END
    ok = True
    for index, item in enumerate(node.items, start=1):
        rule_where = at(where, index)
        if isinstance(item, LocatedMapping) and "else" in item:
            found = reader.keyed(item, rule_where, ELSE)
            last = index == len(node.items)
            if not last:
                reader.problem(item.line, rule_where, "else must be the last rule of a branch")
            otherwise = ctx.target(item.get("else"), at(rule_where, "else"))
            ok = ok and found is not None and last and otherwise is not None
            continue
        found = reader.keyed(item, rule_where, RULE)
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
    single = reader.one_of(node, where, CONDITIONS, "a condition", "condition")
    if single is None:
        return None
    name, value, found = single
    inner = at(where, name)
    if name in ("clicked", "not_clicked", "opened"):
        step = reader.field(found, CONDITION, name, where)
        if step is None or value is None:
            return None
        ctx.email_refs.append(_Target(inner, value.line, step))
        return _EMAIL_CONDITIONS[name](step)
    if name == "score_at_least":
        points = reader.field(found, CONDITION, name, where)
        return None if points is None else ScoreAtLeast(points)
    if name == "stage":
        found_stages = stages(reader, value, inner)
        return None if found_stages is None else StageIs(found_stages)
    if name == "event":
        event = reader.field(found, CONDITION, name, where)
        return None if event is None else EventSeen(event)
    return _field_condition(reader, value, inner)


def _field_condition(reader: Reader, node: Located | None, where: str) -> FieldMatches | None:
    shape = CONDITION.nested("field")
    what = shape.what
    found = reader.keyed(node, where, shape)
    if found is None:
        return None
    if len(found) != 1:
        reader.problem(found.line, where, f"expected exactly one field, as in {what}")
        return None
    name = next(iter(found))
    value = found.get(name)
    if isinstance(value, LocatedMapping):
        rng = int_range(reader, value, at(where, name))
        return None if rng is None else FieldMatches(name, range=rng)
    values = texts(reader, value, at(where, name))
    return None if values is None else FieldMatches(name, values=values)


# --- where each step goes next ----------------------------------------------------


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
