"""What the demo's people and salespeople do: pure functions of a `random.Random`.

A reader meets each email the engine sent and, from their latent interest and their
mailbox, this decides what reaches the tracking routes and when: a person's opens and
clicks, the opens Apple Mail Privacy Protection makes for them, the clicks a security
gateway makes seconds after delivery, an unsubscribe, a bounce or a complaint, and what
the reader does next on the website (pricing page, demo request). The sales side
decides the CRM's answers to each promotion: how fast, which status, what amount.
`nurture.demo` carries these out through the real routes at the times given here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from random import Random
from typing import Literal
from zoneinfo import ZoneInfo

from nurture.demo_people import WEBINAR, WHITEPAPER_FORM, Person

# What fetches the pixel or follows a link. The engine's labels come from these
# (nurture/core/engagement.py): a mail client or browser is a person; Apple's proxy
# (a bare "Mozilla/5.0" from 17.0.0.0/8) a machine; gateways scanners.
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17328; Pro)"
BROWSERS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like"
    " Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
)
APPLE_PROXY = "Mozilla/5.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
GATEWAYS = (
    "Mozilla/5.0 (compatible; Barracuda Sentinel URL Scanner)",
    "Mimecast URL Protect/1.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/70.0.3538.102 Safari/537.36 Edge/12.246",
    "Proofpoint URL Defense/2.0",
)
# Emails close to a decision: a click there is worth more, and leads to more.
DECISIVE_KINDS = frozenset({"comparison", "market_study", "self_assessment", "event_invitation"})
REJECTIONS = ("not the decision maker", "no budget this year", "already equipped",
              "duplicate of an open account")  # fmt: skip
LOSSES = ("went with a competitor", "project postponed", "price")
# Website pages the scoring file counts (sequences/rules/scoring.yaml).
PAGES = {"fr": ("/fr/tarifs", "/fr/clients", "/fr/integrations"),
         "en": ("/pricing", "/customers", "/integrations")}  # fmt: skip


@dataclass(frozen=True)
class Email:
    """One email the engine sent, as its reader meets it."""

    delivery_id: int
    message_id: str
    sequence: str
    step: str
    kind: str
    sent_at: datetime  # as the engine stamped it: the run's time and the seconds it took
    links: tuple[int, ...]  # the link indexes a person may click, the main one first
    honeypot: int | None


@dataclass(frozen=True)
class Hit:
    """A request for an email's pixel (`link` None) or one of its links."""

    at: datetime
    delivery_id: int
    link: int | None
    agent: str
    ip: str
    method: str = "GET"


@dataclass(frozen=True)
class Unsubscribe:
    at: datetime
    delivery_id: int
    one_click: bool  # the mail client's button (RFC 8058), else the page's form


@dataclass(frozen=True)
class Report:
    """Something the lead did that another system tells the API: the website, the
    webinar platform, the relay's bounce processing, a provider's complaint loop."""

    at: datetime
    email: str
    name: str
    properties: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class FormPost:
    """The lead fills in a form of the website."""

    at: datetime
    email: str
    form: str


Action = Hit | Unsubscribe | Report | FormPost


def reactions(rng: Random, person: Person, email: Email) -> list[Action]:
    """What arrives because this email reached this person.

    People's times count from the minute the email was sent, never from its seconds:
    those are the real time the engine's run took, which varies from one machine (or
    one run) to the next, and the same seed must tell the same story.
    """
    arrived = email.sent_at.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if person.gone:  # the relay's bounce processing reports it within minutes
        at = arrived + timedelta(minutes=rng.uniform(1, 20))
        reason = "550 5.1.1 mailbox unavailable"
        return [Report(at, person.email, "bounced", {"message_id": email.message_id,
                                                      "reason": reason})]  # fmt: skip
    found: list[Action] = [*_machines(rng, person, email)]
    interest = person.interest
    if rng.random() < 0.003 * (1 - interest):  # "report spam", rather than unsubscribe
        at = arrived + timedelta(hours=rng.uniform(1, 30))
        found.append(Report(at, person.email, "complained", {"message_id": email.message_id}))
        return found
    reads = rng.random() < 0.12 + 0.6 * interest
    read_at = _awake(rng, arrived + timedelta(hours=rng.lognormvariate(1.0, 1.1)), person)
    if reads and person.mailbox != "apple":  # behind Apple's proxy, its first fetch was all
        agent = {"outlook": OUTLOOK, "gateway": OUTLOOK, "gmail": GMAIL_PROXY}.get(
            person.mailbox, rng.choice(BROWSERS)
        )
        found.append(Hit(read_at, email.delivery_id, None, agent, person.ip))
    leaving = 0.004 + 0.03 * (1 - interest) ** 2
    if rng.random() < leaving:
        at = (read_at if reads else arrived) + timedelta(minutes=rng.uniform(0.5, 5))
        found.append(Unsubscribe(at, email.delivery_id, one_click=rng.random() < 0.6))
        return found
    if not reads or not email.links:
        return found
    bonus = 0.05 if email.kind in DECISIVE_KINDS else 0.0
    if rng.random() < 0.06 + 0.55 * interest**1.3 + bonus:
        found += _click(rng, person, email, read_at + timedelta(seconds=rng.uniform(15, 240)))
    return found


