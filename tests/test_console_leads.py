"""The console's Leads section through Flask's test client: the list searched, filtered,
sorted and paged by keyset; what a sales user may open; a lead's page with its
timeline, told from a history the real engine made; and the pure timeline."""

from __future__ import annotations

import html
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import insert, select
from test_console_access import HOSTILE, Console, add_lead, make_console
from test_console_access import cheap_hashes as cheap_hashes  # autouse
from test_console_access import console as console

from nurture.console.lead_list import Cursor
from nurture.core.decisions import Entry
from nurture.core.intake import parse_lead
from nurture.core.timeline import (
    EmailStep,
    Facts,
    Hit,
    Place,
    Push,
    ScorePoints,
    email_verdicts,
    timeline,
)
from nurture.enrollment import on_event
from nurture.evidence import record
from nurture.intake import take
from nurture.leads import find_lead
from nurture.mail import MemoryMailer
from nurture.models import Enrollment, Lead
from nurture.runtime import Runtime
from nurture.scheduler import track

assert make_console  # a fixture, used through `console`
ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
ROW = re.compile(r'<tr>\s*<td><a href="/console/leads/([^"]+)">')
NEXT = re.compile(r'<a rel="next" href="([^"]+)"')
PREVIOUS = re.compile(r'<a rel="prev" href="([^"]+)"')


def ids(page: str) -> list[str]:
    return ROW.findall(page)


def text_of(answer: Any) -> str:
    return str(answer.get_data(as_text=True))


def link(pattern: re.Pattern[str], page: str) -> str | None:
    found = pattern.search(page)
    return html.unescape(found.group(1)) if found else None


def many(runtime: Runtime, rows: list[dict[str, Any]]) -> dict[str, str]:
    """Insert leads in one statement; their public ids by email."""
    defaults = {
        "created_at": NOW,
        "updated_at": NOW,
        "stage": "lead",
        "score": 0,
        "tags": [],
        "fields": {},
    }
    with runtime.sessions.begin() as session:
        session.execute(insert(Lead), [{**defaults, **row} for row in rows])
    with runtime.sessions() as session:
        return dict(session.execute(select(Lead.email, Lead.public_id)).all())  # type: ignore[arg-type]


# --- the list: search and filters ---------------------------------------------------------------


def test_the_search_finds_leads_by_the_start_of_their_email_names_or_company(
    console: Console,
) -> None:
    public = many(
        console.runtime,
        [
            {"email": "ana.dupont@usine.example", "first_name": "Ana", "last_name": "Dupont"},
            {"email": "bob@moulages.example", "company": "Moulages Berthier", "last_name": "Roy"},
            {"email": "claire@client.example", "first_name": "Claire", "company": "Anatole SA"},
            {"email": "dan@client.example", "first_name": "Daniel", "last_name": "Banana"},
        ],
    )
    client = console.signed_in("ana@planifia.example", "viewer")

    def found(q: str) -> set[str]:
        page = client.get("/console/leads", query_string={"q": q})
        assert page.status_code == 200
        return {email for email, pid in public.items() if pid in ids(text_of(page))}

    # Any case, the start of any of the four: "ana" is Ana's name and Anatole's company,
    # not the middle of "Banana" (a prefix search, docs/console-leads.md).
    assert found("ANA") == {"ana.dupont@usine.example", "claire@client.example"}
    assert found("moul") == {"bob@moulages.example"}
    assert found("berthier") == set()  # the start of the company, not of any of its words
    assert found("claire@") == {"claire@client.example"}
    assert found("ana dup") == {"ana.dupont@usine.example"}  # every word must match
    assert found("%") == set() and found("_") == set()  # wildcards are plain characters
    assert len(found("")) == 4


