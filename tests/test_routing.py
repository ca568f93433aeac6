"""Rep routing: the routing file as a sales team writes it, who gets which lead, and what
`validate` says about a wrong file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from textwrap import dedent

import pytest

from nurture.core.profile import LeadProfile, Rep
from nurture.core.routing import (
    Assignment,
    NoRoute,
    RoutingModel,
    RoutingRule,
    SalesRep,
    route,
)
from nurture.core.routing_parser import load_routing, parse_routing, routing_path
from nurture.core.sequences import Audience

ROOT = Path(__file__).resolve().parent.parent
PATH = "sequences/rules/routing.yaml"

JULIEN = "julien.moreau@planifia.example"
SOPHIE = "sophie.lambert@planifia.example"
EMMA = "emma.clarke@planifia.example"
LUC = "luc.tremblay@planifia.example"

REPS = f"""\
reps:
  - {{name: Julien Moreau, email: {JULIEN}, timezone: Europe/Paris, capacity: 3}}
  - {{name: Sophie Lambert, email: {SOPHIE}, timezone: Europe/Brussels, capacity: 2}}
  - {{name: Emma Clarke, email: {EMMA}, timezone: Europe/London, capacity: 2}}
"""


def model_of(text: str) -> RoutingModel:
    result = parse_routing(dedent(text), PATH)
    assert result.model is not None, "\n".join(map(str, result.problems))
    return result.model


def problems_of(text: str) -> list[str]:
    result = parse_routing(dedent(text), PATH)
    assert result.model is None
    return [str(problem) for problem in result.problems]


def lead(**values: object) -> LeadProfile:
    return LeadProfile(email="someone@client.example", **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def example() -> RoutingModel:
    result = load_routing(routing_path(ROOT / "sequences"))
    assert result.problems == ()
    assert result.model is not None
    return result.model


# --- the shipped example -----------------------------------------------------------


def test_the_shipped_file_declares_four_reps_and_four_rules(example: RoutingModel) -> None:
    assert [rep.email for rep in example.reps] == [JULIEN, SOPHIE, EMMA, LUC]
    assert [rule.name for rule in example.rules] == [
        "key accounts",
        "Benelux",
        "Canada",
        "everyone else",
    ]
    julien = example.rep(JULIEN.upper())
    assert julien == SalesRep(
        "Julien Moreau", JULIEN, "Europe/Paris", capacity=3, phone="+33 1 84 00 00 01"
    )
    assert julien.as_rep() == Rep("Julien Moreau", JULIEN, "+33 1 84 00 00 01")


@pytest.mark.parametrize(
    ("profile", "email", "rule"),
    [
        # First match wins: a 2,000-employee Belgian company is a key account.
        (lead(company_size=2000, country="BE"), JULIEN, "key accounts"),
        (lead(company_size=240, country="BE"), SOPHIE, "Benelux"),
        (lead(company_size=80, country="nl"), SOPHIE, "Benelux"),
        (lead(company_size=500, country="CA"), LUC, "Canada"),
        (lead(company_size=240, country="FR"), JULIEN, "everyone else"),
        (lead(), JULIEN, "everyone else"),  # nothing known: still someone's lead
    ],
)
def test_first_matching_rule_chooses_the_rep(
    example: RoutingModel, profile: LeadProfile, email: str, rule: str
) -> None:
    assignment = route(example, profile, {})
    assert (assignment.rep.email, assignment.rule) == (email, rule)


def test_a_named_rep_gets_the_lead_however_loaded(example: RoutingModel) -> None:
    assignment = route(example, lead(country="CA"), {LUC: 40})
    assert assignment == Assignment(example.reps[3], "Canada")


# --- balancing by capacity -------------------------------------------------------------


def assign_many(model: RoutingModel, count: int) -> Counter[str]:
    load: Counter[str] = Counter()
    for _ in range(count):
        load[route(model, lead(country="FR"), load).rep.email] += 1
    return load


def test_seventy_leads_split_by_capacity_three_two_two() -> None:
    model = model_of(
        REPS
        + f"""\
rules:
  - name: the team
    assign: [{JULIEN}, {SOPHIE}, {EMMA}]
