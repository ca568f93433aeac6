"""A parsed sequence definition: frozen values, no I/O.

`sequence_parser` turns a YAML file into these values (or into problems with
file:line); the journey, the dispatcher and the simulator only ever see these.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from nurture.core.profile import LeadProfile

END = "end"
"""The branch/goto target that ends an enrollment normally."""

STAGES = (
    "subscriber",
    "lead",
    "mql",
    "sql",
    "opportunity",
    "customer",
    "disqualified",
    "recycled",
)

CONTENT_KINDS = (
    "testimonial",
    "guide",
    "comparison",
    "market_study",
    "self_assessment",
    "newsletter",
    "event_invitation",
    "case_study",
    "webinar_recording",
    "product_update",
    "upsell",
    "cross_sell",
    "renewal",
    "onboarding",
    "other",
)


@dataclass(frozen=True)
class Duration:
    """A span of time as a marketer writes it: "2 days", "3 business days"."""

    amount: int
    unit: str  # minutes | hours | days | weeks | business_days

    def __str__(self) -> str:
        unit = self.unit.replace("_", " ")
        if self.amount == 1:
            unit = unit.removesuffix("s")
        return f"{self.amount} {unit}"


@dataclass(frozen=True)
class SendWindow:
    """Days of week (0 = Monday) and local hours during which emails may leave."""

    days: frozenset[int]
    start: time
    end: time
    # The public holidays of the lead's country are off: the window is closed on them and
    # business days skip them (`holidays: false` in the file sends on them too).
    holidays: bool = True


class TriggerKind(StrEnum):
    LEAD_CREATED = "lead_created"  # created or imported
    EVENT = "event"  # any event by name (form_submitted, webinar_attended, page_visited...)
    STAGE_REACHED = "stage_reached"
    TAG_ADDED = "tag_added"
    # Evaluated by a periodic job over every lead at once (nurture.triggers), not on
    # something happening to one lead.
    INACTIVE = "inactive"
    DATE = "date"
    ACCOUNT_ENGAGED = "account_engaged"


ENGAGEMENT_EVENTS = ("email_clicked", "form_submitted")
"""What ends an inactive spell: a human click (not a scanner's, not an open: machine
opens from privacy proxies would keep everyone "active") or a form submitted."""


@dataclass(frozen=True)
class DateRule:
    """A day relative to a date kept in a lead field: `offset_days` after it (negative:
    before); with `yearly`, the same day relative to each anniversary of that date."""

    field: str
    offset_days: int = 0
    yearly: bool = False

    def __str__(self) -> str:
        if self.offset_days == 0:
            when = f"on {self.field}"
        else:
            side = "before" if self.offset_days < 0 else "after"
            days = abs(self.offset_days)
            when = f"{days} day{'s' if days != 1 else ''} {side} {self.field}"
        return f"{when}, every year" if self.yearly else when


@dataclass(frozen=True)
class AccountSignal:
    """A buying signal: `contacts` distinct people of the lead's account engaged (a
    human click or a form) within the last `within_days`."""

    contacts: int
    within_days: int

    def __str__(self) -> str:
        return f"when {self.contacts} people of the account engaged within {self.within_days} days"


@dataclass(frozen=True)
class Trigger:
    """What enrols a lead.

    For LEAD_CREATED, `match` is compared with the lead's fields (source, campaign).
    For EVENT, `event` is the event name and `match` with its properties
    (e.g. {"form": "whitepaper-roi"} or {"path": "/pricing"}).
    For INACTIVE, `inactive_days` without engagement; for DATE, `date`; for
    ACCOUNT_ENGAGED, `account`.
    """

    kind: TriggerKind
    event: str | None = None
    stage: str | None = None
    tag: str | None = None
    match: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    inactive_days: int | None = None
    date: DateRule | None = None
    account: AccountSignal | None = None
    line: int = 0

    @property
    def periodic(self) -> bool:
        """Found by the periodic job rather than fired by one lead's occurrence."""
        return self.kind in (TriggerKind.INACTIVE, TriggerKind.DATE, TriggerKind.ACCOUNT_ENGAGED)


@dataclass(frozen=True)
class IntRange:
    min: int | None = None
    max: int | None = None

    def contains(self, value: int | None) -> bool:
        if value is None:
            return False
        if self.min is not None and value < self.min:
            return False
        return not (self.max is not None and value > self.max)


