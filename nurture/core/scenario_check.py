"""Play a scenario through the simulation `nurture simulate` uses and compare what the
lead receives with what the scenario expects: a list of located failures."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from zoneinfo import ZoneInfo

from nurture.core.journey import EventFact
from nurture.core.problems import Problem
from nurture.core.scenario import SHORTHANDS, Scenario, When
from nurture.core.scenario_scoring import Move, moves
from nurture.core.scoring import Scored, ScoringModel
from nurture.core.sequences import EmailStep, Sequence
from nurture.core.simulation import Assumptions, Change, Entry, Standing, kept_out, simulate
from nurture.core.timing import format_local, resolve_timezone, window_holidays

_ROUNDS = 5  # each round can only remove moves after the first changed one


@dataclass(frozen=True)
class ScenarioResult:
    """A scenario's outcome: its failures (none: it passed) and the journey played."""

    path: str
    name: str
    failures: tuple[Problem, ...] = ()
    timeline: tuple[Entry, ...] = ()

    @property
    def passed(self) -> bool:
        return not self.failures


def check(
    scenario: Scenario,
    sequence: Sequence,
    cap_emails: int | None = None,
    cap_days: int = 7,
    scoring: ScoringModel | None = None,
) -> ScenarioResult:
    """Play `scenario` against `sequence` and say which expectations fail; with a
    `scoring` model, the lead's events and clicks are scored and the stages they
    reach (mql, sql) change its journey as they do in the engine."""
    tz = resolve_timezone(scenario.lead.timezone, scenario.lead.country, sequence.timezone)
    start = _moment(scenario.start, tz, None)
    failures: list[Problem] = []

    def fail(line: int, message: str) -> None:
        failures.append(Problem(scenario.path, line, message))

    refused = kept_out(sequence, scenario.lead, Standing(mail_refusal=scenario.mail_refusal), start)
    if refused is not None or scenario.kept_out is not None:
        line = scenario.line
        if scenario.kept_out is None:
            fail(line, f"the lead gets nothing from {sequence.id}: {refused}")
        elif refused is None:
            fail(line, f'expected the lead kept out ("{scenario.kept_out}"), but it enters')
        elif scenario.kept_out not in refused:
            fail(line, f'expected kept out for "{scenario.kept_out}", got: {refused}')
        if refused is not None:
            return ScenarioResult(scenario.path, scenario.name, tuple(failures))

    emails = [step.id for step in sequence.email_steps()]
    named = [(e.line, e.kind, e.value) for e in scenario.events if e.kind in ("click", "open")]
    named += [(e.line, "step", e.step) for e in scenario.emails]
    for line, key, step_id in named:
        if step_id not in emails:
            fail(line, f'{key}: "{step_id}" is not an email step of {sequence.id}'
                       f" (its emails: {', '.join(emails)})")  # fmt: skip
    if failures:
        return ScenarioResult(scenario.path, scenario.name, tuple(failures))

    years = range(start.year, (start + timedelta(days=scenario.days)).year + 2)
    events: list[EventFact] = []
    changes: list[Change] = []
    for event in scenario.events:
        moment = start if event.at is None else _moment(event.at, tz, start)
        if event.kind in ("click", "open", "stage", "score"):
            changes.append(Change(moment, event.kind, event.value))
        elif event.kind == "event":
            events.append(EventFact(event.value, moment, event.properties))
        else:
            props = MappingProxyType({SHORTHANDS[event.kind]: event.value})
            events.append(EventFact(event.kind, moment, props))
    assumptions = Assumptions(
        events=tuple(events),
        changes=tuple(changes),
        holidays=window_holidays(sequence.window, scenario.lead.country, years),
        cap_emails=cap_emails,
        cap_days=cap_days,
    )
    timeline, promoted = _play(scenario, sequence, start, assumptions, scoring)
    if scenario.kept_out is not None:  # already failed: it enters; its emails say why
        return ScenarioResult(scenario.path, scenario.name, tuple(failures), timeline)
    sent = [(e.step or "", e.at, e.local) for e in timeline if e.kind == "send"]
    expected_emails = [(e.line, e.step, e.at, e.within) for e in scenario.emails]
    for said_at, message in _compare("email", expected_emails, sent, tz, start):
        fail(said_at or scenario.expect_line, message)
    for index, expected in enumerate(scenario.emails, start=1):
        template = getattr(sequence.step(expected.step), "template", None)
        if expected.template is not None and template != expected.template:
            fail(
                expected.line,
                f"email {index} ({expected.step}): expected template {expected.template},"
                f" got {template}",
            )
    if scenario.stages is not None:
        reached = [(m.stage, m.at, format_local(m.at, tz)) for m in promoted]
        wanted = [(e.line, e.stage, e.at, e.within) for e in scenario.stages]
        for said_at, message in _compare("stage", wanted, reached, tz, start):
            fail(said_at or scenario.expect_line, message)
    left = next((entry for entry in timeline if entry.kind == "leave"), None)
    leaves = scenario.leaves
    if leaves is not None:
        if left is None:
            fail(leaves.line, f"expected the lead to leave{_why(leaves.reason)}, it is still in")
        else:
            if leaves.reason is not None and left.reason != leaves.reason:
                fail(leaves.line, f'expected to leave for "{leaves.reason}", got "{left.reason}"')
            if leaves.at is not None and not _near(left.at, leaves.at, leaves.within, tz, start):
                fail(
                    leaves.line,
                    f"expected to leave {_shown(leaves.at, tz, start)}{_plus(leaves.within)},"
                    f" got {left.local}",
                )
    return ScenarioResult(scenario.path, scenario.name, tuple(failures), timeline)


