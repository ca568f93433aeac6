"""One lead's timeline: everything that happened to it and every decision taken about it,
merged into one list of typed moments, newest first; and, per email step, why it was
or was not sent. Plain values in, plain values out.

The decisions come as the story `nurture leads why` tells (nurture.core.decisions
`Entry`: the decision log with the enrollments, deliveries, promotions and stage
changes); the rest — opens and clicks with their label, score changes, CRM pushes,
sales answers, profile and consent changes, other events — as the frozen facts below.

Newest first: the page is opened to see what happened lately ("why no email this
week?"), and a long-lived lead's first months would otherwise push that off-screen.
At one same instant, moments keep their causal order (entered, then branched, then
sent, then opened…), read bottom-up like the rest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType

from nurture.core.decisions import Entry, explain

# What each kind of moment is called on the page, and its rank among moments of the
# same instant (the order in which the engine does them).
TITLES: Mapping[str, tuple[str, int]] = {
    "profile": ("Profile changed", 0),
    "consent": ("Consent", 1),
    "event": ("Activity", 2),
    "not_enrolled": ("Not entered", 3),
    "not_recycled": ("Not re-enrolled", 3),
    "enrolled": ("Entered sequence", 4),
    "branch": ("Branch taken", 5),
    "split": ("A/B split", 5),
    "migrated": ("Moved to a new version", 5),
    "waiting": ("Waiting", 6),
    "resumed": ("Resumed", 6),
    "deferred": ("Deferred", 6),
    "held": ("Held", 6),
    "sent": ("Sent", 7),
    "skipped": ("Not sent", 7),
    "failed": ("Sending failed", 7),
    "uncertain": ("Maybe sent", 7),
    "retry": ("To be retried", 7),
    "opened": ("Opened", 8),
    "clicked": ("Clicked", 9),
    "score": ("Score", 10),
    "stage": ("Stage changed", 11),
    "completed": ("Completed sequence", 12),
    "exited": ("Left sequence", 12),
    "sunset": ("Sunset", 12),  # mailing stopped for never engaging, or taken back
    "promoted": ("Promoted to sales", 13),
    "crm": ("CRM push", 14),
    "sales": ("Sales answered", 15),
}
# A hit's classification (nurture.core.engagement), as the page labels it.
LABELS = {"human": "human", "machine_open": "machine", "scanner": "scanner", "unknown": "unknown"}
UNCLASSIFIED = "not yet classified"


@dataclass(frozen=True)
class Hit:
    """An open or a click of one email, as the tracking worker classified it."""

    at: datetime
    kind: str  # open | click
    classification: str | None  # None: not processed yet
    sequence_id: str
    step_id: str
    url: str | None = None
    reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScorePoints:
    at: datetime
    points: float
    rule: str
    reason: str
    score_after: float


@dataclass(frozen=True)
class Push:
    """A message to the CRM (the outbox) and how the CRM answered it so far."""

    at: datetime
    kind: str  # lead.promoted, lead.escalated…
    status: str  # pending | delivered | dead
    attempts: int
    last_status: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


@dataclass(frozen=True)
class Answer:
    """One answer sales sent back through the CRM."""

    at: datetime
    status: str
    amount: float | None = None
    reason: str | None = None


@dataclass(frozen=True)
class FieldChange:
    at: datetime
    field: str
    old: str | None
    new: str | None
    source: str


@dataclass(frozen=True)
class ConsentChange:
    at: datetime
    purpose: str
    granted: bool
    source: str
    text_version: str | None = None


@dataclass(frozen=True)
class Happened:
    """Any other event of the lead (a form, a page visit, a webinar…)."""

    at: datetime
    name: str
    origin: str
    details: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Moment:
    """One line of the timeline."""

    at: datetime
    kind: str  # a key of TITLES
    title: str
    text: str  # a plain sentence: what happened, and why
    sequence_id: str | None = None
    step_id: str | None = None
    label: str | None = None  # opens and clicks: human, machine, scanner, unknown…


@dataclass(frozen=True)
class Facts:
    """Everything known about one lead, as read from the database."""

    decisions: Sequence[Entry] = ()
    subjects: Mapping[tuple[str, str], str] = field(default_factory=lambda: MappingProxyType({}))
    hits: Sequence[Hit] = ()
    scores: Sequence[ScorePoints] = ()
    pushes: Sequence[Push] = ()
    answers: Sequence[Answer] = ()
    fields: Sequence[FieldChange] = ()
    consents: Sequence[ConsentChange] = ()
    events: Sequence[Happened] = ()


def timeline(facts: Facts) -> tuple[Moment, ...]:
    """Every moment, newest first; at one instant, the later step of the engine first."""
    moments = [
        *(_decided(e, facts.subjects) for e in facts.decisions if e.kind != "sales"),
        *(_hit(h) for h in facts.hits),
        *(_scored(s) for s in facts.scores),
        *(_pushed(p) for p in facts.pushes),
        *(_answered(a) for a in facts.answers),
        *(_changed(f) for f in facts.fields),
        *(_consented(c) for c in facts.consents),
        *(_happened(e) for e in facts.events),
    ]
    ranked = sorted(enumerate(moments), key=lambda m: (m[1].at, _rank(m[1].kind), m[0]))
    return tuple(moment for _, moment in reversed(ranked))


def _rank(kind: str) -> int:
    return TITLES.get(kind, ("", 99))[1]


def _moment(at: datetime, kind: str, text: str, **more: str | None) -> Moment:
    title = TITLES.get(kind, (kind.replace("_", " ").capitalize(), 99))[0]
    return Moment(at=at, kind=kind, title=title, text=text, **more)


def _decided(entry: Entry, subjects: Mapping[tuple[str, str], str]) -> Moment:
    text = entry.reason
    if entry.kind == "sent" and entry.sequence_id and entry.step_id:
        subject = subjects.get((entry.sequence_id, entry.step_id))
        if subject:
            text = f"{text}: “{subject}”"
    return _moment(entry.at, entry.kind, text, sequence_id=entry.sequence_id, step_id=entry.step_id)


def _hit(hit: Hit) -> Moment:
    found = hit.classification
    label = UNCLASSIFIED if found is None else LABELS.get(found, found)
    what = "opened the email" if hit.kind == "open" else f"clicked {hit.url or 'a link'}"
    why = f" ({', '.join(hit.reasons)})" if hit.reasons else ""
    text = f"{what}, by a {label}{why}" if hit.classification else f"{what}, {label}"
    kind = "opened" if hit.kind == "open" else "clicked"
    return _moment(
        hit.at, kind, text, sequence_id=hit.sequence_id, step_id=hit.step_id, label=label
    )


def _scored(change: ScorePoints) -> Moment:
    points = f"{change.points:+g}"
    text = f"{points} points, rule {change.rule}: {change.reason} (score {change.score_after:g})"
    return _moment(change.at, "score", text)


def _pushed(push: Push) -> Moment:
    tries = f"{push.attempts} attempt{'s' * (push.attempts != 1)}"
    match push.status:
        case "delivered":
            answer = f"delivered ({tries})"
            if push.last_status is not None:
                answer += f", the CRM answered HTTP {push.last_status}"
        case "dead":
            answer = f"given up after {tries}: {push.last_error or 'no answer'}"
        case _:
            answer = f"waiting for the CRM ({tries})"
            if push.last_error or push.last_status is not None:
                answer += f", last answer: {push.last_error or f'HTTP {push.last_status}'}"
    return _moment(push.at, "crm", f"{push.kind} {answer}")


def _answered(answer: Answer) -> Moment:
    text = f"sales answered {answer.status}"
    if answer.amount is not None:
        text += f", amount {answer.amount:,.2f}"
    if answer.reason:
        text += f" ({answer.reason})"
    return _moment(answer.at, "sales", text)


def _changed(change: FieldChange) -> Moment:
    text = f"{change.field}: {change.old or '—'} → {change.new or '—'} (from {change.source})"
    return _moment(change.at, "profile", text)


def _consented(change: ConsentChange) -> Moment:
    verb = "given" if change.granted else "withdrawn"
    shown = f", text {change.text_version}" if change.text_version else ""
    return _moment(
        change.at, "consent", f"{change.purpose} consent {verb} (from {change.source}{shown})"
    )


def _happened(event: Happened) -> Moment:
    details = ", ".join(f"{key} {value}" for key, value in event.details)
    text = f"{event.name} (from {event.origin}{': ' + details if details else ''})"
    return _moment(event.at, "event", text)


# --- why each email was, or was not, sent --------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where an enrollment stands (the row's columns)."""

    sequence_id: str
    status: str  # active | completed | exited
    step_id: str
    due_at: datetime | None = None
    exit_reason: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class EmailStep:
    step_id: str
    template: str


