"""The scoring file: what a marketer writes, what scoring gets, what `validate` says."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from nurture.core.profile import SAMPLE_LEAD
from nurture.core.scoring import Cap, Thresholds, grade
from nurture.core.scoring_parser import SCORING_FILE, load_scoring, parse_scoring
from nurture.core.sequences import Duration, IntRange

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "sequences" / SCORING_FILE
PATH = "rules/scoring.yaml"

BASE = """\
fit:
  rules:
    - if: {country: [FR, BE]}
      points: 10
      reason: target country
  grades: {A: 40, B: 25, C: 10}
behaviour:
  half_life: 30 days
  rules:
    - on: email_clicked
      points: 5
      cap: {points: 20, per: 30 days}
lifecycle:
  mql: {score: 40, grade: C}
  promote: {score: 80, grade: B}
  decisive: [demo_requested]
"""


def problems_after(old: str, new: str) -> list[str]:
    assert old in BASE, old
    result = parse_scoring(BASE.replace(old, new, 1), PATH)
    assert (result.model is None) == bool(result.problems)
    return [str(problem) for problem in result.problems]


# --- the shipped file -------------------------------------------------------------------


def test_the_shipped_scoring_file_loads_without_problems() -> None:
    result = load_scoring(SHIPPED)
    assert result.problems == ()
    model = result.model
    assert model is not None
    assert model.path == str(SHIPPED)
    assert model.half_life == Duration(30, "days")
    assert (model.mql, model.promote) == (Thresholds(40, "C"), Thresholds(80, "B"))
    assert model.decisive == ("demo_requested", "pricing_form_submitted", "workshop_booked")
    assert grade(model, SAMPLE_LEAD).grade == "A"
    events = {rule.event for rule in model.behaviour_rules}
    assert {"email_clicked", "email_opened", "form_submitted", "page_visited"} <= events
    assert {"webinar_attended", "unsubscribed", "bounced", "demo_requested"} <= events


def test_the_example_file_reads_as_written() -> None:
    result = parse_scoring(BASE, PATH)
    model = result.model
    assert model is not None
    (fit_rule,) = model.fit_rules
    assert (fit_rule.condition.countries, fit_rule.points, fit_rule.reason, fit_rule.line) == (
        frozenset({"FR", "BE"}),
        10,
        "target country",
        3,
    )
    (rule,) = model.behaviour_rules
    assert (rule.id, rule.event, rule.points, rule.count) == (
        "email_clicked",
        "email_clicked",
        5,
        frozenset({"human"}),
    )
    assert rule.cap == Cap(20, Duration(30, "days"))
    assert rule.reason == "email_clicked"  # none given: the rule in words
    assert model.cap_lookback == timedelta(days=30)
    assert model.decisive_grade == "C"


def test_every_fit_condition_and_rule_option_is_read() -> None:
    text = BASE.replace(
        "    - if: {country: [FR, BE]}\n",
        "    - if:\n"
        "        company_size: {min: 50}\n"
        "        job_title_contains: [Directrice, HEAD]\n"
        "        source: Webinar\n"
        "        campaign: [spring-2026]\n"
        "        locale: [fr]\n"
        "        stage: [lead, recycled]\n"
        "        tags: [evaluation]\n"
        "        fields: {industry: [Manufacturing], sites: {max: 9}}\n",
    ).replace(
        "    - on: email_clicked\n",
        "    - on: page_visited\n"
        "      id: pricing\n"
        "      where: {path: [/Pricing, /fr/tarifs]}\n"
        "      count: [human, unknown]\n"
        "      points: 10\n"
        "      reason: looked at pricing\n"
        "    - on: email_clicked\n",
    )
    result = parse_scoring(text, PATH)
    assert result.problems == ()
    assert result.model is not None
    condition = result.model.fit_rules[0].condition
    assert condition.company_size == IntRange(50, None)
    assert condition.job_title_contains == ("directrice", "head")
    assert (condition.sources, condition.campaigns, condition.locales) == (
        frozenset({"webinar"}),
        frozenset({"spring-2026"}),
        frozenset({"fr"}),
    )
    assert condition.stages == frozenset({"lead", "recycled"})
    assert condition.tags == frozenset({"evaluation"})
    assert [(f.field, f.values, f.range) for f in condition.fields] == [
        ("industry", frozenset({"manufacturing"}), None),
        ("sites", frozenset(), IntRange(None, 9)),
    ]
    pricing = result.model.behaviour_rules[0]
    assert (pricing.id, dict(pricing.where), pricing.count, pricing.reason) == (
        "pricing",
        {"path": frozenset({"/pricing", "/fr/tarifs"})},
        frozenset({"human", "unknown"}),
        "looked at pricing",
    )


def test_decisive_events_may_carry_their_own_grade() -> None:
    result = parse_scoring(
        BASE.replace(
            "decisive: [demo_requested]",
            "decisive:\n    events: [demo_requested, pricing_form_submitted]\n    grade: B",
        ),
        PATH,
    )
    assert result.model is not None
    assert result.model.decisive == ("demo_requested", "pricing_form_submitted")
    assert result.model.decisive_grade == "B"


def test_without_a_half_life_points_never_fade() -> None:
    result = parse_scoring(BASE.replace("  half_life: 30 days\n", ""), PATH)
    assert result.model is not None
    assert result.model.half_life is None


def test_the_version_is_the_hash_of_the_content() -> None:
    first = parse_scoring(BASE, PATH).model
    again = parse_scoring(BASE, "elsewhere.yaml").model
    edited = parse_scoring(BASE.replace("points: 10", "points: 12"), PATH).model
    assert first is not None and again is not None and edited is not None
    assert len(first.version) == 16
    assert first.version == again.version != edited.version


def test_made_up_rule_ids_name_the_event_and_its_conditions() -> None:
    result = parse_scoring(
        BASE.replace(
            "    - on: email_clicked\n",
            "    - on: email_clicked\n"
            "      where: {kind: [market_study, comparison]}\n"
            "      points: 10\n"
            "    - on: email_clicked\n",
        ),
        PATH,
    )
    assert result.model is not None
    assert [rule.id for rule in result.model.behaviour_rules] == [
        "email_clicked[kind=comparison,market_study]",
        "email_clicked",
    ]
    assert result.model.behaviour_rules[0].reason == (
        "email_clicked with kind comparison or market_study"
    )


# --- problems ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "lifecycle:\n",
            "lifecycle:\n  stage: x\n",
            "14: lifecycle.stage: unknown key; allowed keys here: mql, promote, decisive, account",
        ),
        (
            "lifecycle:\n  mql: {score: 40, grade: C}\n  promote: {score: 80, grade: B}\n"
            "  decisive: [demo_requested]\n",
            "",
            '1: missing required key "lifecycle"',
        ),
        (
            "      points: 10\n",
            "      points: ten\n",
            "4: fit.rules[1].points: expected a whole number of points,"
            ' such as 10 or -20, got "ten"',
        ),
        (
            "      points: 10\n",
            "      points: 0\n",
            "4: fit.rules[1].points: 0 points changes nothing; remove the rule or give points",
        ),
        (
            "      points: 5\n",
            "      points: 0\n",
            "11: behaviour.rules[1].points: 0 points changes nothing;"
            " remove the rule or give points",
        ),
        (
            "half_life: 30 days",
            "half_life: 30 dayz",
            "8: behaviour.half_life: expected a duration such as"
            ' "2 days", "1 week" or "3 business days", got \'30 dayz\'',
        ),
        (
            "half_life: 30 days",
            "half_life: 3 business days",
            '8: behaviour.half_life: "3 business days" has no fixed length;'
            " use minutes, hours, days or weeks",
        ),
        (
            "{country: [FR, BE]}",
            "{stage: [prospect]}",
            '3: fit.rules[1].if.stage: unknown stage "prospect"; stages are subscriber, lead,'
            " mql, sql, opportunity, customer, disqualified, recycled",
        ),
        (
            "{country: [FR, BE]}",
            "{industry: [manufacturing]}",
            "3: fit.rules[1].if.industry: unknown key; allowed keys here: country, company_size,"
            " job_title_contains, source, campaign, locale, stage, tags, fields",
        ),
        (
            "{country: [FR, BE]}",
            "{country: [France]}",
            '3: fit.rules[1].if.country: expected a two-letter country code such as "FR",'
            ' got "France"',
        ),
        (
            "{country: [FR, BE]}",
            "{}",
            "3: fit.rules[1].if: expected a condition on the lead, with any of country,"
            " company_size, job_title_contains, source, campaign, locale, stage, tags, fields",
        ),
        (
            "{country: [FR, BE]}",
            "{company_size: {min: 500, max: 50}}",
            "3: fit.rules[1].if.company_size: min (500) is greater than max (50)",
        ),
        (
            "{country: [FR, BE]}",
            "{fields: {industry: []}}",
            "3: fit.rules[1].if.fields.industry: expected a text or a list of texts,"
            " got an empty list",
        ),
        (
            "{A: 40, B: 25, C: 10}",
            "{A: 20, B: 25, C: 10}",
            "6: fit.grades: A (20) must need more points than B (25), and B more than C (10)",
        ),
        (
            "{A: 40, B: 25, C: 10}",
            "{A: 40, B: 25, C: 10, D: 0}",
            "6: fit.grades.D: D needs no threshold: it is every lead below C",
        ),
        ("{A: 40, B: 25, C: 10}", "{A: 40, B: 25}", '6: fit.grades: missing required key "C"'),
        (
            "grade: C}",
            "grade: E}",
            '14: lifecycle.mql.grade: unknown grade "E"; grades are A, B, C and D',
        ),
        (
            "cap: {points: 20, per: 30 days}",
            "cap: {points: 20}",
            '12: behaviour.rules[1].cap: missing required key "per"',
        ),
        (
            "cap: {points: 20, per: 30 days}",
            "cap: {points: 3, per: 30 days}",
            "12: behaviour.rules[1].cap.points: the cap (3) is below the rule's points (5):"
            " the rule could never give them",
        ),
        (
            "      points: 5\n",
            "      points: -5\n",
            "12: behaviour.rules[1].cap: only rules that give points have a cap",
        ),
        (
            "cap: {points: 20, per: 30 days}",
            "cap: {points: 20, per: 30 days}\n      count: [human, robot]",
            '13: behaviour.rules[1].count: unknown classification "robot";'
            " expected any of human, machine_open, scanner, unknown",
        ),
        (
            "    - on: email_clicked\n",
            "    - on: Email Clicked\n",
            "10: behaviour.rules[1].on: expected an event name such as form_submitted"
            ' (a-z, 0-9 and _), got "Email Clicked"',
        ),
        (
            "    - on: email_clicked\n",
            "    - on: email_clicked\n      where: {}\n",
            "11: behaviour.rules[1].where: expected event properties and their values,"
            " as in {form: [whitepaper-planning-roi]}",
        ),
        (
            "    - on: email_clicked\n",
            "    - on: email_clicked\n      points: 1\n"
            "    - on: email_clicked\n      where: {kind: [comparison]}\n",
            "12: behaviour.rules[2]: this rule never applies: the rule at line 10 comes first"
            " and takes every email_clicked event it would match; put the more specific rule"
            " first",
        ),
        (
            "    - on: email_clicked\n",
            "    - on: email_clicked\n      id: clicks\n      where: {kind: [guide]}\n"
            "      points: 1\n    - id: clicks\n      on: email_clicked\n",
            '14: behaviour.rules[2]: this rule and the rule at line 10 are both named "clicks";'
            " give one of them an id",
        ),
        (
            "promote: {score: 80, grade: B}",
            "promote: {score: 30, grade: B}",
            "15: lifecycle.promote: promote (score 30, grade B) must ask at least as much as mql"
            " (score 40, grade C)",
        ),
        (
            "promote: {score: 80, grade: B}",
            "promote: {score: 80, grade: D}",
            "15: lifecycle.promote: promote (score 80) must ask at least as much as mql"
            " (score 40, grade C)",
        ),
        (
            "mql: {score: 40, grade: C}",
            "mql: {score: 0, grade: C}",
            "14: lifecycle.mql.score: expected a score above 0",
        ),
        (
            "decisive: [demo_requested]",
            "decisive: {events: [demo_requested], grade: Z}",
            '16: lifecycle.decisive.grade: unknown grade "Z"; grades are A, B, C and D',
        ),
        (
            "decisive: [demo_requested]",
            "decisive: {grade: C}",
            '16: lifecycle.decisive: missing required key "events"',
        ),
        (
            "decisive: [demo_requested]",
            "decisive: [demo_requested]\n  account: {engaged_contacts: 1}",
            "17: lifecycle.account.engaged_contacts: expected 2 contacts or more (1 is a single"
            " lead's matter: use promote)",
        ),
        (
            "decisive: [demo_requested]",
            "decisive: [demo_requested]\n  account: {engaged_contacts: 3, within: 2 business days}",
            '17: lifecycle.account.within: "2 business days" has no fixed length; use minutes,'
            " hours, days or weeks",
        ),
        (
            "decisive: [demo_requested]",
            "decisive: [demo_requested]\n  account: {within: 30 days}",
            '17: lifecycle.account: missing required key "engaged_contacts"',
        ),
        (
            "decisive: [demo_requested]",
            "decisive: [demo_requested]\n  account: {engaged_contacts: 3, on: [Clicked]}",
            "17: lifecycle.account.on: expected an event name such as form_submitted (a-z, 0-9"
            ' and _), got "Clicked"',
        ),
        (
            "fit:\n",
            "fit: [\n",
            "3: YAML syntax error: expected the node content, but found '-'",
        ),
    ],
)
def test_problems_are_reported_with_file_and_line(old: str, new: str, expected: str) -> None:
    assert problems_after(old, new) == [f"{PATH}:{expected}"]


def test_an_account_rule_is_read_with_its_defaults() -> None:
    text = BASE.replace(
        "decisive: [demo_requested]",
        "decisive: [demo_requested]\n"
        "  account: {engaged_contacts: 3, on: [email_clicked, form_submitted]}",
    )
    model = parse_scoring(text, PATH).model
    assert model is not None and model.account is not None
    rule = model.account
    assert (rule.engaged_contacts, str(rule.within), rule.events, rule.grade) == (
        3, "30 days", ("email_clicked", "form_submitted"), "D",
    )  # fmt: skip
    assert rule.reason(4) == "account: 4 contacts engaged in 30 days"


def test_every_problem_of_a_file_is_reported_at_once() -> None:
    text = (
        BASE.replace("points: 10", "points: 0")
        .replace("half_life: 30 days", "half_life: soon")
        .replace("grade: B}", "grade: best}")
    )
    lines = [problem.line for problem in parse_scoring(text, PATH).problems]
    assert lines == [4, 8, 15]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", f"{PATH}:1: the file is empty; it needs fit, behaviour and lifecycle"),
        ("- fit\n", f"{PATH}:1: expected a mapping with fit, behaviour and lifecycle, got a list"),
    ],
)
def test_a_file_without_the_three_parts_is_refused(text: str, expected: str) -> None:
    assert [str(p) for p in parse_scoring(text, PATH).problems] == [expected]


def test_missing_and_unreadable_files_are_problems(tmp_path: Path) -> None:
    missing = load_scoring(tmp_path / "scoring.yaml")
    assert missing.model is None
    assert "cannot read the file" in str(missing.problems[0])
    latin = tmp_path / "latin.yaml"
    latin.write_bytes("fit: {}\n# Planifié\n".encode("latin-1"))
    assert "not UTF-8" in str(load_scoring(latin).problems[0])
