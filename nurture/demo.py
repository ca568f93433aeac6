"""`nurture demo`: an empty database given months of life by the real engine.

Made-up people (nurture/demo_people.py) arrive day by day through the real doors: the
JSON API with an API key (batches an integration syncs, single leads, their events) and
the website forms. The engine runs at each step of a simulated clock, `work(runtime,
now)`: it enrols, sends (to the runtime's mailer), classifies hits, scores, promotes,
pushes to a CRM, escalates, sends digests. Readers (nurture/demo_behaviour.py) open and
click what was sent through the tracking routes, at the times they chose; a CRM on
127.0.0.1 (nurture/demo_crm.py) takes the signed pushes, and sales' answers come back
through the feedback route. The web app reads the same clock (`nurture.web.CLOCK`).
See docs/demo.md.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from sqlalchemy import func, select

from nurture.apikeys import create_key, revoke_key
from nurture.app import create_app
from nurture.core.confirmation import needs_confirmation
from nurture.core.links import campaign_target
from nurture.costs import record as record_cost
from nurture.crm import CrmPusher
from nurture.demo_behaviour import (
    Email,
    FormPost,
    Hit,
    Report,
    SalesAnswer,
    Unsubscribe,
    later_steps,
    pace,
    reactions,
    sales_answers,
)
from nurture.demo_crm import DemoCrm, Push
from nurture.demo_people import (
    WEBINAR,
    WHITEPAPER_FORM,
    Person,
    draw_people,
    monthly_spend,
    webinar_sessions,
)
from nurture.models import CrmPush, Delivery, Event, Lead, Promotion, SalesFeedback, TrackingHit
from nurture.runtime import Runtime
from nurture.scheduler import work
from nurture.tracking import tokens_for
from nurture.web import CLOCK

WEEKDAY_RUNS = (8, 13, 18)
WEEKEND_RUNS = (12,)
"""When the engine runs (`work(runtime, now)`), hours UTC. A real worker looks every 30
seconds; the demo looks when it matters, each run costing the same however little is
due: each send window of the shipped sequences (09:00-17:30 on weekdays in Paris,
London or Toronto, summer or winter) gets one to three runs a day, weekends one for hits,
CRM pushes and escalations. Each reader's open or click keeps its own time, whenever
the engine then processes it."""
DRIFT = 7
"""Minutes each day's runs come later than the day before's (modulo the hour). A send is
stamped with its run's time plus the real seconds the run took, so a wait of whole days
ends a few seconds after the same hour: were runs at the same minute each day, whether
that wait is over would depend on the machine's speed, and a seed would not always give
the same counts."""
BATCH = 1000  # leads per batch request, the API's limit
FORM_FIELDS = ("email", "first_name", "last_name", "company", "job_title", "company_size",
               "country", "locale")  # what the website's forms ask for  # fmt: skip


class DemoRefused(Exception):
    """The database already holds leads: the demo fills an empty database only."""


class DemoFailed(RuntimeError):
    """A route refused what the demo sent, or a part of the engine failed."""


@dataclass(frozen=True)
class DemoSummary:
    """What the engine recorded, read from the database at the end."""

    start: datetime
    end: datetime
    leads: int
    french: int
    english: int
    emails_sent: int
    opens_human: int
    opens_machine: int
    clicks_human: int
    clicks_scanner: int
    hits_unknown: int
    unsubscribed: int
    bounced: int
    complained: int
    promotions: int
    answered: int
    won: int
    won_amount: float
    crm_pushes: int  # delivered to the demo's CRM
    example: str | None  # a promoted lead with a story, for `nurture leads why`
    seconds: float

    def counts(self) -> dict[str, Any]:
        """Everything but the time taken: the same for the same seed."""
        found = asdict(self)
        del found["seconds"]
        return found


def populate(
    runtime: Runtime,
    *,
    leads: int,
    months: int,
    end: datetime,
    seed: int,
    progress: Callable[[str], None] | None = None,
    warmth: float = 0.0,
) -> DemoSummary:
    """Fill the runtime's empty database with `leads` people arriving over `months`
    months up to `end`, and everything the engine makes of them; `progress` hears a line
    per simulated month. `warmth` (0 to 1) makes everyone keener: the reports benchmark
    uses it to hand a fifth of the leads to sales.

    Emails go to the runtime's mailer; CRM pushes to the demo's own receiver (the
    runtime's pusher is put back at the end). Raises DemoRefused, having changed
    nothing, when the database holds leads already; DemoFailed when a route refuses
    what the demo sends or a part of the engine fails.
    """
    if end.tzinfo is None:
        raise ValueError(f"naive datetime refused: {end!r}")
    if leads < 1 or months < 1:
        raise ValueError("leads and months: at least 1")
    began = time.monotonic()
    with runtime.sessions() as session:
        held = session.scalar(select(func.count()).select_from(Lead)) or 0
    if held:
        raise DemoRefused(
            f"the database already holds {held} lead{'s' if held != 1 else ''}; the demo"
            " fills an empty database only. Point NURTURE_DATABASE_URL at a new one, such as"
            " NURTURE_DATABASE_URL=sqlite:///var/demo.sqlite, and run `nurture demo` again"
        )
    end = end.astimezone(UTC)
    start = (end - timedelta(days=round(30.44 * months))).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    people = draw_people(Random(f"{seed}:people"), leads, start, end, warmth)
    with _Simulation(runtime, start, end, seed, progress or (lambda line: None)) as simulation:
        simulation.run(people)
    return summarise(runtime, start, end, time.monotonic() - began)


def engine_runs(start: datetime, end: datetime) -> Iterator[datetime]:
    """Each time the engine runs from `start` to `end`, then at `end`."""
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        drift = timedelta(minutes=DRIFT * day.toordinal() % 60)
        for hour in WEEKEND_RUNS if day.weekday() >= 5 else WEEKDAY_RUNS:
            at = day + timedelta(hours=hour) + drift
            if start <= at < end:
                yield at
        day += timedelta(days=1)
    yield end


class SimulatedClock:
    """The app's clock during the demo (`app.extensions[nurture.web.CLOCK]`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass(frozen=True)
class _Arrival:
    at: datetime
    people: tuple[Person, ...]  # one request: a batch, a lead, a form


@dataclass(frozen=True)
class _Answer:
    at: datetime
    promotion_id: int
    number: int  # its place among the answers to this promotion
    answer: SalesAnswer


@dataclass(frozen=True)
class _Sent:
    links: tuple[str, ...]
    sequence: str
    step: str


class _Simulation:
    def __init__(
        self,
        runtime: Runtime,
        start: datetime,
        end: datetime,
        seed: int,
        say: Callable[[str], None],
    ) -> None:
        self.runtime, self.start, self.end, self.seed, self.say = runtime, start, end, seed, say
        self.clock = SimulatedClock(start)
        app = create_app(runtime=runtime)
        app.extensions[CLOCK] = self.clock
        self.client = app.test_client()
        self.tokens = tokens_for(runtime.secret_key)
        with runtime.sessions.begin() as session:
            scopes = ("intake", "events", "read")
            self.website = create_key(session, "demo: website and integrations", start, scopes)
            self.sales = create_key(session, "demo: CRM answers", start, ("sales",))
        self.crm = DemoCrm()
        # The demo's pushes go to its own CRM, never to one the installation names.
        settings = replace(runtime.settings, crm_webhook_url=self.crm.url,
                           crm_webhook_secret=self.crm.secret, crm_allow_local=True)  # fmt: skip
        self.pusher = CrmPusher(settings, runtime.sessions)
        self.their_pusher = vars(runtime).get("crm")
        vars(runtime)["crm"] = self.pusher  # `work` pushes with `runtime.crm` (cached)
        self.agenda: list[tuple[datetime, int, Any]] = []
        self.order = itertools.count()
        self.people: dict[str, Person] = {}
        self.ids: dict[str, str] = {}  # email: the lead's public id
        self.by_lead: dict[int, Person] = {}
        self.silent: set[str] = set()  # gone, complained or unsubscribed: no more reading
        self.seen: set[int] = set()  # deliveries already handed to their reader
        self.last_read = start  # the engine run whose emails were read last
        self.sent: dict[int, _Sent] = {}
        self.received: Counter[tuple[str, str, str]] = Counter()
        self.ignored: set[int] = set()  # promotions nobody in sales answered
        self.sessions = webinar_sessions(start, end)
        self.spend = monthly_spend(Random(f"{seed}:spend"), start, end)

    def __enter__(self) -> _Simulation:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.their_pusher is not None:
            vars(self.runtime)["crm"] = self.their_pusher
        else:
            vars(self.runtime).pop("crm", None)
        self.crm.close()
        with self.runtime.sessions.begin() as session:
            for key in (self.website, self.sales):  # nobody holds these keys
                revoke_key(session, key.removeprefix("nk_").partition(".")[0], self.end)

    # --- the clock -------------------------------------------------------------------

    def run(self, people: list[Person]) -> None:
        for arrival in _arrivals(people):
            self.plan(arrival.at, arrival)
        month = f"{self.start:%Y-%m}"
        for now in engine_runs(self.start, self.end):
            self.until(now)
            self.runtime.spool.flush()  # every hit of the step in the database first
            self.clock.now = now
            for line in work(self.runtime, now):
                if line.endswith("failed (see the log)"):
                    raise DemoFailed(f"the engine's {line} at {now:%Y-%m-%d %H:%M}")
            self.read(now)
            self.answer(self.crm.take())
            if f"{now:%Y-%m}" != month:
                self.close_month(month, now)
                month = f"{now:%Y-%m}"
        self.pusher.deliver_due(self.end)  # escalations of the last run
        self.answer(self.crm.take())
        self.close_month(month, self.end)

    def plan(self, at: datetime, action: object) -> None:
        heapq.heappush(self.agenda, (at, next(self.order), action))

    def until(self, now: datetime) -> None:
        """Carry out every planned action due by `now`, each at its own time."""
        while self.agenda and self.agenda[0][0] <= now:
            at, _, action = heapq.heappop(self.agenda)
            self.clock.now = at
            self.act(action)

    def close_month(self, month: str, now: datetime) -> None:
        """Marketing enters the month's costs, as `nurture costs set` does."""
        currency = self.runtime.settings.currency
        with self.runtime.sessions.begin() as session:
            for spend in self.spend:
                if spend.month == month:
                    record_cost(session, currency, spend.source, month, spend.amount, now,
                                spend.campaign)  # fmt: skip
            leads = session.scalar(select(func.count()).select_from(Lead))
            sent = session.scalar(select(func.count()).where(Delivery.status == "sent"))
            promoted = session.scalar(select(func.count()).select_from(Promotion))
        self.say(f"{month}: {leads:,} leads, {sent:,} emails sent, {promoted:,} promoted so far")

    # --- what happens -------------------------------------------------------------------

    def act(self, action: object) -> None:
        if isinstance(action, _Arrival):
            self.arrive(action.people)
        elif isinstance(action, Hit):
            self.hit(action)
        elif isinstance(action, Unsubscribe):
            self.unsubscribe(action)
        elif isinstance(action, Report):
            self.report(action.email, action.name, action.properties)
        elif isinstance(action, FormPost):
            self.form(self.people[action.email], action.form)
        elif isinstance(action, _Answer):
            self.feedback(action)
        else:
            raise TypeError(f"unknown action {action!r}")

    def arrive(self, people: tuple[Person, ...]) -> None:
        door = people[0].door
        for person in people:
            self.people[person.email] = person
        double_opt_in = self.runtime.settings.double_opt_in_forms
        # A form that waits for the emailed link would keep the lead out: those come by
        # the API instead (the demo does not read its mail).
        by_form = door == "form" and not needs_confirmation(_form(people[0]), double_opt_in)
        if by_form:
            self.form(people[0], _form(people[0]))
        elif door == "batch":
            for offset in range(0, len(people), BATCH):
                chunk = people[offset : offset + BATCH]
                answer = self.api("POST", "/api/v1/leads/batch",
                                  {"leads": [_lead(p) for p in chunk]})  # fmt: skip
                for item in answer["results"]:
                    self.ids[item["email"]] = item["id"]
        else:  # one call; a form asking for double opt-in gets its lead by the API
            for person in people:
                self.ids[person.email] = self.api("POST", "/api/v1/leads", _lead(person))["id"]
        for person in people:
            if not by_form:  # the form recorded its own event
                self.first_event(person)
            rng = Random(f"{self.seed}:later:{person.number}")
            for action in later_steps(rng, person, self.sessions, self.end):
                self.plan(action.at, action)

    def first_event(self, person: Person) -> None:
        """What they asked for, told by the integration that brought them."""
        when = person.arrives_at.isoformat()
        if person.start in ("whitepaper", "newsletter"):
            form = WHITEPAPER_FORM if person.start == "whitepaper" else "newsletter"
            utm = dict(zip(("utm_source", "utm_medium"), person.utm or (), strict=False))
            self.report(person.email, "form_submitted", {"form": form, **utm}, when)
        elif person.start == "webinar" and person.session is not None:
            session = f"{person.session:%Y-%m-%d}"
            self.report(person.email, "webinar_registered",
                        {"webinar": WEBINAR, "session": session}, when)  # fmt: skip

    def form(self, person: Person, form: str) -> None:
        """A website form, as a browser posts it (from the visitor's own address)."""
        lead = _lead(person)
        data = {key: str(lead[key]) for key in FORM_FIELDS if key in lead}
        data.update(consent="yes", consent_text="website-2026-01")
        response = self.client.post(f"/forms/{form}", data=data,
                                    environ_base={"REMOTE_ADDR": person.ip})  # fmt: skip
        _expect(response, f"POST /forms/{form}", 200, 303)

    def report(
        self, email: str, name: str, properties: Mapping[str, object], occurred: str | None = None
    ) -> None:
        body: dict[str, object] = {"name": name, "properties": dict(properties)}
        if occurred is not None:
            body["occurred_at"] = occurred
        self.api("POST", f"/api/v1/leads/{self.lead_id(email)}/events", body)
        if name in ("bounced", "complained"):
            self.silent.add(email)

    def lead_id(self, email: str) -> str:
        found = self.ids.get(email)
        if found is None:  # came by a web form: the lead's id is asked for once
            found = str(self.api("POST", "/api/v1/leads/lookup", {"email": email})["id"])
            self.ids[email] = found
        return found

    def hit(self, hit: Hit) -> None:
        if hit.link is None:
            path = f"/o/{self.tokens.open(hit.delivery_id)}.gif"
        else:
            sent = self.sent[hit.delivery_id]
            target = campaign_target(sent.links[hit.link], sent.sequence, sent.step)
            path = f"/c/{self.tokens.link(hit.delivery_id, hit.link, target)}"
        response = self.client.open(path, method=hit.method, headers={"User-Agent": hit.agent},
                                    environ_base={"REMOTE_ADDR": hit.ip})  # fmt: skip
        _expect(response, f"{hit.method} {path[:3]}…", 200, 302)

    def unsubscribe(self, action: Unsubscribe) -> None:
        path = f"/u/{self.tokens.unsubscribe(action.delivery_id)}"
        if action.one_click:  # the mail client's button (RFC 8058)
            response = self.client.post(path, data={"List-Unsubscribe": "One-Click"})
        else:  # the link in the footer: the page, then its button
            _expect(self.client.get(path), "GET /u/…", 200)
            response = self.client.post(path)
        _expect(response, "POST /u/…", 200)

    def feedback(self, planned: _Answer) -> None:
        answer = planned.answer
        body: dict[str, object] = {
            "status": answer.status,
            "external_id": f"demo-crm-{planned.promotion_id}-{planned.number}",
        }
        for key in ("amount", "reason", "sequence"):
            if getattr(answer, key) is not None:
                body[key] = getattr(answer, key)
        path = f"/api/v1/promotions/{planned.promotion_id}/feedback"
        self.api("POST", path, body, key=self.sales)

    def api(
        self, method: str, path: str, body: Mapping[str, object], key: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key or self.website}"}
        response = self.client.open(path, method=method, json=body, headers=headers)
        _expect(response, f"{method} {path}", 200, 201)
        found: dict[str, Any] = response.get_json()
        return found

    # --- after each run of the engine ---------------------------------------------------

    def read(self, now: datetime) -> None:
        """Hand each email sent since the last step to its reader."""
        with self.runtime.sessions() as session:
            rows = session.execute(
                select(Delivery.id, Delivery.lead_id, Delivery.message_id, Delivery.sequence_id,
                       Delivery.step_id, Delivery.kind, Delivery.sent_at, Delivery.links,
                       Delivery.honeypot)
                .where(Delivery.status == "sent", Delivery.sent_at >= self.last_read)
                .order_by(Delivery.id)
            ).all()  # fmt: skip
            unknown = {row.lead_id for row in rows} - set(self.by_lead)
            if unknown:
                for lead_id, email in session.execute(
                    select(Lead.id, Lead.email).where(Lead.id.in_(unknown))
                ):
                    self.by_lead[lead_id] = self.people[email]
        self.last_read = now
        for row in rows:
            if row.id in self.seen:
                continue
            self.seen.add(row.id)
            person = self.by_lead[row.lead_id]
            links = tuple(row.links or ())
            self.sent[row.id] = _Sent(links, row.sequence_id, row.step_id)
            if person.email in self.silent:
                continue
            clickable = tuple(i for i in _reading_order(links) if i != row.honeypot)
            sent = Email(row.id, row.message_id, row.sequence_id, row.step_id, row.kind,
                         row.sent_at, clickable, row.honeypot)  # fmt: skip
            nth = self.received[(person.email, row.sequence_id, row.step_id)]
            self.received[(person.email, row.sequence_id, row.step_id)] += 1
            rng = Random(f"{self.seed}:read:{person.number}:{row.sequence_id}:{row.step_id}:{nth}")
            for action in reactions(rng, person, sent):
                if isinstance(action, Unsubscribe) or (
                    isinstance(action, Report) and action.name in ("bounced", "complained")
                ):
                    self.silent.add(person.email)  # nothing more from them, starting now
                if action.at <= self.end:
                    self.plan(action.at, action)

    def answer(self, pushes: list[Push]) -> None:
        """Sales hears of each promotion in the CRM and answers it, sooner or later."""
        for push in pushes:
            # From the minute it left, as readers do (nurture.demo_behaviour.reactions).
            push = replace(push, at=push.at.replace(second=0))
            ready = push.reason.startswith(("decisive", "qualified sales-ready"))
            key = f"{self.seed}:crm:{push.lead_email}:{push.cycle}"
            if push.kind == "lead.promoted":
                answers = sales_answers(Random(key), push.at, pace(push.rep_email), ready)
            elif push.promotion_id in self.ignored and push.escalation <= 2:
                # The reminder wakes the rep, or the lead's new rep takes it; or not.
                rng = Random(f"{key}:{push.kind}:{push.escalation}")
                if rng.random() >= (0.4 if push.kind == "lead.escalated" else 0.6):
                    continue
                answers = sales_answers(rng, push.at, pace(push.rep_email), ready,
                                        may_ignore=False)  # fmt: skip
            else:
                continue
            if answers:
                self.ignored.discard(push.promotion_id)
            else:
                self.ignored.add(push.promotion_id)
            for number, answer in enumerate(answers):
                if answer.at <= self.end:
                    self.plan(answer.at, _Answer(answer.at, push.promotion_id, number, answer))


def _arrivals(people: list[Person]) -> Iterator[_Arrival]:
    """One request per lead, except what an integration syncs together."""
    batches: dict[tuple[str, datetime], list[Person]] = {}
    for person in people:
        if person.door == "batch":
            batches.setdefault((person.source, person.posted_at), []).append(person)
        else:
            yield _Arrival(person.posted_at, (person,))
    for (_, at), members in batches.items():
        yield _Arrival(at, tuple(members))


def _form(person: Person) -> str:
    return "newsletter" if person.start == "newsletter" else WHITEPAPER_FORM


def _lead(person: Person) -> dict[str, Any]:
    """The lead as the integration that brought them sends it."""
    body: dict[str, Any] = {
        "email": person.email,
        "first_name": person.first_name,
        "last_name": person.last_name,
        "company": person.company,
        "job_title": person.job_title,
        "country": person.country,
        "locale": person.locale,
        "source": person.source,
    }
    if person.company_size is not None:
        body["company_size"] = person.company_size
    if person.country == "CA" or person.source == "webinar":  # they know the zone
        body["timezone"] = person.timezone
    if person.campaign:
        body["campaign"] = person.campaign
    if person.fields:
        body["fields"] = dict(person.fields)
    touch = {"channel": person.source, "campaign": person.campaign}
    if person.utm:
        touch.update(utm_source=person.utm[0], utm_medium=person.utm[1],
                     utm_campaign=person.campaign)  # fmt: skip
    body["touch"] = {key: value for key, value in touch.items() if value}
    if person.source in ("linkedin ads", "webinar", "google ads"):  # a consent box ticked
        body["consent"] = {"granted": True, "text_version": f"{person.source} 2026-01"}
    return body


def _reading_order(links: tuple[str, ...]) -> list[int]:
    """The link indexes, the email's own content first: the website's home page (the
    logo, the footer) is what a reader clicks least."""
    home = [i for i, url in enumerate(links) if url.rstrip("/").count("/") <= 2]
    return [i for i in range(len(links)) if i not in home] + home


def _expect(response: Any, what: str, *statuses: int) -> None:
    if response.status_code not in statuses:
        text = response.get_data(as_text=True)[:500]
        raise DemoFailed(f"{what} answered {response.status_code}: {text}")


def summarise(runtime: Runtime, start: datetime, end: datetime, seconds: float) -> DemoSummary:
    """The figures of the database, whatever made them."""
    with runtime.sessions() as session:

        def count(*where: Any, of: Any = None) -> int:
            query = select(func.count(of) if of is not None else func.count()).where(*where)
            return int(session.scalar(query) or 0)

        def hits(kind: str, label: str) -> int:
            return count(TrackingHit.kind == kind, TrackingHit.classification == label)

        def leads_with(name: str) -> int:
            return count(Event.name == name, of=Event.lead_id.distinct())

        won_amount = session.scalar(
            select(func.sum(Promotion.amount)).where(Promotion.status == "won")
        )
        example = session.scalar(
            select(Lead.email)
            .join(Promotion, Promotion.lead_id == Lead.id)
            .join(Event, Event.lead_id == Lead.id)
            .where(Event.name == "email_clicked", Event.classification == "human")
            .order_by(Promotion.id)
            .limit(1)
        )
        return DemoSummary(
            start=start,
            end=end,
            leads=count(Lead.id.is_not(None)),
            french=count(Lead.locale == "fr"),
            english=count(Lead.locale == "en"),
            emails_sent=count(Delivery.status == "sent"),
            opens_human=hits("open", "human"),
            opens_machine=hits("open", "machine_open"),
            clicks_human=hits("click", "human"),
            clicks_scanner=hits("click", "scanner"),
            hits_unknown=count(TrackingHit.classification == "unknown"),
            unsubscribed=count(Lead.unsubscribed_at.is_not(None)),
            bounced=leads_with("bounced"),
            complained=leads_with("complained"),
            promotions=count(Promotion.id.is_not(None)),
            answered=count(SalesFeedback.id.is_not(None), of=SalesFeedback.promotion_id.distinct()),
            won=count(Promotion.status == "won"),
            won_amount=float(won_amount or 0),
            crm_pushes=count(CrmPush.status == "delivered"),
            example=example,
            seconds=round(seconds, 1),
        )