"""
    )
    assert assign_many(model, 70) == {JULIEN: 30, SOPHIE: 20, EMMA: 20}


def test_round_robin_spreads_over_every_rep_by_capacity(example: RoutingModel) -> None:
    assert assign_many(example, 80) == {JULIEN: 30, SOPHIE: 20, EMMA: 20, LUC: 10}


@pytest.mark.parametrize(
    ("load", "email"),
    [
        ({}, JULIEN),  # all free: ties go to the first listed
        ({JULIEN: 1}, SOPHIE),  # 1/3 against 0/2
        ({JULIEN: 3, SOPHIE: 2, EMMA: 1}, EMMA),  # 1/1, 1/1, 1/2
        ({JULIEN: 3, SOPHIE: 2, EMMA: 2}, JULIEN),  # all full: the first again
        ({SOPHIE.upper(): 5, EMMA: 5, JULIEN: 6}, JULIEN),  # load emails in any case
        ({"nobody@else.example": 9}, JULIEN),  # load for people not in the file is ignored
    ],
)
def test_the_least_loaded_rep_for_their_capacity_gets_the_lead(
    load: dict[str, int], email: str
) -> None:
    model = model_of(REPS + "rules:\n  - {name: all, assign: round_robin}\n")
    assert route(model, lead(), load).rep.email == email


def test_a_model_without_a_rule_for_everyone_says_so() -> None:
    rep = SalesRep("A", "a@x.example", "UTC")
    model = RoutingModel(
        reps=(rep,), rules=(RoutingRule("CA", (rep,), Audience(countries=frozenset({"CA"}))),)
    )
    with pytest.raises(NoRoute, match=r"someone@client\.example"):
        route(model, lead(country="FR"), {})


def test_conditions_speak_the_sequence_audience_language() -> None:
    model = model_of(
        REPS
        + """\
rules:
  - name: industry
    if: {fields: {industry: [aerospace]}, job_title_contains: [directeur, director]}
    assign: emma.clarke@planifia.example
  - {name: rest, assign: round_robin}