def _machines(rng: Random, person: Person, email: Email) -> list[Hit]:
    """What fetches the email without a person: Apple's privacy proxy loads the pixel
    when the message arrives; a security gateway follows every link (the hidden one
    too) and loads the pixel seconds after delivery."""
    sent = email.sent_at  # seconds after it, for a gateway: what gives it away
    if person.mailbox == "apple":
        at = sent.replace(second=0, microsecond=0) + timedelta(seconds=rng.uniform(70, 1200))
        ip = f"17.58.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
        return [Hit(at, email.delivery_id, None, APPLE_PROXY, ip)]
    if person.mailbox != "gateway":
        return []
    agent = Random(person.email.partition("@")[2]).choice(GATEWAYS)  # one per company
    ip = f"208.{rng.randint(64, 127)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    at = sent + timedelta(seconds=rng.uniform(1, 6))
    hits = [Hit(at, email.delivery_id, None, agent, ip)]
    links = [*email.links, *([email.honeypot] if email.honeypot is not None else [])]
    method = "HEAD" if rng.random() < 0.3 else "GET"
    for link in links:
        at += timedelta(seconds=rng.uniform(0.05, 0.4))
        hits.append(Hit(at, email.delivery_id, link, agent, ip, method))
    return hits


def _click(rng: Random, person: Person, email: Email, at: datetime) -> list[Action]:
    """A person's click, and what they may do next on the website."""
    agent = rng.choice(BROWSERS)
    link = email.links[0] if rng.random() < 0.8 else rng.choice(email.links)
    found: list[Action] = [Hit(at, email.delivery_id, link, agent, person.ip)]
    interest, later = person.interest, at
    french = person.french

    def then(name: str, properties: Mapping[str, object] | None = None) -> None:
        nonlocal later
        later += timedelta(minutes=rng.uniform(1, 25))
        found.append(Report(later, person.email, name, properties or {}))

    if rng.random() < 0.5 * interest:
        then("page_visited", {"path": "/fr/tarifs" if french else "/pricing"})
    if rng.random() < 0.4 * interest:
        then("page_visited", {"path": "/fr/clients" if french else "/customers"})
    if email.step == "workshop" and rng.random() < 0.5 * interest:
        then("workshop_booked", {"webinar": WEBINAR})
    elif rng.random() < (0.5 if email.kind in DECISIVE_KINDS else 0.12) * interest**2:
        then("demo_requested", {"page": "/fr/demo" if french else "/demo"})
    elif email.kind == "comparison" and rng.random() < 0.1 * interest:
        then("pricing_form_submitted", {"form": "pricing"})
    return found


