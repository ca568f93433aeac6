"""The console's Sequences section through Flask's test client, on a small known history
(leads enrolled and ticked at fixed times), and the pure flow layout of
nurture/core/flow.py on every shipped sequence and a few shapes of graph."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from markupsafe import escape
from sqlalchemy import func, select

from nurture.app import create_app
from nurture.cli import cli
from nurture.console import users
from nurture.console.sequence_versions import changed
from nurture.core.flow import ENTRY, EXIT, FINISH, GOAL, Flow, layout
from nurture.core.intake import parse_lead
from nurture.core.sequence_parser import load_directory, parse_sequence
from nurture.core.sequences import (
    Clicked,
    EventSeen,
    FieldMatches,
    IntRange,
    NotClicked,
    Opened,
    ScoreAtLeast,
    StageIs,
)
from nurture.core.wording import condition_text
from nurture.enrollment import on_event
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import DecisionLog, Delivery, Event, Lead, TrackingHit
from nurture.runtime import Runtime

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
PREVIEW_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"
FRAMED_BY = "frame-ancestors 'self'"  # and X-Frame-Options: SAMEORIGIN, not DENY

TRIAL = """\
id: trial
name: Trial follow-up
locales: [en, fr]
entry:
  triggers:
    - event: {name: start}
exit:
  events: [demo_requested]
steps:
  - id: welcome
    email: {template: example, kind: guide}
  - id: pause
    wait: 1 day
  - id: engaged
    branch:
      - if: {score_at_least: 40}
        goto: offer
      - else: reminder
  - id: reminder
    email: {template: example, kind: other}
    next: end
  - id: offer
    email: {template: example, kind: comparison}
"""
BROKEN = """\
name: Broken on purpose
entry:
  triggers:
    - lead_created: {}
