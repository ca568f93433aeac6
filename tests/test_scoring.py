"""Scoring: fit grades, behaviour points with caps and decay, explanations, stages."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from textwrap import dedent
from types import MappingProxyType

import pytest

from nurture.core.profile import SAMPLE_LEAD, LeadProfile
from nurture.core.scoring import (
    Behaviour,
    ScoreChange,
    Scored,
    ScoringModel,
    breakdown,
    current_score,
    decayed,
    explain,
    grade,
    match_rule,
    replay,
    score_event,
    stage_for,
    whole_points,
)
from nurture.core.scoring_parser import parse_scoring

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DAY = timedelta(days=1)

MODEL_TEXT = """
fit:
  rules:
    - if: {country: [FR, BE, CH, CA, GB]}
      points: 10
      reason: target country
    - if: {company_size: {min: 50, max: 5000}}
      points: 15
      reason: 50 to 5000 employees
    - if: {job_title_contains: [directeur, directrice, head]}
      points: 10
      reason: decision maker
    - if: {fields: {industry: [manufacturing]}}
      points: 10
    - if: {tags: [competitor]}
      points: -40
      reason: competitor
    - if: {fields: {sites: {min: 3}}, source: [referral]}
      points: 5
      reason: multi-site referral
  grades: {A: 40, B: 25, C: 10}
behaviour:
  half_life: 30 days
  rules:
    - on: demo_requested
      points: 40
      reason: asked for a demo
    - on: email_clicked
      where: {kind: [comparison, market_study]}
      points: 10
      cap: {points: 30, per: 30 days}
      reason: clicked a decision-stage email
    - on: email_clicked
      points: 5
      cap: {points: 20, per: 30 days}
      reason: clicked an email
    - on: email_opened
      points: 1
      cap: {points: 3, per: 30 days}
      reason: opened an email
    - on: page_visited
      where: {path: [/pricing]}
      points: 10
      cap: {points: 15, per: 7 days}
      reason: looked at pricing
    - on: form_submitted
      where: {form: [whitepaper-planning-roi]}
      points: 15
      reason: downloaded the ROI white paper
    - on: webinar_attended
      points: 20
      count: [human, unknown]
      reason: attended a webinar
    - on: unsubscribed
      points: -50
      reason: unsubscribed
    - on: bounced
      points: -100
      reason: the address bounced
lifecycle:
  mql: {score: 40, grade: C}
  promote: {score: 80, grade: B}
  decisive: [demo_requested]
