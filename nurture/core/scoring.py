"""Lead scoring: the scoring model's frozen values and the pure functions that apply it.

Two dimensions, as in docs/scoring.md. **Fit** is who the lead is: every fit rule
that holds adds its points, and the total gives a grade from A to D. **Behaviour**
is what the lead does: each event scores by the first rule that matches it,
within the rule's cap, and behaviour points fade with an exponential half-life.
The lifecycle thresholds turn the behaviour score and the grade into a stage.

A lead's running state is two numbers (`Behaviour`); `replay` rebuilds the whole
history from the event log. `scoring_parser` builds a `ScoringModel` from a file.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from nurture.core.profile import LeadProfile
from nurture.core.sequences import Duration, FieldMatches, IntRange

if TYPE_CHECKING:
    from nurture.core.accounts import AccountRule

GRADES = ("A", "B", "C", "D")
"""Fit grades, best first; D is every lead below the C threshold."""

CLASSIFICATIONS = ("human", "machine_open", "scanner", "unknown")
"""What tracking says about an open or a click: only `human` counts by default."""

CLASSIFIED_EVENTS = frozenset({"email_opened", "email_clicked"})
"""Events whose hits machines fake: without a classification they count as `unknown`."""

MOVABLE_STAGES = frozenset({"subscriber", "lead", "mql", "recycled"})
"""The stages scoring may move a lead out of; it never touches sql and beyond, nor disqualified."""

# The property named in an explanation when a rule has no `where`.
_DETAIL_PROPERTY = MappingProxyType(
    {
        "form_submitted": "form",
        "pricing_form_submitted": "form",
        "webinar_registered": "webinar",
        "webinar_attended": "webinar",
        "page_visited": "path",
        "email_clicked": "kind",
        "email_opened": "kind",
    }
)

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_SPAN_UNITS = frozenset({"minutes", "hours", "days", "weeks"})


def span(duration: Duration) -> timedelta:
    """A duration as elapsed time. Business days have no fixed length: ValueError."""
    if duration.unit not in _SPAN_UNITS:
        raise ValueError(f'"{duration}" has no fixed length; use minutes, hours, days or weeks')
    return timedelta(**{duration.unit: duration.amount})


def grade_at_least(grade: str, minimum: str) -> bool:
    """Whether `grade` is `minimum` or better (A is the best, D the worst)."""
    return GRADES.index(grade) <= GRADES.index(minimum)


def whole_points(score: float) -> int:
    """A score as shown and compared with thresholds: rounded half up to whole points."""
    return math.floor(score + 0.5)


# --- fit -------------------------------------------------------------------------


@dataclass(frozen=True)
class FitCondition:
    """What a fit rule asks of a lead; every criterion given must hold.

    Texts are stored folded (countries in upper case, the rest with `casefold`),
    so comparisons ignore case. `tags` holds when the lead has any of them.
    """

    countries: frozenset[str] | None = None
    company_size: IntRange | None = None
    job_title_contains: tuple[str, ...] = ()
    sources: frozenset[str] | None = None
    campaigns: frozenset[str] | None = None
    locales: frozenset[str] | None = None
    stages: frozenset[str] | None = None
    tags: frozenset[str] | None = None
    fields: tuple[FieldMatches, ...] = ()

    def holds(self, lead: LeadProfile) -> bool:
        if self.countries is not None and (lead.country or "").upper() not in self.countries:
            return False
        if self.company_size is not None and not self.company_size.contains(lead.company_size):
            return False
        if self.job_title_contains:
            title = (lead.job_title or "").casefold()
            if not any(word in title for word in self.job_title_contains):
                return False
        for allowed, value in (
            (self.sources, lead.source),
            (self.campaigns, lead.campaign),
            (self.locales, lead.locale),
        ):
            if allowed is not None and (value or "").casefold() not in allowed:
                return False
        if self.stages is not None and lead.stage not in self.stages:
            return False
        if self.tags is not None and not any(tag.casefold() in self.tags for tag in lead.tags):
            return False
        return all(_field_holds(test, lead.value(test.field)) for test in self.fields)

    def describe(self) -> str:
        """The condition in words, the reason a rule gives when it states none."""
        parts: list[str] = []
        if self.countries is not None:
            parts.append(f"country {_either(self.countries)}")
        if self.company_size is not None:
            parts.append(f"company size {_describe_range(self.company_size)}")
        if self.job_title_contains:
            parts.append(f"job title containing {_either(self.job_title_contains)}")
        for label, values in (
            ("source", self.sources),
            ("campaign", self.campaigns),
            ("locale", self.locales),
            ("stage", self.stages),
            ("tagged", self.tags),
        ):
            if values is not None:
                parts.append(f"{label} {_either(values)}")
        for test in self.fields:
            if test.range is not None:
                parts.append(f"{test.field} {_describe_range(test.range)}")
            else:
                parts.append(f"{test.field} {_either(test.values)}")
        return " and ".join(parts)


def _field_holds(test: FieldMatches, value: Any) -> bool:
    if value is None:
        return False
    if test.range is not None:
        number = value if isinstance(value, int) and not isinstance(value, bool) else None
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value)
        return test.range.contains(number)
    return str(value).casefold() in test.values


def _either(values: Iterable[str]) -> str:
    items = sorted(values) if isinstance(values, frozenset) else list(values)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _describe_range(rng: IntRange) -> str:
    if rng.min is not None and rng.max is not None:
        return f"{rng.min} to {rng.max}"
    if rng.min is not None:
        return f"at least {rng.min}"
    return f"at most {rng.max}"


@dataclass(frozen=True)
class FitRule:
    """Points for who the lead is; every rule that holds adds its points."""

    condition: FitCondition
    points: int
    reason: str
    line: int = 0


@dataclass(frozen=True)
class Grades:
    """The least fit points for grades A, B and C (a > b > c); below c is D."""

    a: int
    b: int
    c: int

    def of(self, points: int) -> str:
        if points >= self.a:
            return "A"
        if points >= self.b:
            return "B"
        return "C" if points >= self.c else "D"

    def describe(self) -> str:
        return f"A from {self.a}, B from {self.b}, C from {self.c}"


@dataclass(frozen=True)
class Fit:
    """A lead's fit: its points, its grade, and one `+10 reason` line per rule that held."""

    points: int
    grade: str
    reasons: tuple[str, ...] = ()