steps:
  - email: {template: welcome, kind: onboarding
  - wait: 2 days
"""


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its cheapest: the parameters are not what these tests are about."""
    monkeypatch.setattr(users, "HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@dataclass
class Console:
    runtime: Runtime
    app: Flask
    sequences: Path

    def signed_in(self, email: str, role: str) -> FlaskClient:
        with self.runtime.sessions.begin() as session:
            users.create_user(session, email, role, PASSWORD, T0)
        client = self.app.test_client()
        login = client.get("/console/login").get_data(as_text=True)
        found = TOKEN.search(login)
        assert found
        data = {"email": email, "password": PASSWORD, "csrf_token": found.group(1)}
        assert client.post("/console/login", data=data).status_code == 303
        return client


@pytest.fixture
def console(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Iterator[Console]:
    sequences, templates = content_dirs
    (sequences / "trial.yaml").write_text(TRIAL)
    mailer = MemoryMailer()
    runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    yield Console(runtime, create_app(runtime=runtime), sequences)


def enter(runtime: Runtime, email: str, name: str, at: datetime, score: int = 0) -> None:
    with runtime.sessions.begin() as session:
        first, last = name.split(" ")
        data = parse_lead({"email": email, "first_name": first, "last_name": last})
        lead, _, _ = upsert_lead(session, data, at)
        lead.score = score
        on_event(session, runtime.content, lead, "start", {}, at)


def event(runtime: Runtime, email: str, name: str, at: datetime) -> None:
    with runtime.sessions.begin() as session:
        lead = session.scalars(select(Lead).where(Lead.email == email)).one()
        on_event(session, runtime.content, lead, name, {}, at)


def history(runtime: Runtime) -> None:
    """Five leads: A (score 50) takes the offer, B and C the reminder, D reaches the goal
    while waiting, E entered a day later and waits."""
    for email, name in (
        ("a@client.example", "Zoé Lefèvre"),
        ("b@client.example", "Bruno Petit"),
        ("c@client.example", "Chloé Roux"),
        ("d@client.example", "Driss Amrani"),
    ):
        enter(runtime, email, name, T0, score=50 if email.startswith("a") else 0)
    assert runtime.dispatcher.tick(T0).sent == 4
    event(runtime, "d@client.example", "demo_requested", T0 + timedelta(hours=1))
    enter(runtime, "e@client.example", "Emma Blanc", T0 + timedelta(days=1))
    assert runtime.dispatcher.tick(T0 + timedelta(days=1, minutes=1)).sent == 4  # fmt: skip


def text(answer: Any) -> str:
    return str(answer.get_data(as_text=True))


def figures_of(page: str) -> dict[str, str]:
    """Each diagram node's id and what its counts line says."""
    found = re.finditer(
        r'<g class="node [a-z]+" id="([^"]+)".*?<text class="figures"[^>]*>([^<]*)</text>',
        page,
        re.S,
    )
    return {node: html.unescape(said) for node, said in (m.groups() for m in found)}


def label_of(page: str, source: str, target: str) -> tuple[str, str | None]:
    """An edge label's condition and count."""
    group = re.search(
        rf'<g class="label" data-source="{re.escape(source)}" data-target="{re.escape(target)}">'
        r"(.*?)</g>",
        page,
        re.S,
    )
    assert group, (source, target)
    condition = re.search(r'<text class="condition"[^>]*>([^<]*)</text>', group.group(1))
    count = re.search(r'<text class="count"[^>]*>([^<]*)</text>', group.group(1))
    assert condition
    return html.unescape(condition.group(1)), count.group(1) if count else None


def row_of(page: str, sequence_id: str) -> str:
    start = page.index(f'id="sequence-{sequence_id}"')
    return page[start : page.index("</tr>", start)]


def written(runtime: Runtime) -> tuple[int, ...]:
    """How many rows the engine wrote that a preview must never add to."""
    with runtime.sessions() as session:
        return tuple(
            session.scalar(select(func.count()).select_from(table)) or 0
            for table in (Delivery, Event, TrackingHit, DecisionLog)
        )


# --- the list -----------------------------------------------------------------------------


def test_the_list_shows_each_sequence_with_its_enrollments(console: Console) -> None:
    history(console.runtime)
    page = text(console.signed_in("viewer@planifia.example", "viewer").get("/console/sequences"))
    row = row_of(page, "trial")
    assert 'href="/console/sequences/trial">Trial follow-up</a>' in row
    live = console.runtime.content.get("trial")
    assert live is not None and f'<code class="version">{live.version}</code>' in row
    for status, count in (("entered", 5), ("active", 1), ("completed", 3), ("exited", 1)):
        assert f'class="number {status}">{count}<' in row, status


def test_the_list_shows_a_broken_file_with_the_problems_validate_prints(
    console: Console, database_url: str, tmp_path: Path
) -> None:
    broken = console.sequences / "broken.yaml"
    broken.write_text(BROKEN)
    page = html.unescape(
        text(console.signed_in("ana@planifia.example", "marketer").get("/console/sequences"))
    )
    assert f"{broken}:7: YAML syntax error" in page
    assert "does not load" in page
    # The same problems, as `nurture validate` prints them for the same folders.
    env = {
        "NURTURE_DATABASE_URL": database_url,
        "NURTURE_SECRET_KEY": "cli-test-secret-0123456789",
        "NURTURE_SEQUENCES_DIR": str(console.sequences),
        "NURTURE_TEMPLATES_DIR": str(console.runtime.settings.templates_dir),
        "NURTURE_OUTBOX_DIR": str(tmp_path / "outbox"),
    }
    result = CliRunner().invoke(cli, ["validate"], env=env)
    assert result.exit_code == 1
    printed = [line for line in result.output.splitlines() if re.match(r".+:\d+: ", line)]
    assert printed and all(line in page for line in printed), printed


def test_a_sales_user_opens_none_of_the_section(console: Console) -> None:
    history(console.runtime)
    client = console.signed_in("rep@planifia.example", "sales")
    for path in (
        "/console/sequences",
        "/console/sequences/trial",
        "/console/sequences/trial/preview/welcome/en",
    ):
        answer = client.get(path)
        assert answer.status_code == 403, path
        assert "Your role (sales) does not open this page." in text(answer)


def test_an_unknown_sequence_is_not_found(console: Console) -> None:
    client = console.signed_in("viewer@planifia.example", "viewer")
    assert client.get("/console/sequences/nothing-here").status_code == 404
    assert client.get("/console/sequences/trial/preview/pause/en").status_code == 404  # a wait
    assert client.get("/console/sequences/trial/preview/welcome/de").status_code == 404


# --- the flow diagram ------------------------------------------------------------------


def test_the_diagram_counts_who_is_at_each_node_and_who_passed(console: Console) -> None:
    history(console.runtime)
    page = text(
        console.signed_in("viewer@planifia.example", "viewer").get("/console/sequences/trial")
    )
    assert figures_of(page) == {
        "flow-entry": "entered 5",
        "flow-step-welcome": "now 0 · passed 5",
        "flow-step-pause": "now 1 · passed 3 · left 1",
        "flow-step-engaged": "now 0 · passed 3",
        "flow-step-reminder": "now 0 · passed 2",
        "flow-step-offer": "now 0 · passed 1",
        "flow-end": "completed 3",
        "flow-goal": "reached 1",
        "flow-exit": "left 0",
    }
    assert 'data-step="pause" data-now="1" data-passed="3" data-left="1"' in page
    assert "<svg" in page and 'class="flow"' in page and "style=" not in page
    # The branch's conditions, in the node and on its edges, with the ways taken.
    assert "if score ≥ 40 → offer" in page and "else → reminder" in page
    assert label_of(page, "engaged", "offer") == ("if score ≥ 40", "1 time")
    assert label_of(page, "engaged", "reminder") == ("else", "2 times")
    assert re.search(r"<td>goal: demo_requested</td><td class=\"number\">1</td>", page)


def test_figures_per_step_for_a_period(console: Console) -> None:
    history(console.runtime)
    client = console.signed_in("viewer@planifia.example", "viewer")
    page = text(client.get("/console/sequences/trial?from=2026-03-01&to=2026-03-31"))
    assert "Sequences, 2026-03-01 to 2026-03-31 (UTC days)" in page
    cells = r"\s*<td[^>]*>([^<]*)</td>"
    whole = re.search(r'<th scope="row">whole sequence</th>' + cells * 3, page)
    assert whole and whole.groups() == ("5", "8", "8")  # entered, sent, delivered
    welcome = re.search(r'<th scope="row">welcome</th>' + cells * 2, page)
    assert welcome and welcome.groups() == ("—", "5")
    empty = text(client.get("/console/sequences/trial?from=2026-04-01&to=2026-04-30"))
    assert "Nothing happened in this sequence in the period." in empty
    with freeze_time(T0 + timedelta(days=3)):  # by default the last 90 days, today included
        then = console.signed_in("then@planifia.example", "viewer")
        default = text(then.get("/console/sequences/trial"))
    assert 'name="from" value="2025-12-06"' in default and 'name="to" value="2026-03-05"' in default
    wrong = client.get("/console/sequences/trial?from=2026-03-31&to=2026-03-01")
    assert wrong.status_code == 400 and "is after to" in text(wrong)


# --- versions -----------------------------------------------------------------------------


def test_the_version_history_shows_an_edit_and_what_it_changed(console: Console) -> None:
    history(console.runtime)
    client = console.signed_in("viewer@planifia.example", "viewer")
    first = console.runtime.content.get("trial")
    assert first is not None
    page = text(client.get("/console/sequences/trial"))
    assert f'id="version-{first.version}"' in page
    assert "2026-03-02 09:00 UTC" in page  # first seen, when the first lead entered it
    edited = TRIAL.replace("wait: 1 day", "wait: 2 days") + (
        "  - id: follow-up\n    email: {template: example, kind: other}\n"
    )
    (console.sequences / "trial.yaml").write_text(edited)
    page = html.unescape(text(client.get("/console/sequences/trial")))
    second = console.runtime.content.get("trial")
    assert second is not None and second.version != first.version
    assert f'id="version-{second.version}"' in page and "not stored yet" in page
    assert f"From <code>{first.version}</code> to <code>{second.version}</code>" in page
    assert "Step <code>pause</code> changed: <del>wait 1 day → engaged</del>" in page
    assert "<ins>wait 2 days → engaged</ins>" in page
    assert "Step <code>follow-up</code> added: email example; kind: other → the end" in page
    assert "Step <code>offer</code> changed" in page  # it led to the end; now to follow-up
    assert '<span class="remove">-    wait: 1 day</span>' in page
    assert '<span class="add">+    wait: 2 days</span>' in page
    # Once the engine has seen it, it is stored, with that time.
    console.runtime.dispatcher.tick(T0 + timedelta(days=5))
    page = text(client.get(f"/console/sequences/trial?a={second.version}&b={first.version}"))
    assert "not stored yet" not in page and "2026-03-07 09:00 UTC" in page
    assert "Step <code>follow-up</code> removed" in page  # compared the other way round
    older = text(client.get(f"/console/sequences/trial?version={first.version}"))
    assert "Showing version" in older and "follow-up" not in figures_of(older)


def test_changes_between_two_parsed_versions() -> None:
    one = parse_sequence(TRIAL, "trial.yaml").sequence
    edited = TRIAL.replace("name: Trial follow-up", "name: Trial")
    edited = (
        edited.replace("score_at_least: 40", "score_at_least: 60")
        .replace(
            "  - id: reminder\n    email: {template: example, kind: other}\n    next: end\n", ""
        )
        .replace("- else: reminder", "- else: end")
    )
    two = parse_sequence(edited, "trial.yaml").sequence
    assert one is not None and two is not None
    found = {(c.what, c.subject): (c.before, c.after) for c in changed(one, two)}
    assert found[("setting", "name")] == ("Trial follow-up", "Trial")
    assert found[("removed", "reminder")] == ("email example; kind: other → the end", None)
    assert found[("changed", "engaged")] == (
        "branch: if score ≥ 40 → offer; else → reminder",
        "branch: if score ≥ 60 → offer; else → the end",
    )
    assert ("changed", "pause") not in found  # its line moved, nothing else
    assert changed(one, one) == []


# --- previews ---------------------------------------------------------------------------


def test_a_preview_for_a_lead_found_by_name_shows_their_email_untracked(console: Console) -> None:
    history(console.runtime)
    client = console.signed_in("viewer@planifia.example", "viewer")
    before = written(console.runtime)
    found = text(client.get("/console/sequences/trial?q=lef%C3%A8vre"))
    links = re.findall(r'<a class="lead" href="([^"]+)">([^<]*)</a>', found)
    assert [name for _, name in links] == ["Zoé Lefèvre"]
    with console.runtime.sessions() as session:
        public_id = session.scalars(select(Lead.public_id).where(Lead.email == "a@client.example"))
        lead_id = public_id.one()
    assert f"lead={lead_id}" in links[0][0]
    page = text(client.get(html.unescape(links[0][0])))
    assert 'Rendered for <strong id="reader">Zoé Lefèvre</strong>' in page
    text_part = re.search(
        r'id="preview-welcome-en">.*?<pre class="text-part"[^>]*>(.*?)</pre>',
        page,
        re.S,
    )
    assert text_part and "Hello Zoé," in html.unescape(text_part.group(1))
    frames = re.findall(r'<iframe class="html-part" sandbox src="([^"]+)"', page)
    assert len(frames) == 6  # three emails, each in English and French
    framed = client.get(html.unescape(frames[0]))
    assert framed.status_code == 200 and framed.mimetype == "text/html"
    assert framed.headers["Content-Security-Policy"] == f"{PREVIEW_POLICY}; {FRAMED_BY}"
    assert framed.headers["X-Frame-Options"] == "SAMEORIGIN"
    body = text(framed)
    assert "Hello Zoé," in body
    website = console.runtime.settings.sender_website
    assert (
        f'href="{website}/guide?utm_source=nurture&amp;utm_medium=email&amp;'
        'utm_campaign=trial&amp;utm_content=welcome"'
    ) in body
    base = console.runtime.settings.base_url
    for part in (body, text_part.group(1)):
        assert f"{base}/c/" not in part and f"{base}/o/" not in part and "/t/" not in part
        assert "<img" not in part  # no open pixel
    french = client.get(html.unescape(frames[1]))
    assert "Bonjour Zoé," in text(french)
    assert written(console.runtime) == before  # nothing recorded


@pytest.mark.parametrize(
    ("search", "names"),
    [
        ("lef", ["Zoé Lefèvre"]),  # the start of a last name
        ("ZO", ["Zoé Lefèvre"]),  # of a first name, any case
        ("zoé lef", ["Zoé Lefèvre"]),  # first and last name
        ("Lefèvre Zoé", ["Zoé Lefèvre"]),
        ("b@client", ["Bruno Petit"]),  # of an email
        ("client", []),  # a prefix, not anywhere inside
        ("%", []),  # LIKE's wildcards are plain characters here
        ("_", []),
    ],
)
def test_the_lead_search(console: Console, search: str, names: list[str]) -> None:
    history(console.runtime)
    client = console.signed_in("viewer@planifia.example", "viewer")
    page = text(client.get("/console/sequences/trial", query_string={"q": search}))
    assert re.findall(r'<a class="lead" href="[^"]+">([^<]*)</a>', page) == names


def test_without_a_lead_the_sample_lead_is_previewed(console: Console) -> None:
    client = console.signed_in("viewer@planifia.example", "viewer")
    page = text(client.get("/console/sequences/trial"))
    assert 'Rendered for <strong id="reader">Claire Martin</strong>' in page
    assert "what Claire Martin gets" in page  # her French
    framed = client.get("/console/sequences/trial/preview/offer/fr")
    assert "Bonjour Claire," in text(framed)
    missing = client.get("/console/sequences/trial?lead=ld_nobody")
    assert "No such lead: the sample lead is shown instead." in text(missing)
    assert client.get("/console/sequences/trial/preview/offer/fr?lead=ld_nobody").status_code == 404
    nobody = text(client.get("/console/sequences/trial?q=zzz"))
    assert "No lead's email or name begins with" in nobody


def test_a_hostile_lead_is_shown_as_text_everywhere(console: Console) -> None:
    hostile = '<img src=x onerror="alert(1)">'
    with console.runtime.sessions.begin() as session:
        data = parse_lead({"email": "h@client.example", "first_name": "Hostile", "company": "x"})
        lead, _, _ = upsert_lead(session, data, T0)
        lead.last_name = hostile
        public_id = lead.public_id
    client = console.signed_in("viewer@planifia.example", "viewer")
    found = text(client.get("/console/sequences/trial", query_string={"q": "hostile"}))
    assert hostile not in found and str(escape(hostile)) in found  # Jinja's escaping
    page = text(client.get("/console/sequences/trial", query_string={"lead": public_id}))
    assert hostile not in page and str(escape(hostile)) in page
    framed = client.get(f"/console/sequences/trial/preview/welcome/en?lead={public_id}")
    assert framed.headers["Content-Security-Policy"].startswith(PREVIEW_POLICY)
    assert "<img" not in text(framed)  # escaped by the email's own template too


# --- the layout, pure --------------------------------------------------------------------

SHIPPED = load_directory(ROOT / "sequences").sequences
LOOP = """\
id: loop
name: Wait for a booking, check the score, wait again
entry: {triggers: [{event: {name: start}}]}
steps:
  - id: hello
    email: {template: example, kind: guide}
  - id: wait
    wait: {until: meeting_booked, timeout: 7 days, then: thanks}
  - id: hot?
    branch:
      - if: {score_at_least: 50}
        goto: pitch
      - if: {stage: [mql, sql]}
        goto: pitch
      - else: wait
  - id: pitch
    email: {template: example, kind: comparison}
  - id: thanks
    email: {template: example, kind: other}
"""
SKIP = """\
id: skip
name: A shortcut past three steps
entry: {triggers: [{event: {name: start}}]}
steps:
  - id: first
    email: {template: example, kind: guide}
  - id: fork
    branch:
      - if: {clicked: first}
        goto: last
      - else: a
  - id: a
    wait: 1 day
  - id: b
    email: {template: example, kind: guide}
  - id: c
    wait: 2 days
  - id: last
    email: {template: example, kind: other}
"""


def parsed(source: str) -> Any:
    result = parse_sequence(source, "test.yaml")
    assert result.sequence is not None, result.problems
    return result.sequence


SHAPES = {**{f"shipped {k}": v for k, v in SHIPPED.items()},
          "loop": parsed(LOOP), "skip": parsed(SKIP), "trial": parsed(TRIAL)}  # fmt: skip


def samples(path: str) -> list[tuple[float, float]]:
    """Points along an SVG path made of M, H, V and C commands."""
    tokens = re.findall(r"[MHVC]|-?\d+(?:\.\d+)?", path)
    points: list[tuple[float, float]] = []
    x = y = 0.0
    i = 0
    while i < len(tokens):
        command = tokens[i]
        if command == "M":
            x, y = float(tokens[i + 1]), float(tokens[i + 2])
            points.append((x, y))
            i += 3
        elif command in "HV":
            end = float(tokens[i + 1])
            x2, y2 = (end, y) if command == "H" else (x, end)
            points += [(x + (x2 - x) * t / 20, y + (y2 - y) * t / 20) for t in range(21)]
            x, y = x2, y2
            i += 2
        else:
            x1, y1, x3, y3, x2, y2 = (float(v) for v in tokens[i + 1 : i + 7])
            for step in range(21):
                t = step / 20
                a, b, c, d = (1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3
                points.append((a * x + b * x1 + c * x3 + d * x2, a * y + b * y1 + c * y3 + d * y2))
            x, y = x2, y2
            i += 7
    return points


@pytest.mark.parametrize("name", sorted(SHAPES))
def test_the_layout_draws_every_step_apart_and_downwards(name: str) -> None:
    sequence = SHAPES[name]
    flow = layout(sequence)
    keys = [node.key for node in flow.nodes]
    assert keys[: len(sequence.steps) + 1] == [ENTRY, *(s.id for s in sequence.steps)]
    assert FINISH in keys and EXIT in keys and (GOAL in keys) == bool(sequence.exit.events)
    for node in flow.nodes:
        assert node.x >= 0 and node.x + node.width <= flow.width
        assert node.y >= 0 and node.y + node.height <= flow.height
        for other in flow.nodes:
            if other is not node:
                apart = (
                    node.x + node.width <= other.x
                    or other.x + other.width <= node.x
                    or node.y + node.height <= other.y
                    or other.y + other.height <= node.y
                )
                assert apart, (node.key, other.key)
    by_key = {node.key: node for node in flow.nodes}
    for edge in flow.edges:
        source, target = by_key[edge.source], by_key[edge.target]
        points = samples(edge.path)
        if edge.back:
            assert target.y <= source.y
        else:
            assert target.y > source.y + source.height  # a layer further down
            assert points[0][1] == pytest.approx(source.y + source.height)
            assert points[-1] == pytest.approx((target.x + target.width / 2, target.y))
        for node in flow.nodes:  # an edge crosses no node on its way
            if node.key in (edge.source, edge.target):
                continue
            inside = [p for p in points if node.x + 1 < p[0] < node.x + node.width - 1
                      and node.y + 1 < p[1] < node.y + node.height - 1]  # fmt: skip
            assert inside == [], (edge.source, edge.target, node.key)
    labels = [e for e in flow.edges if e.shown and not e.back]
    for one in labels:
        for other in labels:
            if other is not one and abs(one.label_y - other.label_y) < 1:
                gap = abs(one.label_x - other.label_x) - (one.label_width + other.label_width) / 2
                assert gap >= 0, (one.label, other.label)
    assert layout(sequence) == flow  # the same file, the same drawing


def test_branches_and_waits_for_an_event_label_their_edges() -> None:
    flow = layout(parsed(LOOP))
    labels = {(e.source, e.target): e.label for e in flow.edges}
    assert labels[("wait", "thanks")] == "on meeting_booked"
    assert labels[("wait", "hot?")] == "none within 7 days"
    assert labels[("hot?", "pitch")] == "if score ≥ 50 / if stage is mql or sql"
    assert labels[("hot?", "wait")] == "else"
    assert labels[(ENTRY, "hello")] is None
    (back,) = [e for e in flow.edges if e.back]
    assert (back.source, back.target, back.anchor) == ("hot?", "wait", "start")
    assert flow.node("hot?").lines == (
        "if score ≥ 50 → pitch",
        "if stage is mql or sql → pitch",
        "else → wait",
    )
    assert flow.node("wait").lines == ("until meeting_booked", "at most 7 days")
    assert [n.dom_id for n in flow.nodes][:2] == ["flow-entry", "flow-step-hello"]


def test_a_long_line_is_wrapped_inside_its_node() -> None:
    subject = "subject: '" + "very " * 40 + "long'"
    long = TRIAL.replace("kind: guide", f"kind: guide, {subject}")
    node = layout(parsed(long)).node("welcome")
    assert len(node.lines) == 5 and node.lines[-1].endswith("…")  # 3 lines at most per text
    assert all(len(line) <= 36 for line in node.lines)
    assert node.height > layout(parsed(TRIAL)).node("welcome").height


@pytest.mark.parametrize(
    ("condition", "said"),
    [
        (Clicked("guide"), "clicked guide"),
        (NotClicked("guide"), "did not click guide"),
        (Opened("guide"), "opened guide"),
        (ScoreAtLeast(40), "score ≥ 40"),
        (FieldMatches("company_size", range=IntRange(50, 500)), "company_size 50–500"),
        (FieldMatches("company_size", range=IntRange(min=500)), "company_size ≥ 500"),
        (FieldMatches("industry", frozenset({"food", "auto"})), "industry is auto or food"),
        (StageIs(frozenset({"mql"})), "stage is mql"),
        (EventSeen("webinar_attended"), "did webinar_attended"),
    ],
)
def test_conditions_are_written_out(condition: Any, said: str) -> None:
    assert condition_text(condition) == said


def test_flow_is_a_value() -> None:
    flow = layout(parsed(TRIAL))
    assert isinstance(flow, Flow) and flow.sequence_id == "trial"
    assert flow.step_ids == ("welcome", "pause", "engaged", "reminder", "offer")
    with pytest.raises(KeyError):
        flow.node("nowhere")