def test_each_filter_narrows_the_list(console: Console) -> None:
    public = many(
        console.runtime,
        [
            {
                "email": "a@x.example",
                "stage": "mql",
                "grade": "A",
                "category": "sales_ready",
                "source": "webinar",
                "rep_email": "Rep@Planifia.example",
            },
            {"email": "b@x.example", "stage": "mql", "grade": "C", "source": "api"},
            {"email": "c@x.example", "stage": "lead", "grade": None, "category": "no_interest"},
        ],
    )
    with console.runtime.sessions.begin() as session:
        lead_id = session.scalar(select(Lead.id).where(Lead.email == "c@x.example"))
        session.add(
            Enrollment(
                lead_id=lead_id,
                sequence_id="webinar-followup",
                version="v1",
                step_id="thanks",
                step_started_at=NOW,
                entered_at=NOW,
            )
        )
    client = console.signed_in("ana@planifia.example", "marketer")

    def found(**args: str) -> set[str]:
        page = client.get("/console/leads", query_string=args)
        assert page.status_code == 200, text_of(page)
        return {email[0] for email, pid in public.items() if pid in ids(text_of(page))}

    assert found(stage="mql") == {"a", "b"}
    assert found(grade="C") == {"b"}
    assert found(grade="none") == {"c"}
    assert found(category="sales_ready") == {"a"}
    assert found(category="none") == {"b"}
    assert found(source="webinar") == {"a"}
    assert found(rep="rep@planifia.EXAMPLE") == {"a"}
    assert found(rep="none") == {"b", "c"}
    assert found(sequence="webinar-followup") == {"c"}
    assert found(stage="mql", grade="A") == {"a"}
    page = text_of(client.get("/console/leads", query_string={"sequence": "webinar-followup"}))
    assert "webinar-followup / thanks" in page  # where the lead stands
    assert f'href="/console/leads/{public["a@x.example"]}"' in text_of(client.get("/console/leads"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ({"sort": "colour"}, "unknown sort &#39;colour&#39;: expected one of created, score"),
        ({"dir": "up"}, "unknown direction &#39;up&#39;: expected asc or desc"),
        ({"stage": "hot"}, "unknown stage &#39;hot&#39;: expected one of subscriber"),
        ({"after": "not-a-cursor!"}, "this page link is damaged"),
        ({"after": "W10"}, "this page link is damaged"),  # base64 of []
        (
            {"after": Cursor("score", "desc", "high", 1).encoded(), "sort": "score"},
            "this page link is damaged",
        ),
        ({"after": Cursor("score", "desc", 10, 1).encoded()}, "belongs to another sort order"),
        ({"after": Cursor("created", "desc", None, 1).encoded()}, "this page link is damaged"),
        ({"q": "x" * 101}, "the search is longer than 100 characters"),
    ],
)
def test_bad_list_arguments_get_a_clear_400(
    console: Console, args: dict[str, str], said: str
) -> None:
    add_lead(console.runtime, "one@client.example")
    client = console.signed_in("ana@planifia.example", "viewer")
    page = client.get("/console/leads", query_string=args)
    assert page.status_code == 400
    assert said in text_of(page)
    assert ids(text_of(page)) == []  # no rows under a problem


# --- the list: sort orders and keyset pages ----------------------------------------------------


def crowd(runtime: Runtime) -> None:
    """130 leads with many equal sort values, and some without a grade, name or company."""
    rows = []
    for n in range(130):
        rows.append(
            {
                "email": f"lead{n:03d}@client.example",
                "score": (n * 7) % 4 * 10,  # four values: long runs of ties
                "grade": None if n % 5 == 0 else "ABCD"[n % 4],
                "last_name": None if n % 6 == 0 else f"Name{n % 9}",
                "company": None if n % 3 == 0 else f"Company {n % 4}",
                "created_at": NOW - timedelta(hours=n % 10),  # ten instants, thirteen leads each
            }
        )
    many(runtime, rows)


def expected(runtime: Runtime, sort: str, direction: str) -> list[str]:
    """The order the list promises: by the value (no value after every value going up,
    before going down), then by the lead's id in the same direction."""
    column = {"created": "created_at", "name": "last_name"}.get(sort, sort)
    with runtime.sessions() as session:
        leads = session.execute(select(getattr(Lead, column), Lead.id, Lead.public_id)).all()
    key = [
        ((value is None, value if value is not None else 0), lead_id, pid)
        for value, lead_id, pid in leads
    ]
    return [pid for *_, pid in sorted(key, reverse=direction == "desc")]


