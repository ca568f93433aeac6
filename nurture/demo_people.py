"""The demo's made-up people: who they are, where they come from, when they arrive.

Pure functions of a `random.Random` and the period: no database, no web app, no clock
read. `nurture.demo` posts what is drawn here through the real routes. Most people fit
the shipped audiences (sequences/*.yaml: FR, BE, CH, CA, GB; 50 to 5,000 employees)
and the scoring file's fit rules (titles that decide or plan, manufacturing); some are
drawn to be kept out (students, competitors, shared mailboxes, plants too small, other
countries), as a real intake would be. Every address is under `.example` (RFC 2606):
no email of the demo can reach anyone.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from random import Random
from types import MappingProxyType
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

Door = Literal["batch", "single", "form"]
"""How a person reaches nurture: a batch an integration syncs, one API call, a web form."""
Start = Literal["whitepaper", "webinar", "newsletter", "none"]
"""What they ask for on arrival: the white paper, a webinar seat, the newsletter, nothing."""
Mailbox = Literal["outlook", "apple", "webmail", "gmail", "gateway"]
"""What fetches their mail: a mail client, Apple's privacy proxy, a browser, Google's
image proxy, or a security gateway in front of their company's mail."""

WHITEPAPER_FORM = "whitepaper-planning-roi"  # the trigger of sequences/whitepaper-evaluation
WEBINAR = "planifia-live"  # the trigger of sequences/webinar-followup
SCHOOL_SIZE = 0  # a school: no plant to plan
T = TypeVar("T")


@dataclass(frozen=True)
class Country:
    code: str
    weight: float
    timezone: str
    french: float  # share of its leads who read French


COUNTRIES = (
    Country("FR", 44, "Europe/Paris", 1.0),
    Country("BE", 11, "Europe/Brussels", 0.7),
    Country("CH", 9, "Europe/Zurich", 0.8),
    Country("CA", 14, "America/Toronto", 0.4),
    Country("GB", 15, "Europe/London", 0.0),
    # Outside every shipped audience: leads, never enrolled.
    Country("DE", 3, "Europe/Berlin", 0.0),
    Country("US", 4, "America/Chicago", 0.0),
)


@dataclass(frozen=True)
class Channel:
    """A source of leads, as marketing pays for it and the reports name it."""

    source: str
    weight: float
    door: Door
    campaigns: tuple[str, ...]
    utm: tuple[str, str] | None  # utm_source, utm_medium
    starts: tuple[tuple[Start, float], ...]
    interest: float  # added to the latent interest: warmer channels
    timeline: float  # share who answer "when is your project?"
    cost: tuple[int, int]  # spent a month, per campaign (a show: in its month), low to high


CHANNELS = (
    # LinkedIn Lead Gen forms, synced by an integration three times a day.
    Channel("linkedin ads", 23, "batch", ("planning-roi-directors", "ordonnancement-dirigeants"),
            ("linkedin", "paid_social"), (("whitepaper", 1.0),), 0.0, 0.0, (1400, 2200)),
    # Google Ads lead-form assets, synced by a connector three times a day.
    Channel("google ads", 19, "batch", ("aps-software-search", "logiciel-ordonnancement"),
            ("google", "cpc"), (("whitepaper", 0.9), ("none", 0.1)), 0.0, 0.3, (900, 1600)),
    # The webinar platform's registrants, synced three times a day.
    Channel("webinar", 17, "batch", (WEBINAR,), ("webinar-platform", "event"),
            (("webinar", 1.0),), 0.1, 0.0, (390, 390)),
    # The website's own forms: organic search, the newsletter (content and SEO costs).
    Channel("website form", 17, "form", (), None,
            (("whitepaper", 0.75), ("newsletter", 0.25)), 0.0, 0.0, (500, 800)),
    # Badges scanned at trade shows, imported two days after each show.
    Channel("trade show", 12, "batch", (), None, (("whitepaper", 0.6), ("none", 0.4)), 0.05, 0.4,
            (9000, 14000)),
    # Integrators who bring a project through the partner portal (their commission).
    Channel("partner", 8, "single", ("integrateur-lyon", "erp-conseil-nord"), None,
            (("whitepaper", 0.5), ("none", 0.5)), 0.15, 0.6, (300, 700)),
    # Customers who refer a peer (a thank-you gift).
    Channel("referral", 4, "single", ("customer-referral",), None,
            (("whitepaper", 0.4), ("none", 0.6)), 0.25, 0.5, (100, 200)),
)  # fmt: skip

