"""A sequence in words: its triggers, audience, re-entry, send window, conditions and
steps as the short phrases the console shows (the flow diagram's nodes and edges, the
list of sequences, what changed between two versions). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from nurture.core.sequences import (
    END,
    STAGES,
    Audience,
    BranchStep,
    Clicked,
    Condition,
    EmailStep,
    EventSeen,
    FieldMatches,
    IntRange,
    NotClicked,
    Opened,
    Reentry,
    ScoreAtLeast,
    SendWindow,
    SplitStep,
    StageIs,
    Step,
    Trigger,
    TriggerKind,
    WaitStep,
)


def condition_text(condition: Condition) -> str:
    """A branch condition written out, as a marketer reads it."""
    match condition:
        case Clicked(step):
            return f"clicked {step}"
        case NotClicked(step):
            return f"did not click {step}"
        case Opened(step):
            return f"opened {step}"
        case ScoreAtLeast(points):
            return f"score ≥ {points}"
        case FieldMatches(name, values, rng):
            if rng is not None:
                return f"{name} {range_text(rng)}"
            return f"{name} is {either(sorted(values))}"
        case StageIs(stages):
            return f"stage is {either(sorted(stages))}"
        case EventSeen(name):
            return f"did {name}"
    raise AssertionError(condition)  # pragma: no cover


def range_text(rng: IntRange) -> str:
    if rng.min is not None and rng.max is not None:
        return f"{rng.min}–{rng.max}"
    if rng.min is not None:
        return f"≥ {rng.min}"
    return f"≤ {rng.max}"


def either(values: list[str]) -> str:
    if len(values) <= 1:
        return "".join(values)
    return ", ".join(values[:-1]) + " or " + values[-1]


def _matching(match: Mapping[str, str]) -> str:
    return " ".join(f"{key}={value}" for key, value in sorted(match.items()))


def trigger_text(trigger: Trigger) -> str:
    match trigger.kind:
        case TriggerKind.EVENT:
            said = f"on {trigger.event}"
        case TriggerKind.STAGE_REACHED:
            said = f"on reaching stage {trigger.stage}"
        case TriggerKind.TAG_ADDED:
            said = f"on tag {trigger.tag} added"
        case TriggerKind.INACTIVE:
            said = f"after {trigger.inactive_days} days without a human click or a form"
        case TriggerKind.DATE:
            said = str(trigger.date)
        case TriggerKind.ACCOUNT_ENGAGED:
            said = str(trigger.account)
        case _:
            said = "on lead created"
    return f"{said} {_matching(trigger.match)}".strip()


def audience_lines(audience: Audience) -> tuple[str, ...]:
    lines = []
    if audience.countries is not None:
        lines.append(f"country {', '.join(sorted(audience.countries))}")
    if audience.company_size is not None:
        lines.append(f"company size {range_text(audience.company_size)}")
    if audience.job_title_contains:
        lines.append(f"job title has {either(list(audience.job_title_contains))}")
    if audience.sources is not None:
        lines.append(f"source {', '.join(sorted(audience.sources))}")
    if audience.locales is not None:
        lines.append(f"locale {', '.join(sorted(audience.locales))}")
    if audience.stages is not None:
        lines.append(f"stage {', '.join(s for s in STAGES if s in audience.stages)}")
    for name, values in sorted(audience.fields.items()):
        lines.append(f"{name} {', '.join(sorted(values))}")
    return tuple(lines)


def reentry_text(reentry: Reentry) -> str:
    if not reentry.allowed:
        return "never re-enters"
    if reentry.cooldown is None:
        return "may re-enter at once"
    return f"re-enters after {reentry.cooldown}"


DAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def window_text(window: SendWindow | None) -> str:
    if window is None:
        return "any day, any time"
    days = ", ".join(DAY_NAMES[d] for d in sorted(window.days))
    hours = f"{window.start:%H:%M}–{window.end:%H:%M}"
    return f"{days}, {hours}" + (", not on public holidays" if window.holidays else "")


def wait_text(step: WaitStep) -> tuple[str, ...]:
    if step.until_event is None:
        return (str(step.duration),)
    until = f"until {step.until_event} {_matching(step.until_match)}".strip()
    return (until, f"at most {step.timeout}" if step.timeout else "no time limit")


def _target(step_id: str) -> str:
    return "the end" if step_id == END else step_id


def step_lines(step: Step) -> tuple[str, ...]:
    """What a step does, one phrase a line (before wrapping)."""
    match step:
        case EmailStep():
            lines = [step.template, f"kind: {step.kind}"]
            if step.subject is not None:
                lines.append(f"subject: {step.subject}")
            return tuple(lines)
        case WaitStep():
            return wait_text(step)
        case BranchStep():
            rules = [f"if {condition_text(r.condition)} → {_target(r.goto)}" for r in step.rules]
            return (*rules, f"else → {_target(step.otherwise)}")
        case SplitStep():
            return split_lines(step)
    raise AssertionError(step)  # pragma: no cover


def split_lines(step: SplitStep) -> tuple[str, ...]:
    """A split's email, each variant with its weight and what it changes, the holdout
    and the stop rule."""
    from nurture.core.experiments import share

    lines = [f"{step.email.template}, kind: {step.email.kind}"] if step.email else []
    for variant in step.variants:
        does = []
        if variant.goto is not None:
            does.append(f"→ {_target(variant.goto)}")
        if variant.template is not None:
            does.append(f"template {variant.template}")
        if variant.subject is not None:
            does.append(f"subject: {variant.subject}")
        said = f" {'; '.join(does)}" if does else ""
        lines.append(f"{variant.name} {share(step, variant.name) * 100:.3g} %{said}")
    if step.holdout:
        lines.append(f"holdout {step.holdout * 100:.3g} %: nothing")
    if step.stop is not None:
        stop = step.stop
        lines.append(
            f"stops at {stop.confidence:.0%} on {stop.metric}, {stop.min_per_variant} leads each"
        )
    return tuple(lines)


def step_summary(step: Step) -> str:
    """A step in one line: what it is, what it does and where it leads."""
    kind = step_kind(step)
    said = "; ".join(step_lines(step))
    match step:
        case BranchStep() | SplitStep():
            return f"{kind}: {said}"
        case WaitStep() if step.until_event is not None:
            then = _target(step.on_event or step.next)
            timeout = f", after the time limit → {_target(step.next)}" if step.timeout else ""
            return f"{kind} {said}; on {step.until_event} → {then}{timeout}"
    return f"{kind} {said} → {_target(step.next)}"


def step_kind(step: Step) -> str:
    kinds = {EmailStep: "email", WaitStep: "wait", BranchStep: "branch", SplitStep: "split"}
    return kinds[type(step)]