"""
    )
    manager = lead(job_title="Plant Director", fields={"industry": "aerospace"})
    assert route(model, manager, {}).rule == "industry"
    assert (
        route(model, lead(job_title="Buyer", fields={"industry": "aerospace"}), {}).rule == "rest"
    )


# --- what a wrong file gets ------------------------------------------------------------


TWO = (
    "reps:\n"
    "  - {name: A, email: a@x.example, timezone: UTC}\n"
    "  - {name: B, email: b@x.example, timezone: UTC}\n"
)
ALL = "  - {name: all, assign: round_robin}\n"
NEVER = 'this rule is never used: "all" (line 5) already takes every lead'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            TWO + "rules:\n  - {name: x, if: {country: [FR]}, assign: [c@x.example]}\n" + ALL,
            [f"{PATH}:5: rules[1].assign: c@x.example is not one of the reps listed under reps"],
            id="unknown rep in assign",
        ),
        pytest.param(
            TWO + "  - {name: A2, email: A@x.example, timezone: UTC}\nrules:\n" + ALL,
            [f"{PATH}:4: reps[3].email: A@x.example is already a rep (line 2); list each rep once"],
            id="duplicate rep",
        ),
        pytest.param(
            "reps:\n  - {name: A, email: a@x.example, timezone: Europe/Pariss}\nrules:\n" + ALL,
            [
                f'{PATH}:2: reps[1].timezone: unknown time zone "Europe/Pariss";'
                ' expected a name such as "Europe/Paris"'
            ],
            id="bad timezone",
        ),
        pytest.param(
            "reps:\n  - {name: A, email: a@x.example, timezone: UTC, capacity: 0}\nrules:\n" + ALL,
            [
                f"{PATH}:2: reps[1].capacity: expected a whole number above 0, got 0;"
                " to give a rep no leads, leave them out of the rules"
            ],
            id="capacity zero",
        ),
        pytest.param(
            "reps:\n  - {name: A, email: a@x.example, timezone: UTC, capacity: two}\nrules:\n"
            + ALL,
            [f'{PATH}:2: reps[1].capacity: expected a whole number above 0, got "two"'],
            id="capacity not a number",
        ),
        pytest.param(
            "reps:\n  - {name: A, email: nobody, timezone: UTC}\nrules:\n" + ALL,
            [f'{PATH}:2: reps[1].email: expected an email address, got "nobody"'],
            id="bad email",
        ),
        pytest.param(
            "reps:\n  - {name: A, timezone: UTC}\nrules:\n" + ALL,
            [f'{PATH}:2: reps[1]: missing required key "email"'],
            id="rep without email",
        ),
        pytest.param(
            TWO + "rules:\n  - {name: FR, if: {country: [FR]}, assign: round_robin}\n",
            [
                f"{PATH}:4: rules: no rule takes every lead: end with a rule without `if`,"
                " such as {name: everyone else, assign: round_robin}"
            ],
            id="no rule for everyone",
        ),
        pytest.param(
            TWO + "rules:\n" + ALL + "  - {name: FR, if: {country: [FR]}, assign: round_robin}\n",
            [f"{PATH}:6: rules[2]: {NEVER}"],
            id="rule after the catch-all",
        ),
        pytest.param(
            TWO + "rules:\n  - {name: x, if: {industry: [steel]}, assign: round_robin}\n" + ALL,
            [
                f"{PATH}:5: rules[1].if.industry: unknown key; allowed keys here: country,"
                " company_size, job_title_contains, source, locale, stage, fields"
            ],
            id="unknown condition key",
        ),
        pytest.param(
            TWO + "rules:\n  - name: big\n    if: {company_size: {min: lots}}\n"
            "    assign: round_robin\n" + ALL,
            [f'{PATH}:6: rules[1].if.company_size.min: expected a whole number, got "lots"'],
            id="bad company size",
        ),
        pytest.param(
            TWO + "rules:\n  - {name: x, if: {country: [France]}, assign: round_robin}\n" + ALL,
            [
                f"{PATH}:5: rules[1].if.country:"
                ' expected a two-letter country code such as "FR", got "France"'
            ],
            id="bad country",
        ),
        pytest.param(
            TWO + "rules:\n" + ALL + "  - {name: all, if: {country: [FR]}, assign: round_robin}\n",
            [
                f'{PATH}:6: rules[2].name: duplicate rule name "all" (first used at line 5)',
                f"{PATH}:6: rules[2]: {NEVER}",
            ],
            id="duplicate rule name",
        ),
        pytest.param(
            TWO + "rules:\n  - {name: all, assign: [round_robin]}\n",
            [f"{PATH}:5: rules[1].assign: round_robin stands alone, not in a list"],
            id="round_robin inside a list",
        ),
        pytest.param(
            TWO + "rules:\n  - {name: all, assign: [b@x.example, b@x.example]}\n",
            [f"{PATH}:5: rules[1].assign: b@x.example is listed twice"],
            id="rep listed twice",
        ),
        pytest.param(
            TWO + "rules:\n  - {name: all}\n",
            [f'{PATH}:5: rules[1]: missing required key "assign"'],
            id="rule without assign",
        ),
        pytest.param(
            TWO + "rules:\n" + ALL + "owners: []\n",
            [f"{PATH}:6: owners: unknown key; allowed keys here: reps, rules"],
            id="unknown top key",
        ),
        pytest.param("rules:\n" + ALL, [f'{PATH}:1: missing required key "reps"'], id="no reps"),
        pytest.param("", [f"{PATH}:1: the file is empty; it needs reps and rules"], id="empty"),
        pytest.param(
            "reps: [\n",
            [f"{PATH}:2: YAML syntax error: expected the node content, but found '<stream end>'"],
            id="YAML syntax error",
        ),
    ],
)
def test_a_wrong_file_gets_located_messages(text: str, expected: list[str]) -> None:
    assert problems_of(text) == expected


def test_a_broken_rep_is_reported_once_not_again_in_each_rule() -> None:
    text = (
        "reps:\n  - {name: A, email: a@x.example, timezone: Mars/Olympus}\n"
        "rules:\n  - {name: all, assign: [a@x.example]}\n"
    )
    assert problems_of(text) == [
        f'{PATH}:2: reps[1].timezone: unknown time zone "Mars/Olympus";'
        ' expected a name such as "Europe/Paris"'
    ]


def test_every_mistake_of_a_file_is_reported_at_once_in_line_order() -> None:
    text = """\
reps:
  - {name: A, email: a@x.example, timezone: Nowhere/City}
  - {name: B, email: b@x.example, timezone: UTC, capacity: -1}
rules:
  - {name: x, if: {country: [FR]}, assign: [c@x.example]}
"""
    assert [line.split(": ", 1)[0] for line in problems_of(text)] == [
        f"{PATH}:2",
        f"{PATH}:3",
        f"{PATH}:4",
        f"{PATH}:5",
    ]


def test_no_routing_file_means_no_routing(tmp_path: Path) -> None:
    result = load_routing(routing_path(tmp_path))
    assert (result.model, result.problems) == (None, ())


def test_a_file_that_is_not_utf8_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "routing.yaml"
    path.write_bytes("reps: [caf\xe9]".encode("latin-1"))
    result = load_routing(path)
    assert result.model is None
    assert str(result.problems[0]).startswith(f"{path}:1: the file is not UTF-8")