@pytest.mark.parametrize("sort", ["created", "score", "grade", "name", "company", "email"])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_keyset_pages_continue_exactly_where_the_last_ended(
    console: Console, sort: str, direction: str
) -> None:
    crowd(console.runtime)
    client = console.signed_in("ana@planifia.example", "viewer")
    url: str | None = f"/console/leads?sort={sort}&dir={direction}"
    pages: list[list[str]] = []
    while url is not None:
        page = client.get(url)
        assert page.status_code == 200, text_of(page)
        assert "OFFSET" not in url and "page=" not in url
        pages.append(ids(text_of(page)))
        url = link(NEXT, text_of(page))
    assert [len(p) for p in pages] == [50, 50, 30]
    seen = [pid for p in pages for pid in p]
    assert seen == expected(console.runtime, sort, direction)  # none twice, none missing
    assert (
        link(PREVIOUS, text_of(client.get(f"/console/leads?sort={sort}&dir={direction}"))) is None
    )

    # And back again from the last page, through the `before` cursors.
    back: list[list[str]] = []
    url = f"/console/leads?sort={sort}&dir={direction}"
    for _ in range(2):
        url = link(NEXT, text_of(client.get(url)))
        assert url is not None
    while url is not None:
        page = text_of(client.get(url))
        back.append(ids(page))
        url = link(PREVIOUS, page)
    assert back == pages[::-1]


def test_a_page_link_keeps_the_search_and_the_filters(console: Console) -> None:
    many(
        console.runtime,
        [{"email": f"m{n:03d}@client.example", "stage": "mql"} for n in range(60)]
        + [{"email": "other@client.example"}],
    )
    client = console.signed_in("ana@planifia.example", "viewer")
    first = text_of(client.get("/console/leads?stage=mql&q=m"))
    following = link(NEXT, first)
    assert following is not None and "stage=mql" in following and "q=m" in following
    assert len(ids(text_of(client.get(following)))) == 10


# --- what a sales user may see ------------------------------------------------------------------


def test_a_sales_user_lists_and_opens_only_the_leads_of_their_rep(console: Console) -> None:
    public = many(
        console.runtime,
        [
            {
                "email": "mine@client.example",
                "rep_email": "Rep@Planifia.example",
                "first_name": "Mine",
            },
            {
                "email": "theirs@client.example",
                "rep_email": "other@planifia.example",
                "first_name": "Theirs",
            },
            {"email": "nobody@client.example", "first_name": "Nobodys"},
        ],
    )
    rep = console.signed_in("rep@planifia.example", "sales")
    listed = text_of(rep.get("/console/leads"))
    assert ids(listed) == [public["mine@client.example"]]
    assert "Theirs" not in listed and "Nobodys" not in listed
    assert ids(text_of(rep.get("/console/leads?q=theirs"))) == []
    # A rep filter cannot widen what a sales user sees.
    assert ids(text_of(rep.get("/console/leads?rep=other@planifia.example"))) == []

    assert rep.get(f"/console/leads/{public['mine@client.example']}").status_code == 200
    theirs = rep.get(f"/console/leads/{public['theirs@client.example']}")
    missing = rep.get("/console/leads/L0000000000000000000000")
    assert theirs.status_code == missing.status_code == 404
    assert text_of(theirs) == text_of(missing)  # nothing tells that the lead exists
    assert "Theirs" not in text_of(theirs) and "theirs@client.example" not in text_of(theirs)

    viewer = console.signed_in("viewer@planifia.example", "viewer")
    assert viewer.get(f"/console/leads/{public['theirs@client.example']}").status_code == 200
    assert len(ids(text_of(viewer.get("/console/leads")))) == 3


def test_the_category_reasons_read_as_sentences(console: Console) -> None:
    reasons = [{"code": "sales_ready", "message": "a planning project within three months"}]
    row = {"email": "sophie@conserverie.example", "category": "sales_ready", "reasons": reasons}
    ids_by_email = many(console.runtime, [row])
    client = console.signed_in("ana@planifia.example", "viewer")
    page = html.unescape(
        text_of(client.get(f"/console/leads/{ids_by_email['sophie@conserverie.example']}"))
    )
    assert "a planning project within three months (sales_ready)" in page
    assert "{'code'" not in page


