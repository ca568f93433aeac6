"""What the core knows about a lead: a frozen snapshot, free of the database."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class Rep:
    """The sales rep assigned to a lead (used in personalisation)."""

    name: str
    email: str
    phone: str | None = None
    title: str | None = None


@dataclass(frozen=True)
class LeadProfile:
    """A lead as the pure core sees it.

    `fields` holds custom fields (free keys); `tags` the lead's tags.
    `country` is an ISO 3166 alpha-2 code in upper case; `locale` a short language
    code such as "fr" or "en"; `timezone` an IANA name or None.
    """

    email: str
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    company_size: int | None = None
    country: str | None = None
    timezone: str | None = None
    locale: str | None = None
    source: str | None = None
    campaign: str | None = None
    stage: str = "lead"
    score: int = 0
    tags: frozenset[str] = frozenset()
    fields: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    rep: Rep | None = None

    def value(self, name: str) -> Any:
        """A standard attribute by name, else a custom field, else None."""
        if name in _STANDARD:
            return getattr(self, name)
        return self.fields.get(name)


_STANDARD = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "company",
        "job_title",
        "company_size",
        "country",
        "timezone",
        "locale",
        "source",
        "campaign",
        "stage",
        "score",
    }
)

SAMPLE_LEAD = LeadProfile(
    email="claire.martin@example.com",
    first_name="Claire",
    last_name="Martin",
    company="Atelier Martin SAS",
    job_title="Directrice des opérations",
    company_size=240,
    country="FR",
    timezone="Europe/Paris",
    locale="fr",
    source="website",
    campaign="livre-blanc-2026",
    stage="lead",
    score=12,
    fields=MappingProxyType({"industry": "manufacturing"}),
    rep=Rep(name="Julien Moreau", email="julien.moreau@example.com", phone="+33 1 84 00 00 00"),
)
