"""An A/B split through the real dispatcher, a real SMTP server and the database
(SQLite, or PostgreSQL with NURTURE_TEST_POSTGRES_URL): each lead keeps one variant,
gets that variant's email, the holdout gets nothing, and the results count clicks."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import select

from nurture.app import create_app
from nurture.cli import cli
from nurture.core.experiments import assign
from nurture.core.intake import parse_lead
from nurture.decisions import story
from nurture.enrollment import on_event
from nurture.experiments import decide_winners, split_tables
from nurture.leads import upsert_lead
from nurture.models import Delivery, Enrollment, Lead, SplitAssignment
from nurture.runtime import Runtime
from nurture.scheduler import track

if TYPE_CHECKING:
    from smtp_server import SmtpTestServer

pytest_plugins = ["smtp_server"]

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/130.0.0.0 Safari/537.36"
)
SEQUENCE = """\
id: onboarding
name: Onboarding test
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: welcome
    split:
      email: {template: example, kind: guide}
      variants:
        control: {weight: 1}
        question: {weight: 1, subject: "A question for {{ lead.first_name }}"}
        story: {weight: 1, template: example-b}
      holdout: 0.25
      stop: {metric: human_clicks, confidence: 0.95, min_per_variant: 3}
  - id: pause
    wait: 1 day
  - id: second
    email: {template: example, kind: comparison}
"""
LEADS = 16


@pytest.fixture
def world(
    make_runtime: Any, content_dirs: tuple[Path, Path], smtp_server: SmtpTestServer
) -> Runtime:
    sequences, templates = content_dirs
    (sequences / "onboarding.yaml").write_text(SEQUENCE)
    story = templates / "emails" / "example-b"
    shutil.copytree(templates / "emails" / "example", story)
    (story / "en" / "subject.txt").write_text("How Girard Plast did it")
    runtime: Runtime = make_runtime(
        sequences_dir=sequences, templates_dir=templates, smtp_url=smtp_server.url
    )
    assert not runtime.content.problems, runtime.content.problems
    with runtime.sessions.begin() as session:
        for n in range(LEADS):
            email = f"lead{n:02d}@example.com"
            lead, _, _ = upsert_lead(session, parse_lead({"email": email, "first_name": "Zoé"}), T0)
            on_event(session, runtime.content, lead, "start", {}, T0)
    return runtime


def assignments(runtime: Runtime) -> dict[str, str]:
    with runtime.sessions() as session:
        rows = session.execute(
            select(Lead.email, SplitAssignment.variant).join(
                SplitAssignment, SplitAssignment.lead_id == Lead.id
            )
        )
        return {email: variant for email, variant in rows}


def subjects(smtp_server: SmtpTestServer) -> dict[str, str]:
    return {r.recipients[0]: str(r.message["Subject"]) for r in smtp_server.received}


def test_each_lead_keeps_its_variant_gets_its_email_and_the_holdout_gets_nothing(
    world: Runtime, smtp_server: SmtpTestServer
) -> None:
    runtime = world
    sequence = runtime.content.get("onboarding")
    assert sequence is not None
    [split] = sequence.splits()

    report = runtime.dispatcher.tick(T0)
    assigned = assignments(runtime)
    assert len(assigned) == LEADS  # every lead assigned once, on its way past the split
    groups = Counter(assigned.values())
    assert set(groups) == {"control", "question", "story", "holdout"}, groups
    # The assignment is the hash of the lead's id: what the pure core says, any process.
    with runtime.sessions() as session:
        ids = {email: id_ for email, id_ in session.execute(select(Lead.email, Lead.id))}
    assert assigned == {email: assign(split, "onboarding", str(ids[email])) for email in assigned}

    # Each variant's leads got its email, rendered as that variant says; the holdout none.
    got = subjects(smtp_server)
    assert report.sent == LEADS - groups["holdout"] == len(got)
    expected = {
        "control": "Zoé, a short guide for your team",  # the template's own subject
        "question": "A question for Zoé",
        "story": "How Girard Plast did it",
    }
    for email, variant in assigned.items():
        if variant == "holdout":
            assert email not in got
        else:
            assert got[email] == expected[variant], (email, variant)

    # The holdout went on after the split: waiting with the others, and `why` says so.
    with runtime.sessions() as session:
        steps = {
            e: s
            for e, s in session.execute(select(Lead.email, Enrollment.step_id).join(Enrollment))
        }
        held = next(e for e, v in assigned.items() if v == "holdout")
        said = [e.reason for e in story(session, ids[held]) if e.kind == "split"]
    assert set(steps.values()) == {"pause"}
    assert said == ["split: holdout (25 %), gets nothing from this split"]

    # Again, at the same time and a minute later: nothing twice, nobody reshuffled.
    assert runtime.dispatcher.tick(T0).sent == 0
    assert runtime.dispatcher.tick(T0 + timedelta(minutes=1)).sent == 0
    assert assignments(runtime) == assigned and len(smtp_server.received) == len(got)

    # A day later everyone, the holdout too, gets the next email: once.
    assert runtime.dispatcher.tick(T0 + timedelta(days=1, minutes=1)).sent == LEADS
    assert runtime.dispatcher.tick(T0 + timedelta(days=1, minutes=2)).sent == 0
    with runtime.sessions() as session:
        per_step = Counter(session.scalars(select(Delivery.step_id)))
    assert per_step == {"welcome": LEADS - groups["holdout"], "second": LEADS}


def click_the_welcome_email(runtime: Runtime, smtp_server: SmtpTestServer, email: str) -> None:
    """A person opens the split's email and clicks its first link, a while later."""
    [received] = [r for r in smtp_server.received if r.recipients[0] == email]
    html = received.message.get_body(("html",)).get_content()
    hidden = re.search(r'display:none[^>]*>\s*<a href="([^"]+)"', html)
    links = [u for u in re.findall(r'href="(https://nurture\.test/c/[^"]+)"', html)]
    assert hidden and links
    link = next(u for u in links if u != hidden.group(1))
    client = create_app(runtime=runtime).test_client()
    later = T0 + timedelta(hours=2)
    with freeze_time(later):
        answer = client.get(urlsplit(link).path, headers={"User-Agent": CHROME})
    assert answer.status_code == 302
    runtime.spool.flush()
    track(runtime, later + timedelta(minutes=5))