def test_hostile_names_stay_text_in_the_list_and_on_the_lead_page(console: Console) -> None:
    lead_id = add_lead(
        console.runtime,
        "hostile@client.example",
        first_name=HOSTILE,
        company='<script>alert("company")</script>',
        fields={"note": "<b onmouseover=alert(1)>hi</b>"},
    )
    with console.runtime.sessions() as session:
        public_id = session.scalar(select(Lead.public_id).where(Lead.id == lead_id))
    client = console.signed_in("ana@planifia.example", "viewer")
    for path in ("/console/leads", f"/console/leads/{public_id}", "/console/leads?q=<script>"):
        page = text_of(client.get(path))
        assert "<script>alert" not in page and "<img src=x" not in page and "<b onmouse" not in page
    page = text_of(client.get(f"/console/leads/{public_id}"))
    assert html.escape(HOSTILE, quote=False) in html.unescape(page) or "&lt;script&gt;" in page
    assert "&lt;b onmouseover=alert(1)&gt;hi&lt;/b&gt;" in page


# --- a lead's page: a history made by the real engine ---------------------------------------

SATURDAY = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)  # 11:00 in Paris: no office hours
MONDAY = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)  # 10:00 in Paris
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17928; Pro)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)
SEQUENCE = """\
id: news
name: News
locales: [en]
timezone: Europe/Paris
send_window:
  days: mon-fri
  hours: "09:00-17:00"
entry:
  triggers:
    - event: {name: start}
steps:
  - id: hello
    email: {template: linked, kind: guide}
  - id: pause
    wait: 2 days
  - id: followup
    email: {template: example, kind: guide}
"""


def history(runtime: Runtime) -> str:
    """Ana's months in a few steps: she arrives on a Saturday, her first email waits for
    Monday's office hours; she opens it, a scanner and then she click it; she asks for a
    demo and goes to sales. Returns her lead id as URLs carry it."""
    from nurture.app import create_app

    client = create_app(runtime=runtime).test_client()
    with runtime.sessions.begin() as session:
        data = parse_lead(
            {
                "email": "ana@usine.example",
                "first_name": "Ana",
                "last_name": "Dupont",
                "company": "Usine SA",
                "country": "FR",
                "company_size": 200,
                "job_title": "Plant director",
            }
        )
        lead, _ = take(session, runtime.content, runtime.settings, data, SATURDAY)
        on_event(session, runtime.content, lead, "start", {}, SATURDAY)
    assert runtime.dispatcher.tick(SATURDAY).sent == 0  # outside the send window
    assert runtime.dispatcher.tick(MONDAY).sent == 1
    body = runtime.make_mailer().messages[0].get_body(("html",)).get_content()  # type: ignore[attr-defined]
    hidden = re.search(r'display:none[^>]*>\s*<a href="https://nurture\.test([^"]+)"', body)
    pixel = re.search(r'<img src="https://nurture\.test([^"]+\.gif)"', body)
    links = re.findall(r'href="https://nurture\.test(/c/[^"]+)"', body)
    assert hidden and pixel and links
    visible = [path for path in dict.fromkeys(links) if path != hidden.group(1)]
    with freeze_time(MONDAY + timedelta(hours=1)):
        client.get(pixel.group(1), headers={"User-Agent": OUTLOOK})
    with freeze_time(MONDAY + timedelta(hours=1, minutes=1)):
        client.get(hidden.group(1), headers={"User-Agent": "Mozilla/5.0"})  # a link scanner
    with freeze_time(MONDAY + timedelta(hours=3)):
        client.get(visible[-1], headers={"User-Agent": CHROME})
    runtime.spool.flush()
    track(runtime, MONDAY + timedelta(hours=4))
    runtime.dispatcher.tick(MONDAY + timedelta(hours=5))  # on to the wait
    with runtime.sessions.begin() as session:
        lead = find_lead(session, "ana@usine.example")
        assert lead is not None
        record(
            session,
            runtime.content,
            runtime.settings,
            lead,
            "demo_requested",
            {"form": "demo"},
            MONDAY + timedelta(hours=6),
        )
        return lead.public_id


