"""Who is worth sales' time: the qualification rules as values, and `qualify`.

The rules come from `sequences/rules/qualification.yaml` (see `qualification_parser`).
Disqualifiers are tried first: built-in ones on the email address (malformed,
a competitor's or a partner's domain, a shared mailbox, a personal mailbox when
the business sells to businesses only), then the file's own. Any match puts the
lead in `no_interest` with every matching reason. A lead that passes them all
takes the first category rule that holds, else `long_term_nurture`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType

from nurture.core.profile import LeadProfile
from nurture.core.scoring import GRADES, grade_at_least
from nurture.core.sequences import Audience, IntRange

SALES_READY = "sales_ready"
LONG_TERM_NURTURE = "long_term_nurture"
NO_INTEREST = "no_interest"
CATEGORIES = (SALES_READY, LONG_TERM_NURTURE, NO_INTEREST)
"""Every category a lead can be in."""
RULE_CATEGORIES = (SALES_READY, LONG_TERM_NURTURE)
"""The categories a file may give rules for; `no_interest` comes from disqualifiers only."""

INVALID_EMAIL = "invalid_email"
COMPETITOR = "competitor"
PARTNER = "partner"
ROLE_ADDRESS = "role_address"
FREE_MAIL = "free_mail"
BUILT_IN_CODES = (INVALID_EMAIL, COMPETITOR, PARTNER, ROLE_ADDRESS, FREE_MAIL)
"""The built-in reason codes, in the order they are checked."""
NOT_READY = "not ready for sales yet"
"""The message of `long_term_nurture` when no rule of the file says why."""

FREE_MAIL_DOMAINS = frozenset(
    {
        # `name.*` stands for that name under any country or generic ending.
        "gmail.com",
        "googlemail.com",
        "yahoo.*",
        "ymail.com",
        "rocketmail.com",
        "hotmail.*",
        "outlook.*",
        "live.*",
        "msn.com",
        "windowslive.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.*",
        "gmx.*",
        "web.de",
        "t-online.de",
        "freenet.de",
        "proton.me",
        "pm.me",
        "protonmail.com",
        "protonmail.ch",
        "tutanota.com",
        "tuta.io",
        "mail.com",
        "zoho.com",
        "yandex.*",
        "mail.ru",
        "orange.fr",
        "wanadoo.fr",
        "free.fr",
        "laposte.net",
        "sfr.fr",
        "neuf.fr",
        "bbox.fr",
        "numericable.fr",
        "club-internet.fr",
        "aliceadsl.fr",
        "skynet.be",
        "telenet.be",
        "proximus.be",
        "bluewin.ch",
        "sunrise.ch",
        "videotron.ca",
        "sympatico.ca",
        "rogers.com",
        "shaw.ca",
        "btinternet.com",
        "sky.com",
        "virginmedia.com",
        "libero.it",
        "virgilio.it",
        "qq.com",
        "163.com",
    }
)
"""Personal mailbox providers; a file's `free_mail_domains` adds to them."""

ROLE_ADDRESSES = frozenset(
    {
        "info",
        "infos",
        "contact",
        "contacts",
        "sales",
        "admin",
        "office",
        "noreply",
        "no-reply",
        "no_reply",
        "donotreply",
        "do-not-reply",
        "support",
        "hello",
        "bonjour",
        "marketing",
        "rh",
        "hr",
        "jobs",
        "careers",
        "recrutement",
        "compta",
        "comptabilite",
        "accounting",
        "billing",
        "facturation",
        "commercial",
        "accueil",
        "secretariat",
        "postmaster",
        "webmaster",
        "abuse",
        "mailer-daemon",
    }
)
"""Local parts of shared mailboxes (the part before @); a file's `role_addresses` adds to them."""

# Endings a `name.*` pattern stands for: "fr", "com", "co.uk", "com.br"...
_ENDING_LABEL = re.compile(r"[a-z]{2,3}")
_SPACE = re.compile(r"\s")  # as str.isspace: Unicode whitespace


@dataclass(frozen=True)
class Reason:
    """Why a lead is in its category: a stable code for reports, a message for people."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The reason as stored on the lead and shown by the API."""
        return {"code": self.code, "message": self.message}