INDUSTRIES = (("manufacturing", 30), ("metalworking", 20), ("plastics", 15),
              ("automotive supplier", 12), ("food processing", 10), ("logistics", 5),
              (None, 8))  # fmt: skip
TIMELINES = (("< 3 months", 12), ("this quarter", 8), ("3-6 months", 25), ("6-12 months", 30),
             ("no project yet", 25))  # fmt: skip

# Titles by language: who decides (fit +10), who plans (+8), everyone else (0).
DECIDE: dict[str, tuple[str, ...]] = {
    "fr": ("Directeur industriel", "Directrice industrielle", "Directeur des opérations",
           "Directrice des opérations", "Directeur d'usine", "Directrice de site",
           "Responsable de production", "Responsable d'usine", "Président", "Gérant"),
    "en": ("Plant Manager", "Operations Director", "Head of Production", "VP Operations",
           "Managing Director", "Chief Operating Officer", "Head of Manufacturing"),
}  # fmt: skip
PLAN: dict[str, tuple[str, ...]] = {
    "fr": ("Responsable planification", "Planificatrice de production", "Planificateur",
           "Responsable ordonnancement", "Ingénieur méthodes", "Responsable supply chain"),
    "en": ("Production Planner", "Master Scheduler", "Supply Chain Manager",
           "Industrial Engineer", "Senior Production Planner"),
}  # fmt: skip
OTHER: dict[str, tuple[str, ...]] = {
    "fr": ("Acheteuse", "Contrôleur de gestion", "Technicien maintenance",
           "Chargée de communication", "Responsable qualité"),
    "en": ("Buyer", "Finance Controller", "Maintenance Technician", "Quality Manager",
           "Marketing Coordinator"),
}  # fmt: skip
STUDENT = {"fr": "Étudiant en génie industriel", "en": "Industrial Engineering Student"}
FIRST: dict[str, tuple[str, ...]] = {
    "fr": ("Claire", "Julien", "Camille", "Nicolas", "Hélène", "Jérôme", "Sophie", "François",
           "Émilie", "Loïc", "Nathalie", "Thomas", "Céline", "Mathieu", "Aurélie", "Pierre",
           "Élodie", "Sébastien", "Manon", "Guillaume", "Chloé", "Antoine", "Inès", "Benoît",
           "Léa", "Yannick", "Margaux", "Olivier", "Anaïs", "Frédéric"),
    "en": ("Emma", "James", "Olivia", "Oliver", "Amelia", "Harry", "Isla", "George", "Ava",
           "Noah", "Grace", "Jack", "Sophie", "Liam", "Charlotte", "Ethan", "Megan", "Ryan",
           "Hannah", "Daniel", "Chloe", "Lucas", "Emily", "Owen"),
}  # fmt: skip
LAST: dict[str, tuple[str, ...]] = {
    "fr": ("Martin", "Bernard", "Dubois", "Thomas", "Robert", "Richard", "Petit", "Durand",
           "Leroy", "Moreau", "Simon", "Laurent", "Lefèvre", "Michel", "Garcia", "Fournier",
           "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine", "Rousseau", "Vincent",
           "Muller", "Faure", "Mercier", "Blanc", "Guérin", "Boucher", "Gagnon", "Tremblay",
           "Côté", "Peeters", "Janssens", "Favre", "Meyer"),
    "en": ("Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies",
           "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green",
           "Hall", "Wood", "Jackson", "Clarke", "Patel", "Campbell", "MacDonald", "Murphy"),
}  # fmt: skip
# Company names: a trade and a family or place name.
TRADES: dict[str, tuple[str, ...]] = {
    "fr": ("Moulages", "Plasturgie", "Décolletage", "Fonderie", "Tôlerie", "Usinage",
           "Mécanique", "Emboutissage", "Conserverie", "Forges", "Injection", "Traitements"),
    "en": ("Precision", "Plastics", "Engineering", "Castings", "Stamping", "Components",
           "Machining", "Fabrication", "Foods", "Mouldings"),
}  # fmt: skip
PLACES: dict[str, tuple[str, ...]] = {
    "fr": ("du Jura", "de l'Ain", "Rhône-Alpes", "du Nord", "de Savoie", "Vosgiennes",
           "de Normandie", "du Léman", "Ardennaises", "de Wallonie", "du Québec"),
    "en": ("Midlands", "Thames", "Pennine", "Severn", "Ontario", "Maple", "Clyde", "Humber",
           "Lakeside", "Northern"),
}  # fmt: skip
SCHOOLS = ("INSA Lyon", "Arts et Métiers", "Polytechnique Montréal", "Cranfield University")
COMPETITORS = ("asprova.example", "ortems.example", "planiware.example")
SHARED_MAILBOXES = ("contact", "usine", "production", "planning", "info")