# --- behaviour -------------------------------------------------------------------


@dataclass(frozen=True)
class Cap:
    """At most `points` from one rule within any window of length `per`."""

    points: int
    per: Duration

    @property
    def window(self) -> timedelta:
        return span(self.per)


@dataclass(frozen=True)
class BehaviourRule:
    """Points for an event: its name, its properties (`where`) and who did it (`count`).

    `where` values are stored case-folded. `id` names the rule in score changes,
    breakdowns and caps: the one written in the file, else one made from `event`
    and `where`.
    """

    id: str
    event: str
    points: int
    reason: str
    where: Mapping[str, frozenset[str]] = field(default_factory=lambda: _EMPTY)
    cap: Cap | None = None
    count: frozenset[str] = frozenset({"human"})
    line: int = 0

    def matches(self, event: Scored) -> bool:
        if event.name != self.event:
            return False
        for key, allowed in self.where.items():
            value = event.properties.get(key)
            if value is None or str(value).casefold() not in allowed:
                return False
        return classification(event) in self.count

    def detail(self, event: Scored) -> str:
        """The event's values that this rule looked at, for explanations."""
        keys = tuple(self.where) or (_DETAIL_PROPERTY.get(self.event, ""),)
        values = [str(event.properties[key]) for key in keys if event.properties.get(key)]
        return ", ".join(values)


def describe_event_rule(event: str, where: Mapping[str, Iterable[str]]) -> str:
    """A rule in words, the reason it gives when it states none."""
    if not where:
        return event
    return event + " with " + " and ".join(f"{k} {_either(v)}" for k, v in where.items())