@dataclass(frozen=True)
class Disqualifier:
    """A rule from the file's `disqualify` list: `when` admits the lead → `code`."""

    code: str
    when: Audience
    reason: str = ""  # the file's own words; empty: the condition, in words
    line: int = 0

    @property
    def message(self) -> str:
        return self.reason or describe_condition(self.when)


@dataclass(frozen=True)
class CategoryRule:
    """One way into `category`: every condition given must hold.

    A grade condition never holds while the lead's grade is unknown.
    """

    category: str
    when: Audience = field(default_factory=Audience)
    grade_at_least: str | None = None
    score_at_least: int | None = None
    reason: str = ""
    line: int = 0

    @property
    def matches_everyone(self) -> bool:
        no_threshold = self.grade_at_least is None and self.score_at_least is None
        return no_threshold and self.when == Audience()

    @property
    def message(self) -> str:
        if self.reason:
            return self.reason
        parts = [describe_condition(self.when)] if self.when != Audience() else []
        if self.grade_at_least is not None:
            parts.append(
                f"grade {self.grade_at_least}"
                + (" or better" if self.grade_at_least != GRADES[0] else "")
            )
        if self.score_at_least is not None:
            parts.append(f"score at least {self.score_at_least}")
        if parts:
            return " and ".join(parts)
        return NOT_READY if self.category == LONG_TERM_NURTURE else "every lead"

    def holds(self, lead: LeadProfile, grade: str | None, score: int) -> bool:
        if self.grade_at_least is not None and (
            grade is None or not grade_at_least(grade, self.grade_at_least)
        ):
            return False
        if self.score_at_least is not None and score < self.score_at_least:
            return False
        return self.when.admits(lead)


@dataclass(frozen=True)
class QualificationModel:
    """The qualification rules of one file.

    `free_mail_domains` and `role_addresses` are the built-in lists plus the
    file's additions. Domains are lower case; a listed domain also covers its
    subdomains (`asprova.example` covers `fr.asprova.example`).
    """

    b2b_only: bool = True
    free_mail_domains: frozenset[str] = FREE_MAIL_DOMAINS
    role_addresses: frozenset[str] = ROLE_ADDRESSES
    competitors: frozenset[str] = frozenset()
    partners: frozenset[str] = frozenset()
    disqualifiers: tuple[Disqualifier, ...] = ()
    categories: tuple[CategoryRule, ...] = ()
    version: str = ""
    path: str = ""


@dataclass(frozen=True)
class Qualification:
    """A lead's category and the reasons for it, first reason first.

    Disqualified leads (`no_interest`) carry every disqualifier that matched;
    other leads carry one reason: the category rule that held, or that none did.
    """

    category: str
    reasons: tuple[Reason, ...]
    disqualified: bool = False

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"unknown category {self.category!r}; expected one of {CATEGORIES}")
        if self.disqualified != (self.category == NO_INTEREST):
            raise ValueError("a lead is disqualified exactly when its category is no_interest")

    @property
    def code(self) -> str | None:
        """The first reason's code: what a report groups leads by."""
        return self.reasons[0].code if self.reasons else None


def qualify(
    model: QualificationModel,
    lead: LeadProfile,
    grade: str | None = None,
    score: int | None = None,
) -> Qualification:
    """The lead's category under `model`, with its reasons.

    `grade` is the fit grade from scoring (None: unknown, so grade conditions do
    not hold); `score` defaults to the lead's own score.
    """
    if grade is not None and grade not in GRADES:
        raise ValueError(f"unknown grade {grade!r}; grades are {', '.join(GRADES)}")
    lead = _fields_as_written(lead)
    reasons = [*_email_reasons(model, lead.email)]
    reasons += [
        Reason(rule.code, rule.message) for rule in model.disqualifiers if rule.when.admits(lead)
    ]
    if reasons:
        return Qualification(NO_INTEREST, tuple(reasons), disqualified=True)
    current = lead.score if score is None else score
    for rule in model.categories:
        if rule.holds(lead, grade, current):
            return Qualification(rule.category, (Reason(rule.category, rule.message),))
    return Qualification(LONG_TERM_NURTURE, (Reason(LONG_TERM_NURTURE, NOT_READY),))