@dataclass(frozen=True)
class Company:
    name: str
    domain: str
    size: int
    industry: str | None
    country: Country
    gateway: bool  # its mail passes a security gateway that follows every link


@dataclass(frozen=True)
class Person:
    """One made-up lead: who, where from, when, and how they tend to behave."""

    number: int
    email: str
    first_name: str
    last_name: str
    company: str
    job_title: str
    company_size: int | None
    country: str
    timezone: str
    locale: str
    source: str
    campaign: str | None
    utm: tuple[str, str] | None
    door: Door
    start: Start
    arrives_at: datetime  # when they filled in the form or were scanned
    posted_at: datetime  # when their lead reaches nurture (a sync, an import, at once)
    interest: float  # latent, 0 to 1: how much they read, click and ask
    mailbox: Mailbox
    gone: bool  # the address no longer exists: the first email bounces
    ip: str  # where their clicks come from
    fields: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    session: datetime | None = None  # the webinar session they registered for

    @property
    def french(self) -> bool:
        return self.locale == "fr"


@dataclass(frozen=True)
class TradeShow:
    campaign: str
    day: date


def webinar_sessions(start: datetime, end: datetime) -> list[datetime]:
    """Planifia Live: the second Tuesday of each month, 10:00 in Paris."""
    paris = ZoneInfo("Europe/Paris")
    found = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        first = date(year, month, 1)
        tuesday = first + timedelta(days=(1 - first.weekday()) % 7 + 7)
        at = datetime.combine(tuesday, time(10), paris).astimezone(UTC)
        if start <= at <= end:
            found.append(at)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return found


def trade_shows(start: datetime, end: datetime) -> list[TradeShow]:
    """Two shows: one a third into the period, one at two thirds."""
    span = end - start
    first, second = (start + span / 3).date(), (start + span * 2 / 3).date()
    return [
        TradeShow(f"global-industrie-{first.year}", first),
        TradeShow(f"southern-manufacturing-{second.year}", second),
    ]


@dataclass(frozen=True)
class Spend:
    """What one source (or campaign) cost in one month, as `nurture costs set` takes it."""

    source: str
    campaign: str | None
    month: str  # YYYY-MM
    amount: int