def _play(
    scenario: Scenario,
    sequence: Sequence,
    start: datetime,
    assumptions: Assumptions,
    scoring: ScoringModel | None,
) -> tuple[tuple[Entry, ...], tuple[Move, ...]]:
    """The journey, with the stage moves scoring makes on the way fed back into it.

    A move can end the journey (a promoted lead leaves at sql), which removes later
    clicks and so later points: played again until the moves stop changing.
    """
    timeline = simulate(sequence, scenario.lead, start, scenario.days, assumptions)
    if scoring is None:
        return timeline, ()
    told = tuple((c.at, c.value) for c in assumptions.changes if c.kind == "stage")
    found: tuple[Move, ...] = ()
    for _ in range(_ROUNDS):
        scored = [
            Scored(e.name, e.occurred_at, e.properties, classification="human")
            for e in assumptions.events
        ]
        for entry in timeline:
            step = sequence.step(entry.step or "")
            if entry.kind in ("click", "open") and isinstance(step, EmailStep):
                name = "email_clicked" if entry.kind == "click" else "email_opened"
                props = {"sequence": sequence.id, "step": step.id, "kind": step.kind}
                scored.append(Scored(name, entry.at, props, classification="human"))
        again = moves(scoring, scenario.lead, start, scored, told)
        if again == found:
            break
        found = again
        extra = tuple(Change(m.at, "stage", m.stage, f"scoring: {m.cause}") for m in found)
        played = replace(assumptions, changes=assumptions.changes + extra)
        timeline = simulate(sequence, scenario.lead, start, scenario.days, played)
    return timeline, found


def _compare(
    noun: str,
    expected: list[tuple[int, str, When | None, timedelta]],
    got: list[tuple[str, datetime, str]],
    tz: ZoneInfo,
    start: datetime,
) -> list[tuple[int | None, str]]:
    """Expected (line, name, when, within) against what happened (name, at, local),
    in order: each difference at its line (None: the list's own line)."""
    found: list[tuple[int | None, str]] = []
    for index, (line, name, when, within) in enumerate(expected):
        what = f"{noun} {index + 1} ({name})"
        if index >= len(got):
            found.append((line, f"{what}: expected {_shown(when, tz, start)}, got no {noun}"))
            continue
        got_name, at, local = got[index]
        if got_name != name:
            found.append((line, f"{noun} {index + 1}: expected {name} {_shown(when, tz, start)},"
                                f" got {got_name} on {local}"))  # fmt: skip
        elif when is not None and not _near(at, when, within, tz, start):
            found.append((line, f"{what}: expected {_shown(when, tz, start)}{_plus(within)},"
                                f" got {local}"))  # fmt: skip
    for got_name, _, local in got[len(expected) :]:
        verb = "sent" if noun == "email" else "reached"
        found.append((None, f"not expected: {got_name} {verb} on {local}"))
    return found


def _moment(when: When, tz: ZoneInfo, start: datetime | None) -> datetime:
    """An aware UTC time: an offset from the start, else a local or an absolute time."""
    if when.offset is not None:
        assert start is not None
        return start + when.offset
    assert when.moment is not None
    moment = when.moment if when.moment.tzinfo else when.moment.replace(tzinfo=tz)
    return moment.astimezone(UTC)


def _near(got: datetime, expected: When, within: timedelta, tz: ZoneInfo, start: datetime) -> bool:
    if expected.whole_day:
        assert expected.moment is not None
        day = got.astimezone(tz).date()
        return abs(day - expected.moment.date()) <= timedelta(days=within.days)
    return abs(got - _moment(expected, tz, start)) <= within


def _shown(when: When | None, tz: ZoneInfo, start: datetime) -> str:
    if when is None:
        return "at any time"
    if when.whole_day:
        assert when.moment is not None
        return f"on {when.moment:%Y-%m-%d}"
    return f"on {format_local(_moment(when, tz, start), tz)}"


def _plus(within: timedelta) -> str:
    if not within:
        return ""
    minutes = int(within.total_seconds() // 60)
    amount, unit = next(
        (minutes // size, name)
        for size, name in ((1440, "day"), (60, "hour"), (1, "minute"))
        if minutes % size == 0
    )
    return f" (within {amount} {unit}{'s' if amount != 1 else ''})"


def _why(reason: str | None) -> str:
    return f' ("{reason}")' if reason else ""