def later_steps(
    rng: Random, person: Person, sessions: list[datetime], end: datetime
) -> list[Action]:
    """What a person does after arriving, whatever the emails: attend the session they
    registered for, register for a later one, download the white paper at last."""
    found: list[Action] = []
    if person.session is not None and rng.random() < 0.35 + 0.45 * person.interest:
        at = person.session + timedelta(minutes=50)  # the platform's attendance sync
        day = f"{person.session:%Y-%m-%d}"
        found.append(Report(at, person.email, "webinar_attended",
                            {"webinar": WEBINAR, "session": day}))  # fmt: skip
    if person.start == "newsletter" and rng.random() < 0.35:
        at = person.posted_at + timedelta(days=rng.uniform(5, 60))
        found.append(FormPost(_awake(rng, at, person), person.email, WHITEPAPER_FORM))
    if person.session is None and rng.random() < 0.25 * person.interest:
        later = [s for s in sessions if s > person.posted_at + timedelta(days=9)]
        if later:
            session = rng.choice(later)
            registered = session - timedelta(days=rng.uniform(1, 8))
            name = f"{session:%Y-%m-%d}"
            found.append(Report(registered, person.email, "webinar_registered",
                                {"webinar": WEBINAR, "session": name}))  # fmt: skip
            if rng.random() < 0.4 + 0.4 * person.interest:
                attended = session + timedelta(minutes=50)
                found.append(Report(attended, person.email, "webinar_attended",
                                    {"webinar": WEBINAR, "session": name}))  # fmt: skip
    if person.interest > 0.55:  # the keenest come back to the website on their own
        for _ in range(rng.randint(1, 3)):
            at = _awake(rng, person.posted_at + timedelta(days=rng.uniform(2, 45)), person)
            path = rng.choice(PAGES["fr" if person.french else "en"])
            found.append(Report(at, person.email, "page_visited", {"path": path}))
    return [action for action in found if action.at <= end]


def _awake(rng: Random, at: datetime, person: Person) -> datetime:
    """`at`, or the next morning when it falls in the person's night."""
    zone = ZoneInfo(person.timezone)
    local = at.astimezone(zone)
    if 7 <= local.hour < 23:
        return at
    morning = local.date() + timedelta(days=1 if local.hour >= 23 else 0)
    hours = rng.uniform(7, 10)
    return (datetime.combine(morning, time(), zone) + timedelta(hours=hours)).astimezone(at.tzinfo)


# --- sales ------------------------------------------------------------------------------

Status = Literal["accepted", "rejected", "opportunity", "won", "lost"]


@dataclass(frozen=True)
class SalesAnswer:
    at: datetime
    status: Status
    amount: float | None = None
    reason: str | None = None
    sequence: str | None = None  # where a rejected lead goes back to nurture


def pace(rep_email: str | None) -> float:
    """How slowly a rep answers, from 0.6 (quick) to 2.0: the same rep always alike."""
    return Random(rep_email or "nobody").uniform(0.6, 2.0)


def sales_answers(
    rng: Random, pushed_at: datetime, rep_pace: float, ready: bool, *, may_ignore: bool = True
) -> list[SalesAnswer]:
    """The CRM's answers to one promotion, in order; none when nobody ever answers.

    `ready`: the lead asked for it (a demo, a price) or said its project is near: sales
    takes more of those, sooner. Some first answers come after the SLA (24 business
    hours), which the engine escalates, then reassigns.
    """
    if may_ignore and rng.random() < 0.1:
        return []
    roll = rng.random()
    # Most within the day; some after the SLA's 24 business hours; a few days later.
    low, high = (1, 16) if roll < 0.65 else (20, 60) if roll < 0.9 else (60, 160)
    hours = rng.uniform(low, high)
    first = pushed_at + timedelta(hours=hours * rep_pace)
    if rng.random() < (0.12 if ready else 0.3):
        reason = rng.choice(REJECTIONS)
        back = "whitepaper-evaluation" if reason == "no budget this year" else None
        return [SalesAnswer(first, "rejected", reason=reason, sequence=back)]
    answers = [SalesAnswer(first, "accepted")]
    if rng.random() > (0.7 if ready else 0.45):
        if rng.random() < 0.4:
            lost = first + timedelta(days=rng.uniform(10, 40))
            answers.append(SalesAnswer(lost, "lost", reason=rng.choice(LOSSES)))
        return answers
    amount = round(rng.lognormvariate(math.log(30_000), 0.5) / 500) * 500.0
    # Hand-raisers buy faster: days to an opportunity and weeks to a deal, not months.
    opened = first + timedelta(days=rng.uniform(2, 8) if ready else rng.uniform(7, 30))
    answers.append(SalesAnswer(opened, "opportunity", amount))
    roll = rng.random()
    if roll < (0.5 if ready else 0.35):
        won = opened + timedelta(days=rng.uniform(5, 21) if ready else rng.uniform(20, 60))
        answers.append(SalesAnswer(won, "won", round(amount * rng.uniform(0.85, 1.0), -2)))
    elif roll < 0.8:
        lost = opened + timedelta(days=rng.uniform(15, 60))
        answers.append(SalesAnswer(lost, "lost", reason=rng.choice(LOSSES)))
    return answers