def monthly_spend(rng: Random, start: datetime, end: datetime) -> list[Spend]:
    """Each channel's spend for each month of the period: per campaign, or the whole
    source; a trade show in the month it takes place."""
    months = sorted({f"{day:%Y-%m}" for day in _days(start, end)})
    found = []
    for channel in CHANNELS:
        low, high = channel.cost
        if channel.source == "trade show":
            for show in trade_shows(start, end):
                amount = int(round(rng.uniform(low, high), -2))
                found.append(Spend(channel.source, show.campaign, f"{show.day:%Y-%m}", amount))
            continue
        for month in months:
            for campaign in channel.campaigns or (None,):
                amount = int(round(rng.uniform(low, high), -1))
                found.append(Spend(channel.source, campaign, month, amount))
    return found


def _days(start: datetime, end: datetime) -> list[date]:
    return [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days + 1)]


def draw_people(
    rng: Random, count: int, start: datetime, end: datetime, warmth: float = 0.0
) -> list[Person]:
    """`count` people arriving between `start` and `end`, in the order they reach nurture.
    `warmth` is added to everyone's interest (a warmer market: more clicks, more leads
    for sales), after drawing, so the same seed draws the same people."""
    companies = [_company(rng, n) for n in range(max(count // 2, 1))]
    sessions = [s for s in webinar_sessions(start, end) if s - start > timedelta(days=8)]
    shows = [s for s in trade_shows(start, end) if _utc(s.day, 9) + timedelta(days=2) < end]
    taken: set[str] = set()
    people = [
        _person(rng, n, rng.choice(companies), start, end, sessions, shows, taken)
        for n in range(count)
    ]
    if warmth:
        people = [replace(p, interest=min(p.interest + warmth, 1.0)) for p in people]
    return sorted(people, key=lambda p: (p.posted_at, p.number))


def _pick(rng: Random, weighted: Sequence[tuple[T, float]]) -> T:
    values, weights = zip(*weighted, strict=True)
    return rng.choices(values, weights)[0]


def _company(rng: Random, number: int) -> Company:
    country = rng.choices(COUNTRIES, [c.weight for c in COUNTRIES])[0]
    language = "fr" if rng.random() < country.french else "en"
    trade = rng.choice(TRADES[language])
    other = rng.choice(LAST[language] + PLACES[language])
    name = f"{trade} {other}" if language == "fr" else f"{other} {trade}"
    roll = rng.random()
    if roll < 0.78:
        size = round(50 * 100 ** rng.random())  # 50 to 5,000, as many small as large
    elif roll < 0.86:
        size = rng.randint(20, 49)
    elif roll < 0.90:
        size = rng.randint(3, 9)  # too small: qualification keeps them out
    elif roll < 0.95:
        size = rng.randint(10, 19)
    else:
        size = rng.randint(5_001, 40_000)
    domain = f"{_slug(name)}-{number}.example"
    return Company(name, domain, size, _pick(rng, INDUSTRIES), country, rng.random() < 0.06)


def _person(
    rng: Random,
    number: int,
    company: Company,
    start: datetime,
    end: datetime,
    sessions: list[datetime],
    shows: list[TradeShow],
    taken: set[str],
) -> Person:
    country = company.country
    locale = "fr" if rng.random() < country.french else "en"
    first, last = rng.choice(FIRST[locale]), rng.choice(LAST[locale])
    channel = rng.choices(CHANNELS, [c.weight for c in CHANNELS])[0]
    if (channel.source == "webinar" and not sessions) or (
        channel.source == "trade show" and not shows
    ):
        channel = CHANNELS[0]
    start_with = _pick(rng, channel.starts)
    titles: dict[str, tuple[str, ...]] = _pick(rng, ((DECIDE, 36), (PLAN, 36), (OTHER, 28)))
    job_title, name, size = rng.choice(titles[locale]), company.name, company.size
    domain = company.domain
    local = f"{_slug(first)}.{_slug(last)}"
    roll = rng.random()
    if roll < 0.03:  # a student writing a thesis
        job_title, name, size = STUDENT[locale], rng.choice(SCHOOLS), SCHOOL_SIZE
        domain = f"{_slug(name)}.example"
    elif roll < 0.04:  # a competitor reading our white paper
        domain = rng.choice(COMPETITORS)
    elif roll < 0.06:  # a shared mailbox
        local = rng.choice(SHARED_MAILBOXES)
    email = _unique(f"{local}@{domain}", taken)
    fields = {}
    if company.industry is not None and rng.random() < 0.85:
        fields["industry"] = company.industry
    if rng.random() < channel.timeline:
        fields["project_timeline"] = _pick(rng, TIMELINES)
    interest = rng.betavariate(1.3, 3.5) + channel.interest
    if fields.get("project_timeline") in ("< 3 months", "this quarter"):
        interest += 0.3
    campaign: str | None = rng.choice(channel.campaigns) if channel.campaigns else None
    session = None
    zone = ZoneInfo(country.timezone)
    if channel.source == "webinar":
        session = rng.choice(sessions)
        arrives = session - timedelta(days=rng.uniform(1, 8))
    elif channel.source == "trade show":
        show = rng.choice(shows)
        campaign = show.campaign
        arrives = _utc(show.day, rng.uniform(8, 17))
    else:
        arrives = _moment(rng, start, end, zone)
    return Person(
        number=number,
        email=email,
        first_name=first,
        last_name=last,
        company=name,
        job_title=job_title,
        company_size=size or None,
        country=country.code,
        timezone=country.timezone,
        locale=locale,
        source=channel.source,
        campaign=campaign,
        utm=channel.utm,
        door=channel.door,
        start=start_with,
        arrives_at=arrives,
        posted_at=_posted(channel, arrives),
        interest=min(interest, 1.0),
        mailbox=_mailbox(rng, company),
        gone=rng.random() < 0.015,
        ip=f"{rng.choice((81, 86, 90, 92, 176, 194))}.{rng.randint(0, 255)}."
        f"{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        fields=MappingProxyType(fields),
        session=session,
    )


def _mailbox(rng: Random, company: Company) -> Mailbox:
    if company.gateway:
        return "gateway"
    mailboxes: tuple[tuple[Mailbox, float], ...] = (
        ("outlook", 45), ("apple", 24), ("webmail", 23), ("gmail", 8)
    )  # fmt: skip
    return _pick(rng, mailboxes)


def _posted(channel: Channel, arrives: datetime) -> datetime:
    """When the lead reaches nurture: batches wait for the next sync (06:00, 12:00 and
    18:00 UTC) or, for a show, the import two days later; the others come at once."""
    if channel.door != "batch":
        return arrives
    if channel.source == "trade show":
        return _utc(arrives.date(), 9) + timedelta(days=2)
    for hour in (6, 12, 18, 30):
        sync = _utc(arrives.date(), hour)
        if sync > arrives:
            return sync
    raise AssertionError("unreachable: 30:00 is always later")


def _moment(rng: Random, start: datetime, end: datetime, zone: ZoneInfo) -> datetime:
    """A time people fill in forms: more as the period goes on (marketing grows), fewer
    at weekends, mostly in the day of their own timezone."""
    while True:
        at = start + (end - start) * rng.triangular(0, 1, 0.75)
        local = at.astimezone(zone)
        if local.weekday() >= 5 and rng.random() < 0.7:
            continue
        hour = rng.triangular(7, 23, 11)
        day = datetime.combine(local.date(), time(), zone)
        moment = (day + timedelta(hours=hour)).astimezone(UTC)
        if start <= moment < end:
            return moment


def _utc(day: date, hour: float) -> datetime:
    return datetime.combine(day, time(), UTC) + timedelta(hours=hour)


def _unique(email: str, taken: set[str]) -> str:
    local, _, domain = email.partition("@")
    found, number = email, 1
    while found in taken:
        number += 1
        found = f"{local}{number}@{domain}"
    taken.add(found)
    return found


def _slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    return "-".join("".join(c if c.isalnum() else " " for c in plain).split())