@dataclass(frozen=True)
class EmailVerdict:
    sequence_id: str
    step_id: str
    template: str
    outcome: str  # sent | not_sent | waiting | due | not_reached
    reason: str  # the plain sentence shown
    story: tuple[str, ...]  # what `nurture leads why --sequence --step` prints


SENT_KINDS = {
    "sent": "sent",
    "skipped": "not_sent",
    "failed": "not_sent",
    "uncertain": "sent",
    "retry": "waiting",
}
HOLDING = {"deferred", "waiting", "held"}


def email_verdicts(
    place: Place,
    steps: Iterable[EmailStep],
    decisions: Sequence[Entry],
    subjects: Mapping[tuple[str, str], str],
) -> tuple[EmailVerdict, ...]:
    """For each email step of one enrollment's sequence: was it sent, and if not, why."""
    return tuple(_verdict(place, step, decisions, subjects) for step in steps)


def _verdict(
    place: Place,
    step: EmailStep,
    decisions: Sequence[Entry],
    subjects: Mapping[tuple[str, str], str],
) -> EmailVerdict:
    seq = place.sequence_id
    story = tuple(explain(decisions, seq, step.step_id))
    own = sorted(
        (e for e in decisions if e.sequence_id == seq and e.step_id == step.step_id),
        key=lambda e: e.at,
    )
    sent = [e for e in own if e.kind in SENT_KINDS]
    held = [e for e in own if e.kind in HOLDING]

    def verdict(outcome: str, reason: str) -> EmailVerdict:
        return EmailVerdict(seq, step.step_id, step.template, outcome, reason, story)

    if sent:
        last = sent[-1]
        if last.kind == "sent":
            subject = subjects.get((seq, step.step_id))
            said = f"Sent {last.at:%Y-%m-%d %H:%M} UTC" + (f": “{subject}”" if subject else "")
            return verdict("sent", said + ".")
        return verdict(SENT_KINDS[last.kind], _capital(last.reason) + ".")
    at_step = place.status == "active" and place.step_id == step.step_id
    if held and at_step:
        return verdict("waiting", f"Not sent yet: {held[-1].reason}.")
    if at_step:
        if place.note:
            return verdict("waiting", f"Not sent yet: {place.note}.")
        due = f" at {place.due_at:%Y-%m-%d %H:%M} UTC" if place.due_at else ""
        return verdict("due", f"Not sent yet: due{due}, the lead is at this step.")
    if place.status == "active":
        return verdict("not_reached", f"Not reached (yet): the lead is at step {place.step_id}.")
    left = place.exit_reason or place.status
    if left == "completed" or place.status == "completed":
        return verdict("not_reached", "Not sent: the lead completed the sequence on another path.")
    return verdict(
        "not_reached", f"Not sent: the lead left the sequence before this step ({left})."
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]