def test_the_results_count_human_clicks_per_variant_and_the_stop_rule_picks_a_winner(
    world: Runtime, smtp_server: SmtpTestServer
) -> None:
    runtime = world
    runtime.dispatcher.tick(T0)
    assigned = assignments(runtime)
    control = [e for e, v in assigned.items() if v == "control"]
    question = [e for e, v in assigned.items() if v == "question"]
    for email in question:
        click_the_welcome_email(runtime, smtp_server, email)

    with runtime.sessions() as session:
        [table] = split_tables(session, runtime.settings)
    rows = {row[0]: dict(zip(table.columns, row, strict=True)) for row in table.rows}
    assert [row[0] for row in table.rows] == ["control", "question", "story", "holdout"]
    assert rows["question"]["clicked"] == rows["question"]["entered"] == len(question)
    assert rows["control"]["clicked"] == 0 and rows["control"]["entered"] == len(control)
    assert rows["holdout"]["sent"] == 0
    assert rows["control"]["beats control %"] == "control"

    # The command shows the same, as JSON too; the sequence report ends with it.
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": runtime.secret_key,
        "NURTURE_SEQUENCES_DIR": str(runtime.settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(runtime.settings.templates_dir),
    }
    result = CliRunner().invoke(
        cli, ["split", "results", "onboarding", "--format", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    question_row = shown["rows"][1]
    assert question_row["variant"] == "question" and question_row["share %"] == 25
    assert question_row["clicked"] == len(question) and question_row["click %"] == 100
    result = CliRunner().invoke(
        cli, ["report", "sequences", "--from", "2026-03-01", "--to", "2026-03-31"], env=env
    )
    assert result.exit_code == 0, result.output
    assert "Split welcome of onboarding, since it began" in result.output
    result = CliRunner().invoke(cli, ["preview", "onboarding", "welcome"], env=env)
    assert result.exit_code == 0 and "Template: example (fr), kind guide" in result.output
    asked = ["preview", "onboarding", "welcome", "--variant", "question"]
    result = CliRunner().invoke(cli, asked, env=env)
    assert result.exit_code == 0 and result.output.startswith("Subject: A question for Claire")

    # Every question lead clicked, no other lead did: the stop rule (3 leads each at
    # least, 95 %) finds the winner once, and new leads all get it from then on.
    assert sorted(Counter(assigned.values()).values()) == [3, 4, 4, 5]  # the hash's draw
    later = T0 + timedelta(hours=3)
    with runtime.sessions.begin() as session:
        said = decide_winners(session, runtime.content, later)
    assert len(said) == 1 and said[0].startswith("onboarding/welcome: question wins")
    with runtime.sessions.begin() as session:
        assert decide_winners(session, runtime.content, later) == []  # decided already
        lead, _, _ = upsert_lead(session, parse_lead({"email": "new@example.com"}), later)
        on_event(session, runtime.content, lead, "start", {}, later)
    assert runtime.dispatcher.tick(later).sent == 1
    after = assignments(runtime)
    assert after.pop("new@example.com") == "question"
    assert after == assigned  # the leads assigned before keep their variant
    with runtime.sessions() as session:
        [table] = split_tables(session, runtime.settings)
    assert table.notes[0].startswith("stopped on 2026-03-02 12:00 UTC: question won")
