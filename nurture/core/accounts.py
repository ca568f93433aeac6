"""Accounts: which company a lead belongs to, and an account's figures. Pure.

A lead joins the account of its `company_id` field when it has one (an id from the
CRM wins over everything), else the account of its email's organisation domain:
`jean@fr.acme.example` and `anne@acme.example` are both `acme.example`. A personal
mailbox (the qualification's free-mail list) is never grouped: two gmail.com
addresses are two people, not a company. docs/accounts.md says it for people.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from nurture.core.qualification import email_parts, matching_domain
from nurture.core.scoring import (
    GRADES,
    Behaviour,
    ScoringModel,
    current_score,
    span,
    whole_points,
)
from nurture.core.sequences import STAGES, Duration

COMPANY_ID = "company_id"
"""The custom field that names a lead's company, as the CRM knows it."""
KINDS = ("company_id", "domain")

# Second-level labels under which a country's companies register (acme.co.uk,
# acme.com.au, acme.gouv.fr): the organisation domain then keeps three labels.
_SECOND_LEVEL = frozenset({"co", "com", "org", "net", "gov", "gouv", "ac", "edu", "ne", "or"})

DEFAULT_WINDOW = Duration(30, "days")
DEFAULT_EVENTS = ("email_clicked",)
HUMAN_ONLY = frozenset({"email_clicked", "email_opened"})
"""Events that count for an account only when tracking says a person did them."""


@dataclass(frozen=True, order=True)
class AccountKey:
    """What an account is known by: a company id, or a domain."""

    kind: str
    value: str

    def __str__(self) -> str:
        return self.value if self.kind == "domain" else f"company id {self.value}"


def organisation_domain(domain: str) -> str:
    """The domain a company registered, from a mail domain: its last two labels, or
    three under a country's second level (`mail.acme.co.uk` → `acme.co.uk`)."""
    labels = domain.lower().rstrip(".").split(".")
    keep = 3 if len(labels) >= 3 and len(labels[-1]) == 2 and labels[-2] in _SECOND_LEVEL else 2
    return ".".join(labels[-keep:])


def account_key(
    email: str, fields: Mapping[str, Any] | None, free_mail: Iterable[str]
) -> AccountKey | None:
    """The account a lead with this address and these custom fields belongs to."""
    given = (fields or {}).get(COMPANY_ID)
    if given is not None and not isinstance(given, bool) and str(given).strip():
        return AccountKey("company_id", str(given).strip()[:320])
    parts = email_parts(email)
    if parts is None or matching_domain(parts[1], free_mail) is not None:
        return None
    return AccountKey("domain", organisation_domain(parts[1]))


@dataclass(frozen=True)
class AccountRule:
    """`lifecycle.account` of the scoring file: an account whose `engaged_contacts`
    distinct contacts engaged within `within` is handed to sales through its best
    engaged contact graded `grade` or better."""

    engaged_contacts: int
    within: Duration = DEFAULT_WINDOW
    events: tuple[str, ...] = DEFAULT_EVENTS
    grade: str = "D"

    @property
    def window(self) -> timedelta:
        return span(self.within)

    def reason(self, engaged: int) -> str:
        return f"account: {engaged} contacts engaged in {self.within}"

    def describe(self) -> str:
        said = ", ".join(self.events)
        return f"{self.engaged_contacts} contacts with {said} within {self.within}"


@dataclass(frozen=True)
class Contact:
    """A lead as its account's figures see it. `engaged_at`: its latest engagement in
    the window (None: none)."""

    lead_id: int | None
    company: str | None
    stage: str
    grade: str | None
    behaviour: Behaviour
    engaged_at: datetime | None = None


@dataclass(frozen=True)
class AccountFigures:
    """Fit and engagement of one account, at one moment."""

    contacts: int
    name: str | None
    best_grade: str | None
    by_stage: Mapping[str, int] = field(default_factory=dict)
    engaged_contacts: int = 0
    score: int = 0
    within: Duration = DEFAULT_WINDOW


def name_of(companies: Iterable[str | None]) -> str | None:
    """What most contacts call their company (ties: the first in alphabetical order)."""
    counted = Counter(c.strip() for c in companies if c and c.strip())
    if not counted:
        return None
    return min(counted, key=lambda name: (-counted[name], name))


def contact_score(model: ScoringModel | None, contact: Contact, now: datetime) -> float:
    """What one contact adds to its account's score: its behaviour score now, from 0
    (a colleague who unsubscribed takes nothing from the others) to the promotion
    threshold (one very busy person does not make a buying group)."""
    if model is None:
        return 0.0
    return min(max(current_score(model, contact.behaviour, now), 0.0), float(model.promote.score))


def figures(
    contacts: Iterable[Contact],
    now: datetime,
    model: ScoringModel | None,
    within: Duration = DEFAULT_WINDOW,
) -> AccountFigures:
    """An account's figures from its contacts."""
    listed = list(contacts)
    stages = Counter(contact.stage for contact in listed)
    grades = [contact.grade for contact in listed if contact.grade in GRADES]
    return AccountFigures(
        contacts=len(listed),
        name=name_of(contact.company for contact in listed),
        best_grade=min(grades, key=GRADES.index) if grades else None,
        by_stage={stage: stages[stage] for stage in STAGES if stages[stage]},
        engaged_contacts=sum(1 for contact in listed if contact.engaged_at is not None),
        score=whole_points(sum(contact_score(model, c, now) for c in listed)),
        within=within,
    )


def payload_block(account_id: int, key: AccountKey, found: AccountFigures) -> dict[str, Any]:
    """The account as the CRM receives it with a promotion (docs/crm.md)."""
    return {
        "id": account_id,
        "domain": key.value if key.kind == "domain" else None,
        "company_id": key.value if key.kind == "company_id" else None,
        "name": found.name,
        "contacts": found.contacts,
        "engaged_contacts": found.engaged_contacts,
        "engaged_within": str(found.within),
        "score": found.score,
        "best_grade": found.best_grade,
    }