@dataclass(frozen=True)
class Audience:
    """Who may enter. Every given criterion must hold; an empty Audience admits all."""

    countries: frozenset[str] | None = None
    company_size: IntRange | None = None
    job_title_contains: tuple[str, ...] = ()
    sources: frozenset[str] | None = None
    locales: frozenset[str] | None = None
    stages: frozenset[str] | None = None
    fields: Mapping[str, frozenset[str]] = field(default_factory=lambda: MappingProxyType({}))

    def admits(self, lead: LeadProfile) -> bool:
        if self.countries is not None and (lead.country or "").upper() not in self.countries:
            return False
        if self.company_size is not None and not self.company_size.contains(lead.company_size):
            return False
        if self.job_title_contains:
            title = (lead.job_title or "").casefold()
            if not any(word.casefold() in title for word in self.job_title_contains):
                return False
        if self.sources is not None and lead.source not in self.sources:
            return False
        if self.locales is not None and (lead.locale or "") not in self.locales:
            return False
        if self.stages is not None and lead.stage not in self.stages:
            return False
        for name, allowed in self.fields.items():
            value = lead.value(name)
            if value is None or as_text(value) not in allowed:
                return False
        return True


def as_text(value: Any) -> str:
    """A field value as files write it: JSON true is "true", not Python's "True"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Reentry:
    """May a lead that left enter again? never, or after a cool-down since it left."""

    allowed: bool = False
    cooldown: Duration | None = None


@dataclass(frozen=True)
class ExitRules:
    """Goals and exits. Unsubscribed, bounced and disqualified leads always leave."""

    events: frozenset[str] = frozenset()
    stages: frozenset[str] = frozenset()


# --- steps -------------------------------------------------------------------


@dataclass(frozen=True)
class EmailStep:
    id: str
    template: str
    kind: str
    subject: str | None = None  # a Jinja template overriding the template's subject.txt
    next: str = END
    line: int = 0


@dataclass(frozen=True)
class WaitStep:
    """Wait a duration, or until an event (with a timeout).

    With `until_event`, the lead moves to `on_event` when the event happens after the
    wait began, or to `next` when `timeout` runs out.
    """

    id: str
    duration: Duration | None = None
    until_event: str | None = None
    until_match: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    timeout: Duration | None = None
    on_event: str | None = None  # defaults to `next`
    next: str = END
    line: int = 0


@dataclass(frozen=True)
class Clicked:
    step: str


@dataclass(frozen=True)
class NotClicked:
    step: str


@dataclass(frozen=True)
class Opened:
    step: str


@dataclass(frozen=True)
class ScoreAtLeast:
    points: int


@dataclass(frozen=True)
class FieldMatches:
    field: str
    values: frozenset[str] = frozenset()
    range: IntRange | None = None


@dataclass(frozen=True)
class StageIs:
    stages: frozenset[str]


@dataclass(frozen=True)
class EventSeen:
    """The lead did this event since entering the sequence."""

    name: str


Condition = Clicked | NotClicked | Opened | ScoreAtLeast | FieldMatches | StageIs | EventSeen


@dataclass(frozen=True)
class BranchRule:
    condition: Condition
    goto: str
    line: int = 0


@dataclass(frozen=True)
class BranchStep:
    """The first rule that holds decides; else `otherwise`."""

    id: str
    rules: tuple[BranchRule, ...]
    otherwise: str = END
    line: int = 0


SPLIT_METRICS = ("human_clicks", "mql", "sql")
HOLDOUT = "holdout"
"""The name results give the share of a split that gets nothing from it."""


@dataclass(frozen=True)
class Variant:
    """One arm of a split: `weight` against the others; either overrides the split's
    email (`template`, `subject`) or sends the lead to `goto` instead."""

    name: str
    weight: int
    template: str | None = None
    subject: str | None = None
    goto: str | None = None
    line: int = 0


@dataclass(frozen=True)
class StopRule:
    """When a split ends: the leading variant beats every other on `metric` at
    `confidence`, each having at least `min_per_variant` leads."""

    metric: str  # human_clicks | mql | sql
    confidence: float = 0.95
    min_per_variant: int = 100


@dataclass(frozen=True)
class SplitStep:
    """An A/B (or A/B/n) test. Each lead is assigned one variant, for good; the
    `holdout` share gets nothing from the split and goes on to `next`. A variant
    without `goto` sends `email` (with its overrides), then goes on to `next`."""

    id: str
    variants: tuple[Variant, ...]
    email: EmailStep | None = None
    holdout: float = 0.0
    stop: StopRule | None = None
    next: str = END
    line: int = 0

    def variant(self, name: str) -> Variant | None:
        return next((v for v in self.variants if v.name == name), None)

    def email_of(self, name: str) -> EmailStep | None:
        """The email a lead assigned `name` gets (None: the holdout, or a goto variant)."""
        found = self.variant(name)
        if found is None or found.goto is not None or self.email is None:
            return None
        template = found.template or self.email.template
        subject = found.subject if found.subject is not None else self.email.subject
        return replace(self.email, id=self.id, template=template, subject=subject, next=self.next)

    def target_of(self, name: str) -> str:
        """Where a lead assigned `name` goes once the split is done with it."""
        found = self.variant(name)
        return found.goto if found is not None and found.goto is not None else self.next


Step = EmailStep | WaitStep | BranchStep | SplitStep


@dataclass(frozen=True)
class Migration:
    """One `migrate:` entry: leads in flight at step `old` of an earlier version move to
    step `new` of this one on `nurture apply` (`new` is "stay": they do not move)."""

    old: str
    new: str
    line: int = 0


@dataclass(frozen=True)
class Sequence:
    """One sequence file, parsed. `version` is the content hash of the file."""

    id: str
    name: str
    path: str
    version: str
    source: str
    steps: tuple[Step, ...]
    triggers: tuple[Trigger, ...] = ()
    audience: Audience = Audience()
    exit: ExitRules = ExitRules()
    window: SendWindow | None = None
    timezone: str = "UTC"  # the sequence default, when neither lead nor country gives one
    reentry: Reentry = Reentry()
    priority: int = 0  # higher goes first under the frequency cap
    locales: tuple[str, ...] = ("en",)  # every email must exist in each (with fallback)
    default_locale: str = "en"
    enabled: bool = True
    # A lead that reaches the end (no goal met, no click nor form since it entered) is
    # sunset: no sequence emails any more, until it comes back by itself (a form).
    sunset: bool = False
    migrate: tuple[Migration, ...] = ()

    @property
    def first_step(self) -> str:
        return self.steps[0].id if self.steps else END

    def step(self, step_id: str) -> Step | None:
        return _index(self).get(step_id)

    def email_steps(self) -> tuple[EmailStep, ...]:
        """The emails, a split's own email (under the split's id) among them."""
        found: list[EmailStep] = []
        for s in self.steps:
            if isinstance(s, EmailStep):
                found.append(s)
            elif isinstance(s, SplitStep) and s.email is not None:
                found.append(replace(s.email, id=s.id, next=s.next, line=s.line))
        return tuple(found)

    def email(self, step_id: str, variant: str | None = None) -> EmailStep | None:
        """The email of this email step, or of this split: its own, or that `variant`'s."""
        if variant is not None:
            split = self.step(step_id)
            return split.email_of(variant) if isinstance(split, SplitStep) else None
        return next((e for e in self.email_steps() if e.id == step_id), None)

    def splits(self) -> tuple[SplitStep, ...]:
        return tuple(s for s in self.steps if isinstance(s, SplitStep))


_INDEXES: dict[tuple[str, str], Mapping[str, Step]] = {}


def _index(seq: Sequence) -> Mapping[str, Step]:
    key = (seq.id, seq.version)
    found = _INDEXES.get(key)
    if found is None:
        found = MappingProxyType({s.id: s for s in seq.steps})
        _INDEXES[key] = found
    return found


def describe_condition(condition: Condition) -> str:
    """A short human phrase, for timelines and logs."""
    match condition:
        case Clicked(step):
            return f"clicked {step}"
        case NotClicked(step):
            return f"did not click {step}"
        case Opened(step):
            return f"opened {step}"
        case ScoreAtLeast(points):
            return f"score >= {points}"
        case FieldMatches(name, values, rng):
            if rng is not None:
                return f"{name} in {rng.min}..{rng.max}"
            return f"{name} in {sorted(values)}"
        case StageIs(stages):
            return f"stage in {sorted(stages)}"
        case EventSeen(name):
            return f"did {name}"
    raise AssertionError(condition)  # pragma: no cover


def as_mapping(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(values))