@pytest.fixture
def engine_console(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Console:
    from nurture.app import create_app

    sequences, templates = content_dirs
    (sequences / "news.yaml").write_text(SEQUENCE)
    linked = templates / "emails" / "linked"
    shutil.copytree(templates / "emails" / "example", linked)
    html_body = linked / "en" / "body.html"
    html_body.write_text(
        html_body.read_text() + '\n<p><a href="https://www.planifia.example/guide">guide</a></p>'
    )
    mailer = MemoryMailer()
    runtime = make_runtime(
        mailer_factory=lambda: mailer,
        sequences_dir=sequences,
        templates_dir=templates,
        scoring_file=ROOT / "sequences" / "rules" / "scoring.yaml",
        routing_file=ROOT / "sequences" / "rules" / "routing.yaml",
    )
    return Console(runtime, create_app(runtime=runtime))


def moments(page: str) -> list[dict[str, str]]:
    """The timeline's lines as a reader sees them: kind, title, label, where, text."""
    found = []
    for kind, body in re.findall(
        r'<li class="moment kind-[^"]+" data-kind="([^"]+)">(.*?)</li>', page, re.S
    ):
        part = {
            name: html.unescape(re.sub(r"<[^>]+>", "", value)).strip()
            for name, value in re.findall(
                r'<span class="(?:moment-)?([a-z]+)[^"]*">(.*?)</span>', body, re.S
            )
        }
        found.append({"kind": kind, **part})
    return found


def test_the_timeline_tells_the_engines_history_with_labels_and_reasons(
    engine_console: Console,
) -> None:
    public_id = history(engine_console.runtime)
    client = engine_console.signed_in("ana@planifia.example", "viewer")
    answer = client.get(f"/console/leads/{public_id}")
    assert answer.status_code == 200
    page = text_of(answer)
    told = moments(page)
    kinds = [m["kind"] for m in told]
    # Newest first: the promotion on top, her arrival at the bottom.
    assert kinds.index("promoted") < kinds.index("clicked") < kinds.index("sent")
    assert kinds.index("sent") < kinds.index("deferred") < kinds.index("enrolled")
    at = [m["at"] for m in told]
    assert at == sorted(at, reverse=True)

    [deferred] = [m for m in told if m["kind"] == "deferred"]
    assert "outside the send window (Europe/Paris)" in deferred["text"]
    assert deferred["where"] == "news / hello"
    [sent] = [m for m in told if m["kind"] == "sent" and "hello" in m["where"]]
    assert "email linked sent" in sent["text"] and "“" in sent["text"]  # with its subject
    labels = sorted((m["kind"], m["label"]) for m in told if m["kind"] in ("opened", "clicked"))
    assert labels == [("clicked", "human"), ("clicked", "scanner"), ("opened", "human")]
    [human] = [m for m in told if m.get("label") == "human" and m["kind"] == "clicked"]
    assert "browser user agent" in human["text"]
    scores = [m["text"] for m in told if m["kind"] == "score"]
    assert any("+40 points" in s and "asked for a demo" in s for s in scores)
    assert any("+5 points" in s and "clicked an email" in s for s in scores)
    assert not any("scanner" in s for s in scores)  # a scanner's click scores nothing
    [promoted] = [m for m in told if m["kind"] == "promoted"]
    assert "promoted to sales" in promoted["text"]
    assert any(m["kind"] == "stage" and "-> sql" in m["text"] for m in told)
    assert any(m["kind"] == "crm" and "lead.promoted" in m["text"] for m in told)
    [waiting] = [m for m in told if m["kind"] == "waiting"]
    assert "waiting until 2026-03-11" in waiting["text"]

    # Why did (or didn't) she get each email: the same words as `nurture leads why`.
    verdicts = dict(
        re.findall(r'data-step="([^"]+)">.*?<span class="reason">(.*?)</span>', page, re.S)
    )
    assert verdicts["hello"].startswith("Sent 2026-03-09 09:00 UTC")
    assert "Not sent: the lead left the sequence before this step" in html.unescape(
        verdicts["followup"]
    )
    assert "news / hello: email linked waits until 2026-03-09" in html.unescape(page)

    # The score, its reasons, the profile and the mailing state.
    assert re.search(r'id="stage">sql<', page) and re.search(r'id="grade">B<', page)
    assert "asked for a demo" in page and "Plant director" in page
    assert "May be mailed." in page


# --- the timeline, pure -------------------------------------------------------------------------

T = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_the_timeline_is_newest_first_and_keeps_the_engines_order_within_an_instant() -> None:
    facts = Facts(
        decisions=[
            Entry(T, "enrolled", "entered (event start), version v1", "s"),
            Entry(T, "sent", "email guide sent", "s", "one"),
            Entry(T + timedelta(days=1), "stage", "stage lead -> mql (score 40)"),
            Entry(T + timedelta(days=2), "sales", "sales answered accepted"),
        ],
        subjects={("s", "one"): "Your guide"},
        hits=[
            Hit(
                T + timedelta(hours=1),
                "click",
                "scanner",
                "s",
                "one",
                "https://x.example",
                ("hidden link",),
            ),
            Hit(T + timedelta(hours=1), "open", None, "s", "one"),
        ],
        scores=[ScorePoints(T + timedelta(days=1), 5, "clicked", "clicked an email", 40)],
        pushes=[Push(T + timedelta(days=1), "lead.promoted", "delivered", 1, 200)],
    )
    told = timeline(facts)
    assert [m.kind for m in told] == [
        "crm",
        "stage",
        "score",
        "clicked",
        "opened",
        "sent",
        "enrolled",
    ]
    assert told[-2].text == "email guide sent: “Your guide”"
    assert told[3].label == "scanner"
    assert told[3].text == "clicked https://x.example, by a scanner (hidden link)"
    assert told[4].label == "not yet classified"
    assert told[2].text == "+5 points, rule clicked: clicked an email (score 40)"
    assert told[0].text == "lead.promoted delivered (1 attempt), the CRM answered HTTP 200"
    # Sales answers come from their own rows (`answers`), not the promotion's last status.
    assert "sales" not in [m.kind for m in told]


@pytest.mark.parametrize(
    ("place", "outcome", "reason"),
    [
        (Place("s", "active", "two"), "sent", "Sent 2026-03-02 09:00 UTC: “Hello”."),
        (Place("s", "exited", "one", exit_reason="promoted"), "sent", "Sent"),
    ],
)
def test_an_email_sent_says_when_and_what(place: Place, outcome: str, reason: str) -> None:
    decisions = [Entry(T, "sent", "email a sent", "s", "one")]
    [verdict] = email_verdicts(place, [EmailStep("one", "a")], decisions, {("s", "one"): "Hello"})
    assert verdict.outcome == outcome and verdict.reason.startswith(reason)
    assert verdict.story == ("2026-03-02 09:00 UTC  s / one: email a sent",)


def test_an_email_not_sent_says_why() -> None:
    deferred = Entry(
        T,
        "deferred",
        "email b waits until 2026-03-03 08:00 UTC: outside the send window (Europe/Paris)",
        "s",
        "two",
    )
    skipped = Entry(T, "skipped", "email c not sent: unsubscribed", "s", "three")
    steps = [EmailStep("two", "b"), EmailStep("three", "c"), EmailStep("four", "d")]
    waiting, suppressed, later = email_verdicts(
        Place("s", "active", "two", due_at=T + timedelta(days=1)), steps, [deferred, skipped], {}
    )
    assert waiting.outcome == "waiting"
    assert waiting.reason == (
        "Not sent yet: email b waits until 2026-03-03 08:00 UTC: outside the send window"
        " (Europe/Paris)."
    )
    assert (suppressed.outcome, suppressed.reason) == (
        "not_sent",
        "Email c not sent: unsubscribed.",
    )
    assert (later.outcome, later.reason) == (
        "not_reached",
        "Not reached (yet): the lead is at step two.",
    )
    assert "nothing was decided about step four: the lead never reached it" in later.story
    [gone] = email_verdicts(
        Place("s", "exited", "two", exit_reason="unsubscribed"), [EmailStep("four", "d")], [], {}
    )
    assert gone.reason == "Not sent: the lead left the sequence before this step (unsubscribed)."
    [due] = email_verdicts(Place("s", "active", "four", due_at=T), [EmailStep("four", "d")], [], {})
    assert due.reason == "Not sent yet: due at 2026-03-02 09:00 UTC, the lead is at this step."
