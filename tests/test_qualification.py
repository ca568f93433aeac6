"""Qualification: which leads are kept out of sales' way and why, and which go to
sales at once, as the marketer's rules say."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from nurture.core.profile import LeadProfile
from nurture.core.qualification import (
    FREE_MAIL_DOMAINS,
    LONG_TERM_NURTURE,
    NO_INTEREST,
    NOT_READY,
    ROLE_ADDRESSES,
    SALES_READY,
    CategoryRule,
    Disqualifier,
    Qualification,
    QualificationModel,
    Reason,
    email_parts,
    matching_domain,
    qualify,
)
from nurture.core.qualification_parser import load_qualification, qualification_path
from nurture.core.sequences import Audience, IntRange

ROOT = Path(__file__).resolve().parent.parent
STUDENTS = "students don't buy software"
OPEN_DEAL = "an open deal belongs to the account manager"

RULES = QualificationModel(
    competitors=frozenset({"asprova.example", "ortems.example"}),
    partners=frozenset({"integrateur.example"}),
    disqualifiers=(
        Disqualifier(
            "student",
            Audience(job_title_contains=("étudiant", "student", "stagiaire")),
            STUDENTS,
        ),
        Disqualifier(
            "open_deal",
            Audience(fields=MappingProxyType({"open_deal": frozenset({"true", "yes"})})),
            OPEN_DEAL,
        ),
        Disqualifier("too_small", Audience(company_size=IntRange(max=9))),
    ),
    categories=(
        CategoryRule(
            SALES_READY,
            Audience(fields=MappingProxyType({"project_timeline": frozenset({"this quarter"})})),
            grade_at_least="B",
            reason="a project this quarter",
        ),
    ),
)


def lead(email: str = "claire@atelier-martin.example", **values: Any) -> LeadProfile:
    return LeadProfile(email=email, **values)


def codes(result: Qualification) -> list[str]:
    return [reason.code for reason in result.reasons]


@pytest.fixture(scope="module")
def planifia() -> QualificationModel:
    result = load_qualification(qualification_path(ROOT / "sequences"))
    assert result.problems == ()
    assert result.model is not None
    return result.model


# --- built-in disqualifiers ---------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "code", "message"),
    [
        ("claire", "invalid_email", '"claire" is not a valid email address'),
        ("claire@", "invalid_email", '"claire@" is not a valid email address'),
        ("@atelier.example", "invalid_email", '"@atelier.example" is not a valid email address'),
        ("claire@localhost", "invalid_email", '"claire@localhost" is not a valid email address'),
        ("claire@@atelier.example", "invalid_email", None),
        ("claire martin@atelier.example", "invalid_email", None),
        ("claire@atelier..example", "invalid_email", None),
        ("pd@asprova.example", "competitor", "the address is at asprova.example, a competitor"),
        ("jm@integrateur.example", "partner", "the address is at integrateur.example, a partner"),
        (
            "contact@berthier.example",
            "role_address",
            '"contact@" is a shared mailbox, not a person',
        ),
        ("cm@gmail.com", "free_mail", "gmail.com is a personal mailbox, not a company address"),
    ],
)
def test_each_built_in_disqualifier_gives_its_code_and_message(
    email: str, code: str, message: str | None
) -> None:
    result = qualify(RULES, lead(email))
    assert result.category == NO_INTEREST
    assert result.disqualified
    assert codes(result) == [code]
    if message is not None:
        assert result.reasons[0].message == message


@pytest.mark.parametrize(
    "email",
    [
        "p.durand@fr.asprova.example",
        "p.durand@lyon.fr.asprova.example",
        "P.Durand@FR.Asprova.Example",
        "a.petit@ortems.example",
    ],
)
def test_subdomains_of_a_competitor_count(email: str) -> None:
    assert codes(qualify(RULES, lead(email))) == ["competitor"]


@pytest.mark.parametrize(
    "email",
    ["p.durand@notasprova.example", "p.durand@asprova.example.com", "p.durand@asprova.examples"],
)
def test_a_lookalike_domain_is_not_a_competitor(email: str) -> None:
    assert qualify(RULES, lead(email)).category == LONG_TERM_NURTURE


@pytest.mark.parametrize(
    ("email", "role"),
    [
        ("INFO@atelier-martin.example", True),
        ("sales+webinar@atelier-martin.example", True),
        ("no-reply@atelier-martin.example", True),
        ("rh@atelier-martin.example", True),
        ("marketing.director@atelier-martin.example", False),
        ("information.systems@atelier-martin.example", False),
        ("claire.contact@atelier-martin.example", False),
    ],
)
def test_role_addresses_are_whole_local_parts(email: str, role: bool) -> None:
    assert ("role_address" in codes(qualify(RULES, lead(email)))) is role


@pytest.mark.parametrize(
    "domain",
    [
        "gmail.com",
        "yahoo.fr",
        "yahoo.co.uk",
        "hotmail.com",
        "outlook.fr",
        "live.be",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "gmx.de",
        "icloud.com",
        "proton.me",
    ],
)
def test_personal_mailboxes_disqualify_when_b2b_only(domain: str) -> None:
    assert codes(qualify(RULES, lead(f"claire@{domain}"))) == ["free_mail"]


@pytest.mark.parametrize(
    "domain",
    ["live.acme-industries.example", "free-mobile.example", "gmail.com.acme.example", "freeze.fr"],
)
def test_company_domains_that_resemble_personal_mailboxes_pass(domain: str) -> None:
    assert qualify(RULES, lead(f"claire@{domain}")).category == LONG_TERM_NURTURE


def test_personal_mailboxes_pass_when_not_b2b_only() -> None:
    rules = QualificationModel(b2b_only=False)
    assert qualify(rules, lead("claire.martin@gmail.com")).category == LONG_TERM_NURTURE
    # The other built-in checks stay on.
    assert codes(qualify(rules, lead("contact@gmail.com"))) == ["role_address"]


def test_extra_free_mail_domains_add_to_the_built_in_list() -> None:
    rules = QualificationModel(
        free_mail_domains=QualificationModel().free_mail_domains | {"caramail.com"}
    )
    assert codes(qualify(rules, lead("claire@caramail.com"))) == ["free_mail"]
    assert codes(qualify(rules, lead("claire@gmail.com"))) == ["free_mail"]


# --- the file's own disqualifiers -----------------------------------------------------


@pytest.mark.parametrize(
    ("values", "code", "message"),
    [
        ({"job_title": "Étudiant en génie industriel"}, "student", STUDENTS),
        ({"job_title": "PhD Student"}, "student", STUDENTS),
        ({"fields": {"open_deal": "yes"}}, "open_deal", OPEN_DEAL),
        # A field set from JSON `true` matches the file's "true".
        ({"fields": {"open_deal": True}}, "open_deal", OPEN_DEAL),
        ({"company_size": 4}, "too_small", "company size at most 9"),
    ],
)
def test_each_custom_disqualifier_gives_its_code_and_message(
    values: dict[str, Any], code: str, message: str
) -> None:
    result = qualify(RULES, lead(**values))
    assert result.category == NO_INTEREST
    assert result.reasons == (Reason(code, message),)
    assert result.code == code


@pytest.mark.parametrize(
    "values",
    [
        {"job_title": "Responsable de production"},
        {"fields": {"open_deal": False}},
        {"fields": {"open_deal": "no"}},
        {"company_size": 10},
        {"company_size": None},  # unknown size: not known to be too small
    ],
)
def test_custom_disqualifiers_leave_other_leads_alone(values: dict[str, Any]) -> None:
    assert qualify(RULES, lead(**values)).category == LONG_TERM_NURTURE


def test_every_matching_reason_is_reported_built_in_first_then_in_file_order() -> None:
    student_at_competitor = lead(
        "info@fr.asprova.example",
        job_title="Stagiaire planification",
        company_size=5,
        fields=MappingProxyType({"open_deal": "yes"}),
    )
    result = qualify(RULES, student_at_competitor, grade="A")
    assert result.category == NO_INTEREST
    assert codes(result) == ["competitor", "role_address", "student", "open_deal", "too_small"]
    assert result.code == "competitor"
    assert result.reasons[0].as_dict() == {
        "code": "competitor",
        "message": "the address is at fr.asprova.example, a competitor",
    }


def test_a_disqualified_lead_is_never_sales_ready() -> None:
    ready_but_a_partner = lead(
        "jm@integrateur.example", fields=MappingProxyType({"project_timeline": "this quarter"})
    )
    assert qualify(RULES, ready_but_a_partner, grade="A").category == NO_INTEREST


def test_an_invalid_address_skips_the_domain_checks_but_not_the_file_rules() -> None:
    result = qualify(RULES, lead("stagiaire-gmail.com", job_title="Stagiaire"))
    assert codes(result) == ["invalid_email", "student"]


# --- categories ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeline", "grade", "category"),
    [
        ("this quarter", "A", SALES_READY),
        ("this quarter", "B", SALES_READY),
        ("this quarter", "C", LONG_TERM_NURTURE),
        ("this quarter", None, LONG_TERM_NURTURE),  # no scoring: grade unknown
        ("next year", "A", LONG_TERM_NURTURE),
    ],
)
def test_sales_ready_needs_every_condition_of_its_rule(
    timeline: str, grade: str | None, category: str
) -> None:
    candidate = lead(fields=MappingProxyType({"project_timeline": timeline}))
    result = qualify(RULES, candidate, grade=grade)
    assert result.category == category
    assert not result.disqualified
    expected = "a project this quarter" if category == SALES_READY else NOT_READY
    assert result.reasons == (Reason(category, expected),)


def test_categories_are_tried_in_order_and_the_first_that_holds_wins() -> None:
    small_plants_wait = CategoryRule(LONG_TERM_NURTURE, Audience(company_size=IntRange(max=49)))
    hot = CategoryRule(SALES_READY, score_at_least=60)
    small_and_hot = lead(company_size=30, score=90)
    first_small = QualificationModel(categories=(small_plants_wait, hot))
    first_hot = QualificationModel(categories=(hot, small_plants_wait))
    assert qualify(first_small, small_and_hot).reasons == (
        Reason(LONG_TERM_NURTURE, "company size at most 49"),
    )
    assert qualify(first_hot, small_and_hot).reasons == (Reason(SALES_READY, "score at least 60"),)
    assert qualify(first_small, lead(company_size=300, score=90)).category == SALES_READY


def test_score_defaults_to_the_leads_own_and_can_be_given() -> None:
    rules = QualificationModel(categories=(CategoryRule(SALES_READY, score_at_least=60),))
    assert qualify(rules, lead(score=75)).category == SALES_READY
    assert qualify(rules, lead(score=75), score=40).category == LONG_TERM_NURTURE
    assert qualify(rules, lead(score=10), score=60).category == SALES_READY


def test_a_rule_without_its_own_reason_says_its_conditions() -> None:
    rule = CategoryRule(
        SALES_READY,
        Audience(countries=frozenset({"FR", "BE"}), sources=frozenset({"referral"})),
        grade_at_least="B",
        score_at_least=50,
    )
    assert rule.message == (
        "country BE or FR and source referral and grade B or better and score at least 50"
    )
    assert CategoryRule(SALES_READY, grade_at_least="A").message == "grade A"


def test_without_rules_every_valid_lead_is_nurtured() -> None:
    result = qualify(QualificationModel(), lead())
    assert result == Qualification(LONG_TERM_NURTURE, (Reason(LONG_TERM_NURTURE, NOT_READY),))


def test_an_unknown_grade_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown grade 'E'"):
        qualify(RULES, lead(), grade="E")


def test_a_qualification_cannot_contradict_itself() -> None:
    with pytest.raises(ValueError, match="disqualified exactly when"):
        Qualification(SALES_READY, (), disqualified=True)
    with pytest.raises(ValueError, match="unknown category"):
        Qualification("hot", ())


# --- the shipped rules on a small prospect base ---------------------------------------


def test_the_shipped_rules_keep_junk_away_and_send_few_to_sales(
    planifia: QualificationModel,
) -> None:
    now_project = MappingProxyType({"project_timeline": "< 3 months"})
    base = {
        "claire@atelier-martin.example": (lead(company_size=240, fields=now_project), "B"),
        "paul@moulages-berthier.example": (lead("paul@moulages-berthier.example"), "A"),
        "nina@rochat.example": (lead("nina@rochat.example", source="referral"), "A"),
        "tom@rochat.example": (lead("tom@rochat.example", source="referral"), "B"),
        "marc@gmail.com": (lead("marc@gmail.com"), "A"),
        "marc@caramail.com": (lead("marc@caramail.com"), "A"),
        "usine@forges-est.example": (lead("usine@forges-est.example"), "B"),
        "lea@fr.asprova.example": (lead("lea@fr.asprova.example"), "A"),
        "jm@integrateur-lyon.example": (lead("jm@integrateur-lyon.example"), "A"),
        "zoe@forges-est.example": (lead("zoe@forges-est.example", job_title="Étudiante"), "C"),
        "max@tiny.example": (lead("max@tiny.example", company_size=3, fields=now_project), "B"),
        "ana@acme.example": (
            lead("ana@acme.example", job_title="International sales manager"),
            "B",
        ),
    }
    found = {
        email: (result.category, result.code)
        for email, (candidate, grade) in base.items()
        for result in [qualify(planifia, candidate, grade)]
    }
    assert found == {
        "claire@atelier-martin.example": ("sales_ready", "sales_ready"),
        "paul@moulages-berthier.example": ("long_term_nurture", "long_term_nurture"),
        "nina@rochat.example": ("sales_ready", "sales_ready"),
        "tom@rochat.example": ("long_term_nurture", "long_term_nurture"),
        "marc@gmail.com": ("no_interest", "free_mail"),
        "marc@caramail.com": ("no_interest", "free_mail"),
        "usine@forges-est.example": ("no_interest", "role_address"),
        "lea@fr.asprova.example": ("no_interest", "competitor"),
        "jm@integrateur-lyon.example": ("no_interest", "partner"),
        "zoe@forges-est.example": ("no_interest", "student"),
        "max@tiny.example": ("no_interest", "too_small"),
        "ana@acme.example": ("long_term_nurture", "long_term_nurture"),
    }


# --- helpers -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "parts"),
    [
        (" Claire.Martin@Atelier-Martin.Example ", ("claire.martin", "atelier-martin.example")),
        ("claire@atelier", None),
        ("claire@.atelier.example", None),
        ("", None),
    ],
)
def test_email_parts(email: str, parts: tuple[str, str] | None) -> None:
    assert email_parts(email) == parts


@pytest.mark.parametrize(
    ("domain", "entry"),
    [
        ("yahoo.com.br", "yahoo.*"),
        ("yahoo.fr", "yahoo.*"),
        ("yahoo.company.example", None),
        ("mail.yahoo.com", None),
        ("asprova.example", "asprova.example"),
        ("eu.asprova.example", "asprova.example"),
        ("YAHOO.co.uk.", "yahoo.*"),
        ("yahoo", None),
        ("notasprova.example", None),
    ],
)
def test_matching_domain(domain: str, entry: str | None) -> None:
    assert matching_domain(domain, ["yahoo.*", "asprova.example"]) == entry


def test_the_documented_built_in_lists_are_the_real_ones() -> None:
    doc = (ROOT / "docs" / "qualification.md").read_text(encoding="utf-8")

    def listed(title: str, end: str) -> set[str]:
        text = doc.split(title, 1)[1].split(end, 1)[0]
        return {item.strip().replace("\\*", "*") for item in text.replace("\n", " ").split(",")}

    assert listed("**Shared mailboxes, built in:**", ". A name") == ROLE_ADDRESSES
    assert listed("**Personal mailboxes, built in:**", ".\n\n") == FREE_MAIL_DOMAINS