def _email_reasons(model: QualificationModel, email: str) -> Iterable[Reason]:
    parts = email_parts(email)
    if parts is None:
        yield Reason(INVALID_EMAIL, f'"{email}" is not a valid email address')
        return
    local, domain = parts
    if matching_domain(domain, model.competitors) is not None:
        yield Reason(COMPETITOR, f"the address is at {domain}, a competitor")
    if matching_domain(domain, model.partners) is not None:
        yield Reason(PARTNER, f"the address is at {domain}, a partner")
    # "sales+webinar@" is still the sales mailbox.
    if local.split("+", 1)[0] in model.role_addresses:
        yield Reason(ROLE_ADDRESS, f'"{local}@" is a shared mailbox, not a person')
    if model.b2b_only and matching_domain(domain, model.free_mail_domains) is not None:
        yield Reason(FREE_MAIL, f"{domain} is a personal mailbox, not a company address")


@lru_cache(maxsize=4096)  # an arrival asks for the same address's parts several times
def email_parts(email: str) -> tuple[str, str] | None:
    """The local part and the domain, in lower case, or None if `email` is not shaped
    like an address (one @, something before it, a domain of two labels or more)."""
    text = email.strip().lower()
    if text.count("@") != 1 or _SPACE.search(text):
        return None
    local, domain = text.split("@")
    labels = domain.split(".")
    if not local or len(labels) < 2 or not all(labels):
        return None
    return local, domain


def matching_domain(domain: str, listed: Iterable[str]) -> str | None:
    """The listed domain that covers `domain` (itself or a parent), or None.

    `name.*` covers `name` under a country or generic ending: yahoo.fr,
    yahoo.co.uk, outlook.com.br, but not live.acme-industries.com.
    """
    entries = listed if isinstance(listed, frozenset | set) else frozenset(listed)
    # Looked up, not scanned: an import checks every address against every list.
    for candidate in _candidates(domain):
        if candidate in entries:
            return candidate
    return None


@lru_cache(maxsize=4096)  # an arrival checks the same domain against several lists
def _candidates(domain: str) -> tuple[str, ...]:
    """What a listed entry covering `domain` can be, in the order they are tried: the
    domain and each parent, then `name.*` for a country or generic ending."""
    labels = domain.lower().rstrip(".").split(".")
    found = [".".join(labels[start:]) for start in range(len(labels))]
    for ending in (1, 2):
        if len(labels) > ending and all(_ENDING_LABEL.fullmatch(x) for x in labels[-ending:]):
            found.append(".".join(labels[:-ending]) + ".*")
    return tuple(found)


def describe_condition(when: Audience) -> str:
    """An audience condition in words, the message of a rule that gives none."""
    parts: list[str] = []
    if when.countries is not None:
        parts.append(f"country {_either(when.countries)}")
    if when.company_size is not None:
        parts.append(f"company size {_describe_range(when.company_size)}")
    if when.job_title_contains:
        parts.append(f"job title containing {_either(when.job_title_contains)}")
    for label, values in (
        ("source", when.sources),
        ("locale", when.locales),
        ("stage", when.stages),
    ):
        if values is not None:
            parts.append(f"{label} {_either(values)}")
    for name, allowed in when.fields.items():
        parts.append(f"{name} is {_either(allowed)}")
    return " and ".join(parts) or "every lead"


def _either(values: Iterable[str]) -> str:
    items = sorted(values) if isinstance(values, frozenset) else list(values)
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _describe_range(rng: IntRange) -> str:
    if rng.min is not None and rng.max is not None:
        return f"{rng.min} to {rng.max}"
    if rng.min is not None:
        return f"at least {rng.min}"
    return f"at most {rng.max}"


def _fields_as_written(lead: LeadProfile) -> LeadProfile:
    """The lead with true/false custom fields as the file writes them.

    A field set from JSON `true` is the Python value True, which the audience
    compares as "True"; the file says `true` or `"true"`.
    """
    if not any(isinstance(value, bool) for value in lead.fields.values()):
        return lead
    fields = {
        name: ("true" if value else "false") if isinstance(value, bool) else value
        for name, value in lead.fields.items()
    }
    return replace(lead, fields=MappingProxyType(fields))
