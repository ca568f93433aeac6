"""The qualification file: what the shipped example says, what a marketer may write,
and what `validate` reports, located by file and line, when the file is wrong."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent
from types import MappingProxyType

import pytest

from nurture.core.problems import Problem
from nurture.core.qualification import (
    FREE_MAIL_DOMAINS,
    LONG_TERM_NURTURE,
    ROLE_ADDRESSES,
    SALES_READY,
    CategoryRule,
    Disqualifier,
    QualificationModel,
)
from nurture.core.qualification_parser import (
    QualificationResult,
    load_qualification,
    parse_qualification,
    qualification_path,
)
from nurture.core.sequences import Audience, IntRange

ROOT = Path(__file__).resolve().parent.parent
PATH = "sequences/rules/qualification.yaml"


def model_of(text: str) -> QualificationModel:
    result = parse_qualification(dedent(text), PATH)
    assert result.problems == (), "\n".join(map(str, result.problems))
    assert result.model is not None
    return result.model


def problems_of(text: str) -> list[str]:
    result = parse_qualification(dedent(text), PATH)
    assert result.model is None
    assert result.problems, "expected problems"
    return [str(problem) for problem in result.problems]


# --- the shipped example -------------------------------------------------------------


def test_the_shipped_file_loads_without_problems() -> None:
    result = load_qualification(qualification_path(ROOT / "sequences"))
    assert result.problems == ()
    model = result.model
    assert model is not None
    assert model.path.endswith("sequences/rules/qualification.yaml")
    assert model.b2b_only
    assert model.competitors == {"asprova.example", "ortems.example", "planiware.example"}
    assert model.partners == {"integrateur-lyon.example", "erp-conseil-nord.example"}
    assert {"caramail.com", "gmail.com"} <= model.free_mail_domains
    assert {"usine", "info"} <= model.role_addresses
    assert [rule.code for rule in model.disqualifiers] == ["student", "open_deal", "too_small"]
    assert [rule.category for rule in model.categories] == [
        SALES_READY,
        SALES_READY,
        LONG_TERM_NURTURE,
    ]
    assert len(model.version) == 16


def test_a_missing_file_means_no_qualification(tmp_path: Path) -> None:
    assert load_qualification(qualification_path(tmp_path)) == QualificationResult(None, ())


def test_a_file_that_is_not_utf8_is_a_problem(tmp_path: Path) -> None:
    path = tmp_path / "qualification.yaml"
    path.write_bytes("b2b_only: true # é".encode("latin-1"))
    result = load_qualification(path)
    assert result.model is None
    assert [problem.line for problem in result.problems] == [1]
    assert "not UTF-8" in result.problems[0].message


# --- what a marketer may write ---------------------------------------------------------


def test_a_full_file_becomes_its_model() -> None:
    model = model_of(
        """\
        b2b_only: true
        free_mail_domains: [Caramail.com, voila.*]
        role_addresses: [Usine, achats]
        competitors: [asprova.example]
        partners: [integrateur-lyon.example]
        disqualify:
          - code: too_small
            if: {company_size: {max: 9}}
          - code: open_deal
            if: {fields: {open_deal: [true, "yes"]}}
            reason: an open deal belongs to the account manager
        categories:
          sales_ready:
            if: {fields: {project_timeline: ["< 3 months", this quarter]}}
            grade_at_least: B
            score_at_least: 20
            reason: a project this quarter
          long_term_nurture: {}
        """
    )
    assert model.free_mail_domains == FREE_MAIL_DOMAINS | {"caramail.com", "voila.*"}
    assert model.role_addresses == ROLE_ADDRESSES | {"usine", "achats"}
    assert model.disqualifiers == (
        Disqualifier("too_small", Audience(company_size=IntRange(max=9)), "", line=7),
        Disqualifier(
            "open_deal",
            Audience(fields=MappingProxyType({"open_deal": frozenset({"true", "yes"})})),
            "an open deal belongs to the account manager",
            line=9,
        ),
    )
    assert model.disqualifiers[0].message == "company size at most 9"
    assert model.categories == (
        CategoryRule(
            SALES_READY,
            Audience(
                fields=MappingProxyType(
                    {"project_timeline": frozenset({"< 3 months", "this quarter"})}
                )
            ),
            grade_at_least="B",
            score_at_least=20,
            reason="a project this quarter",
            line=14,
        ),
        CategoryRule(LONG_TERM_NURTURE, line=18),
    )


def test_every_key_may_be_left_out() -> None:
    model = model_of("b2b_only: false\n")
    assert model == QualificationModel(b2b_only=False, version=model.version, path=PATH)
    assert model_of("{}\n").b2b_only  # business to business unless told otherwise


def test_a_category_may_list_several_ways_in_and_end_with_everyone_left() -> None:
    model = model_of(
        """\
        categories:
          sales_ready:
            - {grade_at_least: A, score_at_least: 60}
            - if: {source: [referral]}
          long_term_nurture:
        """
    )
    assert [(rule.category, rule.line) for rule in model.categories] == [
        (SALES_READY, 3),
        (SALES_READY, 4),
        (LONG_TERM_NURTURE, 5),
    ]
    assert model.categories[-1].matches_everyone


def test_the_version_follows_the_content() -> None:
    first = model_of("b2b_only: true\n")
    assert model_of("b2b_only: true\n").version == first.version
    assert model_of("b2b_only: true  # still\n").version != first.version


# --- what validate reports ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1: the file is empty; give at least one rule, or delete the file"),
        ("- b2b_only\n", "1: expected a mapping of qualification rules, got a list"),
        ("b2b_only: [true\n", "2: YAML syntax error: expected ',' or ']', but got '<stream end>'"),
        (
            "b2b_only: true\ncolour: blue\n",
            "2: colour: unknown key; allowed keys here: b2b_only, free_mail_domains,"
            " role_addresses, competitors, partners, disqualify, categories",
        ),
        ("b2b_only: yes please\n", '1: b2b_only: expected true or false, got "yes please"'),
        (
            "b2b_only: true\nb2b_only: false\n",
            '2: duplicate key "b2b_only" (first given at line 1)',
        ),
    ],
)
def test_file_level_problems(text: str, expected: str) -> None:
    assert problems_of(text) == [f"{PATH}:{expected}"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "competitors: [asprova.example, ortems]",
            'competitors[2]: expected a domain such as asprova.example, got "ortems"',
        ),
        (
            "competitors: ['@asprova.example']",
            "competitors[1]: write the domain without @: asprova.example",
        ),
        (
            "partners: [jm@integrateur-lyon.example]",
            "partners[1]: expected a domain such as asprova.example, not an email address:"
            ' "jm@integrateur-lyon.example"',
        ),
        (
            "partners: ['https://integrateur-lyon.example/']",
            "partners[1]: expected a domain such as asprova.example, not a web address:"
            ' "https://integrateur-lyon.example/"',
        ),
        (
            "competitors: [www.asprova.example]",
            "competitors[1]: www.asprova.example is a web site; write the domain of the"
            " email addresses: asprova.example",
        ),
        (
            "competitors: [asprova.*]",
            'competitors[1]: expected a domain without *, such as asprova.example, got "asprova.*"',
        ),
        (
            "free_mail_domains: ['*.fr']",
            "free_mail_domains[1]: a * only ends a free-mail domain, as in yahoo.*",
        ),
        (
            "free_mail_domains: [caramail.com, CARAMAIL.COM]",
            "free_mail_domains[2]: caramail.com is listed twice (first at line 1)",
        ),
        ("role_addresses: [usine@]", 'role_addresses[1]: write only the part before @: "usine"'),
        (
            "role_addresses: ['service client']",
            'role_addresses[1]: expected the part before @, such as info, got "service client"',
        ),
        ("competitors: []", "competitors: expected at least one domain, got an empty list"),
        (
            "role_addresses: []",
            "role_addresses: expected at least one address name (the part before @),"
            " got an empty list",
        ),
        (
            "competitors: asprova.example",
            'competitors: expected a list, one domain per item, got "asprova.example"',
        ),
    ],
)
def test_bad_domains_and_addresses_are_reported(text: str, expected: str) -> None:
    assert problems_of(text + "\n") == [f"{PATH}:1: {expected}"]


def test_a_domain_is_a_competitor_or_a_partner_not_both() -> None:
    assert problems_of(
        """\
        competitors:
          - asprova.example
        partners:
          - Asprova.example
        """
    ) == [
        f"{PATH}:4: partners: asprova.example is also listed under competitors (line 2);"
        " a domain is one or the other"
    ]


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            "{code: Student, if: {job_title_contains: [student]}}",
            'disqualify[1].code: "Student" is not a reason code: use lower-case letters and _'
            " (at most 50), such as too_small",
        ),
        (
            "{code: too-small, if: {company_size: {max: 9}}}",
            'disqualify[1].code: "too-small" is not a reason code: use lower-case letters and _'
            " (at most 50), such as too_small",
        ),
        (
            "{code: competitor, if: {job_title_contains: [sales]}}",
            'disqualify[1].code: "competitor" is a built-in reason code; choose another',
        ),
        (
            "{code: sales_ready, if: {job_title_contains: [sales]}}",
            'disqualify[1].code: "sales_ready" is a category; choose another code',
        ),
        (
            "{code: student, if: {job_titel: [student]}}",
            "disqualify[1].if.job_titel: unknown key; allowed keys here: country, company_size,"
            " job_title_contains, source, locale, stage, fields",
        ),
        (
            "{code: abroad, if: {country: [FRA]}}",
            'disqualify[1].if.country: expected a two-letter country code such as "FR", got "FRA"',
        ),
        (
            "{code: odd, if: {company_size: {min: 50, max: 9}}}",
            "disqualify[1].if.company_size: min (50) is greater than max (9)",
        ),
        (
            "{code: everyone, if: {}}",
            "disqualify[1].if: expected at least one condition; without one every lead"
            " is disqualified",
        ),
        ("{code: student}", 'disqualify[1]: missing required key "if"'),
        (
            "{code: student, if: {job_title_contains: [student]}, why: no}",
            "disqualify[1].why: unknown key; allowed keys here: code, if, reason",
        ),
        (
            "{code: student, if: {job_title_contains: [student]}, reason: ''}",
            'disqualify[1].reason: expected a sentence saying why, got ""',
        ),
    ],
)
def test_bad_disqualifiers_are_reported(rule: str, expected: str) -> None:
    assert problems_of(f"disqualify:\n  - {rule}\n") == [f"{PATH}:2: {expected}"]


def test_a_code_used_twice_is_reported_with_its_first_line() -> None:
    assert problems_of(
        """\
        disqualify:
          - code: too_small
            if: {company_size: {max: 9}}
          - code: too_small
            if: {company_size: {max: 4}}
        """
    ) == [f'{PATH}:4: disqualify[2].code: duplicate code "too_small" (first used at line 2)']


@pytest.mark.parametrize(
    ("categories", "expected"),
    [
        (
            "  hot: {grade_at_least: A}",
            "2: categories.hot: unknown category; categories here are sales_ready"
            " and long_term_nurture",
        ),
        (
            "  no_interest: {if: {country: [US]}}",
            "2: categories.no_interest: no_interest comes from disqualify: add a rule there,"
            " with a code",
        ),
        (
            "  sales_ready: {}",
            "2: categories.sales_ready: expected a condition (if, grade_at_least or"
            " score_at_least); without one every lead would go to sales",
        ),
        (
            "  sales_ready: {grade_at_least: E}",
            '2: categories.sales_ready.grade_at_least: unknown grade "E"; grades are A, B, C and D',
        ),
        (
            "  sales_ready: {score_at_least: lots}",
            '2: categories.sales_ready.score_at_least: expected a whole number, got "lots"',
        ),
        (
            "  sales_ready: {if: {stage: [hot]}}",
            '2: categories.sales_ready.if.stage: unknown stage "hot"; stages are subscriber, lead,'
            " mql, sql, opportunity, customer, disqualified, recycled",
        ),
        (
            "  sales_ready: {grade: A}",
            "2: categories.sales_ready.grade: unknown key; allowed keys here: if, grade_at_least,"
            " score_at_least, reason",
        ),
        (
            "  sales_ready: []",
            "2: categories.sales_ready: expected at least one rule, got an empty list",
        ),
        (
            "  sales_ready: [[]]",
            "2: categories.sales_ready[1]: expected a mapping of conditions, got a list",
        ),
        (
            "  long_term_nurture:\n  sales_ready: {grade_at_least: A}",
            "3: categories.sales_ready: this rule is never used: categories.long_term_nurture"
            " (line 2) already takes every lead left",
        ),
    ],
)
def test_bad_categories_are_reported(categories: str, expected: str) -> None:
    assert problems_of(f"categories:\n{categories}\n") == [f"{PATH}:{expected}"]


def test_an_empty_categories_mapping_is_reported() -> None:
    assert problems_of("categories: {}\n") == [
        f"{PATH}:1: categories: expected a mapping of categories, such as sales_ready:"
        " {grade_at_least: B}, got an empty mapping"
    ]


def test_every_problem_is_reported_at_once_in_line_order() -> None:
    problems = problems_of(
        """\
        b2b_only: maybe
        competitors: [asprova]
        disqualify:
          - code: Student
            if: {job_title_contains: [student]}
        categories:
          hot: {}
        """
    )
    assert [problem.split(":")[1] for problem in problems] == ["1", "2", "4", "7"]


def test_problems_are_located_values() -> None:
    result = parse_qualification("competitors: [asprova]\n", PATH)
    assert result.problems == (
        Problem(
            PATH, 1, 'competitors[1]: expected a domain such as asprova.example, got "asprova"'
        ),
    )
