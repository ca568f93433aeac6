"""Which sales rep gets a promoted lead: the routing rules as values, and `route`.

The rules come from `sequences/rules/routing.yaml` (see `routing_parser`): a list of
reps, then rules tried in order, the first whose condition admits the lead wins.
A rule names one rep, several, or all of them (`round_robin`); among several, the
rep with the lowest open load relative to their capacity gets the lead, so over
many leads each rep's share follows their capacity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from nurture.core.profile import LeadProfile, Rep
from nurture.core.sequences import Audience


@dataclass(frozen=True)
class SalesRep:
    """A rep as the routing file declares them.

    `capacity` is a weight, not a ceiling: a rep with capacity 3 gets three leads
    for every two given to a rep with capacity 2, and nobody is ever skipped for
    being "full" (a promoted lead must always have an owner).
    """

    name: str
    email: str
    timezone: str
    capacity: int = 1
    phone: str | None = None

    def as_rep(self) -> Rep:
        """The rep as emails and the CRM payload show them."""
        return Rep(name=self.name, email=self.email, phone=self.phone)


@dataclass(frozen=True)
class RoutingRule:
    """`when` admits the lead (an empty Audience admits everyone) → one of `reps`."""

    name: str
    reps: tuple[SalesRep, ...]
    when: Audience = field(default_factory=Audience)
    line: int = 0

    @property
    def matches_everyone(self) -> bool:
        return self.when == Audience()


@dataclass(frozen=True)
class RoutingModel:
    """Every rep (file order) and the rules, tried in order."""

    reps: tuple[SalesRep, ...]
    rules: tuple[RoutingRule, ...]
    path: str = ""

    def rep(self, email: str) -> SalesRep | None:
        wanted = email.strip().casefold()
        return next((rep for rep in self.reps if rep.email.casefold() == wanted), None)


@dataclass(frozen=True)
class Assignment:
    """The rep who gets the lead, and the name of the rule that chose them."""

    rep: SalesRep
    rule: str


class NoRoute(LookupError):
    """No routing rule admits this lead (a parsed file always ends with a rule for everyone)."""


def route(model: RoutingModel, lead: LeadProfile, load: Mapping[str, int]) -> Assignment:
    """The rep for `lead`: the first rule that admits it, then its least loaded rep.

    `load` is the number of open promotions per rep email (missing means none).
    Load is compared with capacity exactly (as fractions); ties go to the rep
    listed first.
    """
    open_by_email = {email.casefold(): count for email, count in load.items()}
    for rule in model.rules:
        if not rule.when.admits(lead):
            continue
        best = min(
            enumerate(rule.reps),
            key=lambda item: (
                Fraction(max(open_by_email.get(item[1].email.casefold(), 0), 0), item[1].capacity),
                item[0],
            ),
        )[1]
        return Assignment(rep=best, rule=rule.name)
    raise NoRoute(f"no routing rule admits the lead {lead.email}")