"""


def model_from(text: str) -> ScoringModel:
    result = parse_scoring(dedent(text).lstrip("\n"), "rules/scoring.yaml")
    assert result.problems == (), "\n".join(map(str, result.problems))
    assert result.model is not None
    return result.model


MODEL = model_from(MODEL_TEXT)
NO_DECAY = model_from(MODEL_TEXT.replace("  half_life: 30 days\n", ""))


def at(days: float) -> datetime:
    return START + timedelta(days=days)


def click(days: float, kind: str = "testimonial", who: str | None = "human") -> Scored:
    return Scored("email_clicked", at(days), {"kind": kind}, classification=who)


def visit(days: float, path: str = "/pricing") -> Scored:
    return Scored("page_visited", at(days), {"path": path})


def points_of(model: ScoringModel, events: list[Scored]) -> list[int]:
    return [change.points for change in replay(model, events).changes]


# --- fit -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "points", "grade_"),
    [
        ({}, 45, "A"),  # FR, 240 people, Directrice, manufacturing
        ({"fields": MappingProxyType({})}, 35, "B"),
        ({"fields": MappingProxyType({}), "job_title": "Acheteuse"}, 25, "B"),
        ({"fields": MappingProxyType({}), "job_title": None, "company_size": 20}, 10, "C"),
        ({"fields": MappingProxyType({}), "country": "US", "company_size": 20}, 10, "C"),
        ({"country": "US", "company_size": 10, "job_title": "Buyer", "fields": {}}, 0, "D"),
        ({"country": "fr"}, 45, "A"),  # codes compare in upper case
        ({"job_title": "HEAD of Operations"}, 45, "A"),  # words ignore case
        ({"tags": frozenset({"Competitor"})}, 5, "D"),  # negative fit
        ({"source": "referral", "fields": {"industry": "manufacturing", "sites": 4}}, 50, "A"),
        ({"source": "referral", "fields": {"industry": "manufacturing", "sites": "2"}}, 45, "A"),
    ],
)
def test_fit_points_add_up_to_a_grade(changes: dict[str, object], points: int, grade_: str) -> None:
    lead = replace(SAMPLE_LEAD, **changes)  # type: ignore[arg-type]
    fit = grade(MODEL, lead)
    assert (fit.points, fit.grade) == (points, grade_)


def test_fit_reasons_name_every_rule_that_held() -> None:
    fit = grade(MODEL, SAMPLE_LEAD)
    assert fit.reasons == (
        "+10 target country",
        "+15 50 to 5000 employees",
        "+10 decision maker",
        "+10 industry manufacturing",  # no reason given: the condition in words
    )


@pytest.mark.parametrize(
    ("points", "expected"),
    [(100, "A"), (40, "A"), (39, "B"), (25, "B"), (24, "C"), (10, "C"), (9, "D"), (-30, "D")],
)
def test_grade_thresholds_are_minimums(points: int, expected: str) -> None:
    assert MODEL.grades.of(points) == expected


def test_a_lead_with_nothing_known_is_graded_d() -> None:
    assert grade(MODEL, LeadProfile(email="x@example.com")).grade == "D"


# --- decay -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("points", "idle_days", "expected"),
    [
        (40, 0, 40.0),
        (40, 30, 20.0),
        (40, 60, 10.0),
        (40, 90, 5.0),
        (40, 15, 28.2843),  # 40 / √2
        (-50, 30, -25.0),
        (0, 30, 0.0),
    ],
)
def test_points_halve_every_half_life(points: float, idle_days: int, expected: float) -> None:
    half_life = timedelta(days=30)
    assert decayed(points, START, at(idle_days), half_life) == pytest.approx(expected, abs=1e-4)


def test_points_never_grow_back_in_time_nor_fade_without_half_life() -> None:
    assert decayed(40, at(10), at(5), timedelta(days=30)) == 40
    assert decayed(40, START, at(3650), None) == 40


def test_the_score_fades_from_the_last_change() -> None:
    state = replay(MODEL, [Scored("webinar_attended", at(0)), Scored("webinar_attended", at(30))])
    # 20 decays to 10 by day 30, then 20 more: 30 at day 30, 15 at day 60.
    assert state.behaviour == Behaviour(30.0, at(30))
    assert current_score(MODEL, state.behaviour, at(60)) == pytest.approx(15.0)
    lasting = replay(NO_DECAY, [Scored("webinar_attended", at(0))]).behaviour
    assert current_score(NO_DECAY, lasting, at(400)) == 20


def test_scores_are_shown_rounded_half_up() -> None:
    assert [whole_points(x) for x in (39.5, 39.49, -0.4, -0.5, 80.0)] == [40, 39, 0, 0, 80]


# --- caps ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        ([0, 1, 2], [10, 5]),  # 15 per 7 days: the second visit is cut to 5, the third gets 0
        ([0, 6.9, 7], [10, 5, 10]),  # at day 7 the first visit has left the window
        ([0, 1, 7.5, 8.5], [10, 5, 10, 5]),
        ([0, 3, 6, 9, 12, 15], [10, 5, 10, 5]),  # day 6 and day 15: 0
    ],
)
def test_a_cap_limits_a_rules_points_over_a_sliding_window(
    days: list[float], expected: list[int]
) -> None:
    assert points_of(NO_DECAY, [visit(d) for d in days]) == expected


def test_a_cut_change_says_it_was_capped() -> None:
    changes = replay(NO_DECAY, [visit(0), visit(1)]).changes
    assert [c.capped_from for c in changes] == [None, 10]


def test_caps_count_each_rule_apart() -> None:
    events = [click(d / 10, "comparison") for d in range(5)] + [click(1 + d / 10) for d in range(5)]
    # 3 decision-stage clicks fill their cap of 30; 4 ordinary ones fill theirs of 20.
    assert points_of(NO_DECAY, events) == [10, 10, 10, 5, 5, 5, 5]


def test_a_rule_whose_cap_is_used_up_does_not_hand_the_event_to_the_next_rule() -> None:
    events = [click(d, "comparison") for d in range(4)]
    state = replay(NO_DECAY, events)
    assert [c.rule for c in state.changes] == ["email_clicked[kind=comparison,market_study]"] * 3


def test_opens_never_weigh_like_a_click() -> None:
    opens = [Scored("email_opened", at(d), classification="human") for d in range(20)]
    assert sum(points_of(NO_DECAY, opens)) == 3


# --- what counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event", "scored"),
    [
        (click(0, who="human"), 5),
        (click(0, who="scanner"), 0),
        (click(0, who="unknown"), 0),
        (click(0, who=None), 0),  # an unclassified click is unknown
        (Scored("email_clicked", at(0), {"classification": "human"}), 5),  # as a property
        (Scored("email_opened", at(0), classification="machine_open"), 0),
        (Scored("email_opened", at(0), classification="human"), 1),
        (
            Scored("webinar_attended", at(0), classification="unknown"),
            20,
        ),  # count: [human, unknown]
        (Scored("webinar_attended", at(0), classification="scanner"), 0),
        (Scored("demo_requested", at(0)), 40),  # events other than opens and clicks are people's
        (Scored("page_visited", at(0), {"path": "/about"}), 0),  # no rule
        (Scored("form_submitted", at(0), {"form": "WhitePaper-Planning-ROI"}), 15),  # any case
    ],
)
def test_only_human_signals_score_by_default(event: Scored, scored: int) -> None:
    assert sum(points_of(MODEL, [event])) == scored


def test_the_first_matching_rule_wins() -> None:
    rule = match_rule(MODEL, click(0, "market_study"))
    assert rule is not None and rule.points == 10
    rule = match_rule(MODEL, click(0, "guide"))
    assert rule is not None and rule.points == 5


def test_negative_signals_take_points_away() -> None:
    events = [
        Scored("webinar_attended", at(0)),
        click(0.5, "comparison"),
        Scored("unsubscribed", at(1)),
    ]
    state = replay(NO_DECAY, events)
    assert current_score(NO_DECAY, state.behaviour, at(2)) == -20
    bounced = replay(NO_DECAY, [*events, Scored("bounced", at(3))])
    assert bounced.changes[-1].score_after == -120


def test_an_event_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="aware"):
        Scored("email_clicked", datetime(2026, 3, 2, 10, 0))


# --- replay and incremental scoring ---------------------------------------------------------


def _random_events(seed: int, count: int) -> list[Scored]:
    rng = random.Random(seed)
    names = [
        ("email_clicked", {"kind": "comparison"}),
        ("email_clicked", {"kind": "guide"}),
        ("email_opened", {}),
        ("page_visited", {"path": "/pricing"}),
        ("page_visited", {"path": "/blog"}),
        ("webinar_attended", {}),
        ("form_submitted", {"form": "whitepaper-planning-roi"}),
        ("unsubscribed", {}),
    ]
    moment = START
    events = []
    for number in range(count):
        moment += timedelta(hours=rng.choice([0, 1, 5, 30, 200, 900]))
        name, properties = rng.choice(names)
        who = rng.choice(["human", "human", "machine_open", "scanner", "unknown"])
        events.append(Scored(name, moment, properties, id=number, classification=who))
    return events


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_equals_scoring_event_by_event(seed: int) -> None:
    events = _random_events(seed, 400)
    behaviour = Behaviour()
    changes: list[ScoreChange] = []
    for event in events:
        behaviour, change = score_event(MODEL, behaviour, event, changes)
        if change is not None:
            changes.append(change)
    state = replay(MODEL, reversed(events))  # replay puts the log in time order itself
    assert state.changes == tuple(changes)
    assert state.behaviour == behaviour
    assert state.version == MODEL.version


def test_score_event_needs_only_the_changes_within_the_longest_cap() -> None:
    events = _random_events(4, 300)
    lookback = MODEL.cap_lookback
    assert lookback == timedelta(days=30)
    behaviour = Behaviour()
    changes: list[ScoreChange] = []
    for event in events:
        recent = [c for c in changes if c.at > event.occurred_at - lookback]
        behaviour, change = score_event(MODEL, behaviour, event, recent)
        if change is not None:
            changes.append(change)
    assert tuple(changes) == replay(MODEL, events).changes


def test_a_late_event_adds_what_it_would_have_added_in_order() -> None:
    behaviour, _ = score_event(MODEL, Behaviour(), Scored("webinar_attended", at(30)))
    behaviour, change = score_event(MODEL, behaviour, Scored("demo_requested", at(0)))
    assert change is not None and change.points == 40
    in_order = replay(MODEL, [Scored("demo_requested", at(0)), Scored("webinar_attended", at(30))])
    assert behaviour.last_activity == at(30)
    assert behaviour.points == pytest.approx(in_order.behaviour.points)  # 40/2 + 20


def test_the_breakdown_by_rule_adds_up_to_the_score() -> None:
    events = _random_events(5, 200)
    state = replay(MODEL, events)
    now = events[-1].occurred_at + 10 * DAY
    totals = breakdown(MODEL, state, now)
    assert sum(t.now for t in totals) == pytest.approx(current_score(MODEL, state.behaviour, now))
    assert sum(t.changes for t in totals) == len(state.changes)
    assert [abs(t.now) for t in totals] == sorted((abs(t.now) for t in totals), reverse=True)


# --- explaining ---------------------------------------------------------------------------


def test_explain_says_why_the_score_and_the_grade() -> None:
    events = [
        Scored("form_submitted", at(0), {"form": "whitepaper-planning-roi"}, id=1),
        Scored("email_opened", at(1), {"kind": "testimonial"}, classification="machine_open"),
        click(1, "testimonial"),
        visit(2),
        visit(3),
    ]
    state = replay(MODEL, events)
    lines = explain(MODEL, state, grade(MODEL, SAMPLE_LEAD), at(30))
    assert lines == [
        "+15 form_submitted (whitepaper-planning-roi): downloaded the ROI white paper"
        " — 2026-03-02, worth 7.5 now",
        "+5 email_clicked (testimonial): clicked an email — 2026-03-03, worth 2.6 now",
        "+10 page_visited (/pricing): looked at pricing — 2026-03-04, worth 5.2 now",
        "+5 page_visited (/pricing): looked at pricing — 2026-03-05 (capped from +10),"
        " worth 2.7 now",
        "= score 18 on 2026-04-01; points halve every 30 days",
        "fit +10 target country",
        "fit +15 50 to 5000 employees",
        "fit +10 decision maker",
        "fit +10 industry manufacturing",
        "= grade A: 45 fit points (A from 40, B from 25, C from 10)",
    ]
    assert state.changes[0].event_id == 1


def test_explain_sums_up_older_changes_past_a_limit() -> None:
    state = replay(NO_DECAY, [click(d) for d in range(4)] + [visit(5)])
    lines = explain(NO_DECAY, state, grade(NO_DECAY, SAMPLE_LEAD), at(6), limit=2)
    assert lines[:3] == [
        "… 3 earlier changes, worth 15.0 now",
        "+5 email_clicked (testimonial): clicked an email — 2026-03-05",
        "+10 page_visited (/pricing): looked at pricing — 2026-03-07",
    ]
    assert lines[3] == "= score 30 on 2026-03-08"


# --- stages --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "grade_", "stage", "event", "expected"),
    [
        (39.4, "A", "lead", None, None),
        (39.5, "A", "lead", None, "mql"),  # compared as shown: 40
        (40, "C", "subscriber", None, "mql"),
        (40, "D", "lead", None, None),  # out of target: never mql on points
        (79, "A", "mql", None, None),  # already mql
        (80, "B", "mql", None, "sql"),
        (80, "C", "mql", None, None),  # promotion asks for B
        (95, "A", "lead", None, "sql"),  # straight to sales
        (95, "A", "recycled", None, "sql"),  # a recycled lead can be promoted again
        (45, "B", "recycled", None, "mql"),
        (0, "C", "lead", "demo_requested", "sql"),  # a hand-raiser goes at once
        (0, "D", "lead", "demo_requested", None),  # ... unless out of target
        (0, "A", "lead", "webinar_attended", None),  # not decisive
        (200, "A", "sql", "demo_requested", None),  # only forward, never from sql on
        (200, "A", "opportunity", None, None),
        (200, "A", "customer", "demo_requested", None),
        (200, "A", "disqualified", "demo_requested", None),
    ],
)
def test_stages_only_move_forward(
    score: float, grade_: str, stage: str, event: str | None, expected: str | None
) -> None:
    move = stage_for(MODEL, score, grade_, stage, event)
    assert (move.stage if move else None) == expected


def test_a_stage_move_gives_its_cause() -> None:
    causes = [
        stage_for(MODEL, 81.2, "A", "lead"),
        stage_for(MODEL, 41, "C", "lead"),
        stage_for(MODEL, 3, "B", "mql", "demo_requested"),
    ]
    assert [move.cause if move else None for move in causes] == [
        "score 81, grade A: promote at score 80, grade B",
        "score 41, grade C: mql at score 40, grade C",
        "decisive event demo_requested (grade B)",
    ]


def test_a_change_without_its_event_name_still_explains_itself() -> None:
    change = ScoreChange(10, "pricing", "looked at pricing (/fr/tarifs)", at(2), event="")
    state = replay(NO_DECAY, [])
    state = replace(state, changes=(change,))
    line = explain(NO_DECAY, state, grade(NO_DECAY, SAMPLE_LEAD), at(3))[0]
    assert line == "+10 looked at pricing (/fr/tarifs) — 2026-03-04"