@dataclass(frozen=True)
class Thresholds:
    """A stage's bar: at least `score` behaviour points and a grade of `grade` or better."""

    score: int
    grade: str = "D"

    def met(self, score: int, grade: str) -> bool:
        return score >= self.score and grade_at_least(grade, self.grade)

    def describe(self) -> str:
        return f"score {self.score}" + ("" if self.grade == "D" else f", grade {self.grade}")


@dataclass(frozen=True)
class ScoringModel:
    """One scoring file, parsed. `version` is the content hash of the file."""

    fit_rules: tuple[FitRule, ...]
    grades: Grades
    behaviour_rules: tuple[BehaviourRule, ...]
    mql: Thresholds
    promote: Thresholds
    half_life: Duration | None = None  # None: behaviour points never fade
    decisive: tuple[str, ...] = ()
    decisive_grade: str = "C"  # a decisive event promotes leads of this grade or better
    account: AccountRule | None = None  # lifecycle.account: promotion by an account's group
    version: str = ""
    path: str = ""
    _by_event: Mapping[str, tuple[BehaviourRule, ...]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # An index by event name keeps replay linear in the number of events.
        index: dict[str, list[BehaviourRule]] = {}
        for rule in self.behaviour_rules:
            index.setdefault(rule.event, []).append(rule)
        frozen = MappingProxyType({name: tuple(rules) for name, rules in index.items()})
        object.__setattr__(self, "_by_event", frozen)

    @property
    def half_life_span(self) -> timedelta | None:
        return None if self.half_life is None else span(self.half_life)

    @property
    def cap_lookback(self) -> timedelta | None:
        """How far back `score_event` needs a lead's changes: the longest cap window."""
        windows = [rule.cap.window for rule in self.behaviour_rules if rule.cap is not None]
        return max(windows, default=None)

    def rules_for(self, event_name: str) -> tuple[BehaviourRule, ...]:
        return self._by_event.get(event_name, ())


@dataclass(frozen=True)
class Scored:
    """An event as scoring sees it.

    `classification` is tracking's verdict on an open or a click (one of
    CLASSIFICATIONS); when None, `properties["classification"]` is used.
    """

    name: str
    occurred_at: datetime
    properties: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    id: int | None = None
    classification: str | None = None

    def __post_init__(self) -> None:
        if self.occurred_at.tzinfo is None:
            raise ValueError(f"event {self.name}: occurred_at must be an aware datetime")


def classification(event: Scored) -> str:
    """Who did it: the event's classification; without one, `unknown` for opens and
    clicks (machines fake those) and `human` for everything else."""
    found = event.classification or event.properties.get("classification")
    if isinstance(found, str) and found:
        return found
    return "unknown" if event.name in CLASSIFIED_EVENTS else "human"


@dataclass(frozen=True)
class ScoreChange:
    """One change of a lead's behaviour points, with its reason and source event.

    `points` is what the rule gave at `at` (after its cap; `capped_from` is the
    rule's points when the cap cut them); later decay does not change it.
    `score_after` is the behaviour score just after the change.
    """

    points: int
    rule: str
    reason: str
    at: datetime
    event: str
    detail: str = ""
    event_id: int | None = None
    capped_from: int | None = None
    score_after: float = 0.0


@dataclass(frozen=True)
class Behaviour:
    """All a lead needs between events: its points as of its last change, and when."""

    points: float = 0.0
    last_activity: datetime | None = None


def decayed(points: float, since: datetime, now: datetime, half_life: timedelta | None) -> float:
    """`points` as of `since`, halved for every `half_life` elapsed until `now`."""
    if half_life is None or now <= since or points == 0:
        return points
    return points * 0.5 ** ((now - since) / half_life)


def current_score(model: ScoringModel, behaviour: Behaviour, now: datetime) -> float:
    """The behaviour score at `now` (exact; round with `whole_points` to show it)."""
    if behaviour.last_activity is None:
        return behaviour.points
    return decayed(behaviour.points, behaviour.last_activity, now, model.half_life_span)


def match_rule(model: ScoringModel, event: Scored) -> BehaviourRule | None:
    """The first rule, in file order, that matches the event (None: it scores nothing)."""
    for rule in model.rules_for(event.name):
        if rule.matches(event):
            return rule
    return None


def score_event(
    model: ScoringModel,
    behaviour: Behaviour,
    event: Scored,
    recent: Sequence[ScoreChange] = (),
) -> tuple[Behaviour, ScoreChange | None]:
    """Score one new event: the lead's next state and the change (None: nothing scored).

    `recent` are the lead's earlier changes, at least those within
    `model.cap_lookback` of the event; a cap counts its rule's points over the
    window that ends at the event. The first matching rule decides even when its
    cap is used up: a capped event scores nothing, it does not fall to a later rule.
    """
    rule = match_rule(model, event)
    if rule is None:
        return behaviour, None
    used = 0
    if rule.cap is not None:
        start = event.occurred_at - rule.cap.window
        at = event.occurred_at
        used = sum(c.points for c in recent if c.rule == rule.id and start < c.at <= at)
    return _apply(behaviour, rule, event, used, model.half_life_span)


def _apply(
    behaviour: Behaviour,
    rule: BehaviourRule,
    event: Scored,
    used: int,
    half_life: timedelta | None,
) -> tuple[Behaviour, ScoreChange | None]:
    points = rule.points
    if rule.cap is not None:
        points = min(points, max(0, rule.cap.points - used))
        if points == 0:
            return behaviour, None
    at = event.occurred_at
    last = behaviour.last_activity
    if last is None or at >= last:
        base = behaviour.points if last is None else decayed(behaviour.points, last, at, half_life)
        after = Behaviour(base + points, at)
    else:
        # A late event: decay being exponential, its points decayed to the last
        # activity add exactly what they would have had they arrived in order.
        after = Behaviour(behaviour.points + decayed(points, at, last, half_life), last)
    change = ScoreChange(
        points=points,
        rule=rule.id,
        reason=rule.reason,
        at=at,
        event=event.name,
        detail=rule.detail(event),
        event_id=event.id,
        capped_from=rule.points if points != rule.points else None,
        score_after=after.points,
    )
    return after, change


@dataclass(frozen=True)
class ScoreState:
    """A lead's behaviour score rebuilt from its events, with every change in time order."""

    behaviour: Behaviour
    changes: tuple[ScoreChange, ...] = ()
    version: str = ""


def replay(model: ScoringModel, events: Iterable[Scored]) -> ScoreState:
    """Score a lead's whole event log from zero, in time order (ties: by event id).

    Linear in the number of events: caps keep a running window per rule.
    """
    half_life = model.half_life_span
    behaviour = Behaviour()
    changes: list[ScoreChange] = []
    windows: dict[str, deque[ScoreChange]] = {}
    used: dict[str, int] = {}
    for event in sorted(events, key=_log_order):
        rule = match_rule(model, event)
        if rule is None:
            continue
        window: deque[ScoreChange] | None = None
        if rule.cap is not None:
            window = windows.setdefault(rule.id, deque())
            start = event.occurred_at - rule.cap.window
            while window and window[0].at <= start:
                used[rule.id] -= window.popleft().points
        behaviour, change = _apply(behaviour, rule, event, used.get(rule.id, 0), half_life)
        if change is None:
            continue
        changes.append(change)
        if window is not None:
            window.append(change)
            used[rule.id] = used.get(rule.id, 0) + change.points
    return ScoreState(behaviour, tuple(changes), model.version)


def _log_order(event: Scored) -> tuple[datetime, int]:
    return event.occurred_at, event.id if event.id is not None else 0


@dataclass(frozen=True)
class RuleTotal:
    """What one rule gave a lead: how often, how many points, and what they weigh now."""

    rule: str
    reason: str
    changes: int
    points: int
    now: float


def breakdown(model: ScoringModel, state: ScoreState, now: datetime) -> tuple[RuleTotal, ...]:
    """The score by rule, heaviest now first; the `now` values add up to the score."""
    half_life = model.half_life_span
    totals: dict[str, RuleTotal] = {}
    for change in state.changes:
        total = totals.get(change.rule) or RuleTotal(change.rule, change.reason, 0, 0, 0.0)
        totals[change.rule] = RuleTotal(
            total.rule,
            total.reason,
            total.changes + 1,
            total.points + change.points,
            total.now + decayed(change.points, change.at, now, half_life),
        )
    found = totals.values()
    return tuple(sorted(found, key=lambda total: -abs(total.now)))


# --- explaining ------------------------------------------------------------------


def grade(model: ScoringModel, lead: LeadProfile) -> Fit:
    """A lead's fit points (every fit rule that holds adds up) and grade."""
    points = 0
    reasons: list[str] = []
    for rule in model.fit_rules:
        if rule.condition.holds(lead):
            points += rule.points
            reasons.append(f"{rule.points:+d} {rule.reason}")
    return Fit(points, model.grades.of(points), tuple(reasons))


def explain(
    model: ScoringModel,
    state: ScoreState,
    fit: Fit,
    now: datetime,
    limit: int | None = None,
) -> list[str]:
    """Why a lead has its score and grade, one line per change and per fit rule.

    With `limit`, only the latest `limit` changes get a line; one line sums up the rest.
    """
    half_life = model.half_life_span
    lines: list[str] = []
    shown = state.changes
    if limit is not None and len(shown) > limit:
        older = shown[: len(shown) - limit]
        shown = shown[len(shown) - limit :]
        weight = sum(decayed(c.points, c.at, now, half_life) for c in older)
        lines.append(f"… {len(older)} earlier changes, worth {weight:.1f} now")
    for change in shown:
        what = change.event + (f" ({change.detail})" if change.detail else "")
        # A change read back without its event name still reads well.
        said = f"{what}: {change.reason}" if change.event else change.reason
        line = f"{change.points:+d} {said} — {change.at:%Y-%m-%d}"
        if change.capped_from is not None:
            line += f" (capped from {change.capped_from:+d})"
        worth = decayed(change.points, change.at, now, half_life)
        if worth != change.points:
            line += f", worth {worth:.1f} now"
        lines.append(line)
    score = whole_points(current_score(model, state.behaviour, now))
    fading = "" if model.half_life is None else f"; points halve every {model.half_life}"
    lines.append(f"= score {score} on {now:%Y-%m-%d}{fading}")
    lines.extend(f"fit {reason}" for reason in fit.reasons)
    lines.append(f"= grade {fit.grade}: {fit.points} fit points ({model.grades.describe()})")
    return lines


# --- lifecycle -------------------------------------------------------------------


@dataclass(frozen=True)
class StageMove:
    """Where scoring moves a lead (`mql`, or `sql`: promotion to sales) and why."""

    stage: str
    cause: str


def stage_for(
    model: ScoringModel,
    score: float,
    grade: str,
    stage: str,
    decisive_event: str | None = None,
) -> StageMove | None:
    """The stage a lead should move to now, or None; stages only move forward.

    Scoring moves leads out of subscriber, lead, mql and recycled only. A decisive
    event promotes at once a lead graded `model.decisive_grade` or better; for a
    lower grade the thresholds decide as for any other event.
    """
    if stage not in MOVABLE_STAGES:
        return None
    points = whole_points(score)
    if decisive_event in model.decisive and grade_at_least(grade, model.decisive_grade):
        return StageMove("sql", f"decisive event {decisive_event} (grade {grade})")
    if model.promote.met(points, grade):
        return StageMove(
            "sql", f"score {points}, grade {grade}: promote at {model.promote.describe()}"
        )
    if stage != "mql" and model.mql.met(points, grade):
        return StageMove("mql", f"score {points}, grade {grade}: mql at {model.mql.describe()}")
    return None
