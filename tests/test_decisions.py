"""The decision log: "why did (or didn't) this lead get this email", answered by
`nurture leads why` from what the engine wrote down as it decided."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import TEST_SECRET

from nurture.cli import cli
from nurture.core.decisions import Entry, explain, refusal
from nurture.core.intake import parse_lead
from nurture.core.profile import LeadProfile
from nurture.core.sequences import Audience, IntRange
from nurture.enrollment import on_event, unsubscribe
from nurture.intake import take
from nurture.leads import find_lead
from nurture.mail import MemoryMailer
from nurture.suppression import list_key

MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # 10:00 in Paris


def sequence(name: str, body: str, audience: str = "", extra: str = "") -> str:
    return f"""\
id: {name}
name: {name}
locales: [en]
timezone: Europe/Paris
entry:
  triggers:
    - event: {{name: start-{name}}}
{audience}{extra}steps:
{body}"""


TWO_EMAILS = """\
  - id: first
    email: {template: example, kind: guide}
  - id: second
    email: {template: example, kind: guide}
"""

BRANCHING = """\
  - id: hello
    email: {template: example, kind: guide}
  - id: pause
    wait: 1 day
  - id: choose
    branch:
      - if: {score_at_least: 50}
        goto: hot
      - if: {field: {industry: [plastics]}}
        goto: plastics
      - else: cold
  - id: hot
    email: {template: example, kind: guide}
    next: end
  - id: plastics
    email: {template: example, kind: guide}
    next: end
  - id: cold
    email: {template: example, kind: guide}
"""


@pytest.fixture
def world(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Any:
    sequences, templates = content_dirs
    (sequences / "belgium.yaml").write_text(
        sequence("belgium", TWO_EMAILS, audience="  audience:\n    country: [BE, CH]\n")
    )
    (sequences / "welcome.yaml").write_text(sequence("welcome", TWO_EMAILS))
    (sequences / "nurture.yaml").write_text(sequence("nurture", BRANCHING))
    only = "  - id: only\n    email: {template: example, kind: guide}\n"
    (sequences / "once.yaml").write_text(sequence("once", only))
    mailer = MemoryMailer()
    runtime = make_runtime(
        mailer_factory=lambda: mailer,
        sequences_dir=sequences,
        templates_dir=templates,
        frequency_cap=_cap(2, 7),
    )
    return runtime


def _cap(emails: int, days: int) -> Any:
    from nurture.config import FrequencyCap

    return FrequencyCap(emails=emails, days=days)


def arrive(runtime: Any, email: str, now: datetime, **values: Any) -> None:
    with runtime.sessions.begin() as session:
        take(session, runtime.content, runtime.settings, parse_lead({"email": email, **values}),
             now)  # fmt: skip


def start(runtime: Any, email: str, name: str, now: datetime) -> None:
    with runtime.sessions.begin() as session:
        lead = find_lead(session, email)
        assert lead is not None
        on_event(session, runtime.content, lead, f"start-{name}", {}, now)


def why(runtime: Any, email: str, *options: str) -> str:
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": TEST_SECRET,
        "NURTURE_SEQUENCES_DIR": str(runtime.settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(runtime.settings.templates_dir),
    }
    result = CliRunner().invoke(cli, ["leads", "why", email, *options], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_lead_kept_out_by_the_audience_is_told_which_condition(world: Any) -> None:
    arrive(world, "jean@example.fr", MONDAY, country="FR")
    start(world, "jean@example.fr", "belgium", MONDAY)
    said = why(world, "jean@example.fr", "--sequence", "belgium", "--step", "first")
    assert (
        "belgium: not entered on event start-belgium: audience: country must be one of BE, CH"
        " (is FR)" in said
    )
    assert "nothing was decided about step first: the lead never reached it" in said


def test_a_lead_refused_re_entry_is_told_the_policy(world: Any) -> None:
    arrive(world, "ana@example.com", MONDAY)
    start(world, "ana@example.com", "once", MONDAY)
    assert world.dispatcher.tick(MONDAY).sent == 1
    world.dispatcher.tick(MONDAY + timedelta(minutes=1))  # completes
    start(world, "ana@example.com", "once", MONDAY + timedelta(days=3))
    said = why(world, "ana@example.com", "--sequence", "once")
    assert "once / only: email example sent" in said
    assert "once: completed the sequence" in said
    assert (
        "once: not entered on event start-once: left on 2026-03-02 and its re-entry policy" in said
    )


def test_each_branch_names_the_rule_and_the_values_it_saw(world: Any) -> None:
    arrive(world, "hot@example.com", MONDAY)
    arrive(world, "plastic@example.com", MONDAY, fields={"industry": "plastics"})
    arrive(world, "cold@example.com", MONDAY, fields={"industry": "food"})
    with world.sessions.begin() as session:
        hot = find_lead(session, "hot@example.com")
        assert hot is not None
        hot.score = 72
    for email in ("hot@example.com", "plastic@example.com", "cold@example.com"):
        start(world, email, "nurture", MONDAY)
    assert world.dispatcher.tick(MONDAY).sent == 3
    assert world.dispatcher.tick(MONDAY + timedelta(days=1, hours=1)).sent == 3
    assert "nurture / choose: score >= 50 held, went to hot (seen: score 72)" in why(
        world, "hot@example.com"
    )
    assert (
        "nurture / choose: industry in ['plastics'] held, went to plastics"
        " (seen: score 0; industry plastics)" in why(world, "plastic@example.com")
    )
    cold = why(world, "cold@example.com", "--sequence", "nurture", "--step", "choose")
    assert "no rule held, went to cold (seen: score 0; industry food)" in cold
    # The wait before it, told with its end.
    waited = why(world, "cold@example.com", "--sequence", "nurture", "--step", "pause")
    assert "nurture / pause: waiting until 2026-03-03 09:00 UTC" in waited


def test_the_frequency_cap_names_the_sequences_that_used_it(world: Any) -> None:
    arrive(world, "busy@example.com", MONDAY)
    start(world, "busy@example.com", "welcome", MONDAY)
    assert world.dispatcher.tick(MONDAY).sent == 1
    assert world.dispatcher.tick(MONDAY + timedelta(minutes=5)).sent == 1  # 2 of 2 in 7 days
    start(world, "busy@example.com", "nurture", MONDAY + timedelta(hours=1))
    assert world.dispatcher.tick(MONDAY + timedelta(hours=1)).sent == 0
    said = why(world, "busy@example.com", "--sequence", "nurture", "--step", "hello")
    assert (
        "nurture / hello: email example waits until 2026-03-09 09:00 UTC: frequency cap of"
        " 2 emails in 7 days reached (emails from welcome)" in said
    )


def test_the_send_window_and_public_holidays_are_told_apart(
    make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content_dirs
    window = 'send_window:\n  days: mon-fri\n  hours: "09:00-17:00"\n  holidays: true\n'
    (sequences / "office.yaml").write_text(sequence("office", TWO_EMAILS, extra=window))
    runtime = make_runtime(mailer_factory=MemoryMailer, sequences_dir=sequences,
                           templates_dir=templates)  # fmt: skip
    christmas = datetime(2026, 12, 25, 10, 0, tzinfo=UTC)  # a Friday
    arrive(runtime, "noel@example.fr", christmas, country="FR")
    start(runtime, "noel@example.fr", "office", christmas)
    assert runtime.dispatcher.tick(christmas).sent == 0
    saturday_night = datetime(2026, 12, 26, 22, 0, tzinfo=UTC)
    arrive(runtime, "late@example.fr", saturday_night, country="FR")
    start(runtime, "late@example.fr", "office", saturday_night)
    assert runtime.dispatcher.tick(saturday_night).sent == 0
    assert "a public holiday (Europe/Paris)" in why(runtime, "noel@example.fr")
    assert "outside the send window (Europe/Paris)" in why(runtime, "late@example.fr")


def test_a_suppressed_lead_is_told_why_it_got_nothing(world: Any) -> None:
    arrive(world, "gone@example.com", MONDAY)
    start(world, "gone@example.com", "welcome", MONDAY)
    assert world.dispatcher.tick(MONDAY).sent == 1
    with world.sessions.begin() as session:
        lead = find_lead(session, "gone@example.com")
        assert lead is not None
        unsubscribe(session, list_key(world.settings), lead, MONDAY + timedelta(minutes=1))
    assert world.dispatcher.tick(MONDAY + timedelta(minutes=2)).sent == 0
    said = why(world, "gone@example.com", "--sequence", "welcome")
    assert "welcome: left: unsubscribed" in said
    assert "welcome / first: email example sent" in said


def test_an_unknown_lead_and_a_step_without_its_sequence_are_refused(world: Any) -> None:
    env = {"NURTURE_DATABASE_URL": world.settings.database_url, "NURTURE_SECRET_KEY": TEST_SECRET}
    unknown = CliRunner().invoke(cli, ["leads", "why", "nobody@example.com"], env=env)
    assert unknown.exit_code == 1 and "no lead with email nobody@example.com" in unknown.output
    lonely = CliRunner().invoke(cli, ["leads", "why", "x@example.com", "--step", "a"], env=env)
    assert lonely.exit_code == 2 and "--step needs --sequence" in lonely.output


# --- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("audience", "said"),
    [
        (Audience(countries=frozenset({"BE"})), "country must be one of BE (is not known)"),
        (Audience(company_size=IntRange(50, 500)), "company size must be 50..500 (is 12)"),
        (Audience(job_title_contains=("ops",)), "job title must contain one of ops (is CEO)"),
        (Audience(stages=frozenset({"mql"})), "stage must be one of mql (is lead)"),
        (Audience(locales=frozenset({"fr"})), "locale must be one of fr (is not known)"),
        (Audience(), None),
    ],
)
def test_the_first_failed_audience_condition_is_named(audience: Audience, said: str | None) -> None:
    lead = LeadProfile(email="a@example.com", company_size=12, job_title="CEO", stage="lead")
    assert refusal(audience, lead) == said


def test_a_story_is_told_oldest_first_and_filtered_by_sequence_and_step() -> None:
    t = MONDAY
    entries = [
        Entry(t + timedelta(hours=2), "sent", "email b sent", "s", "b"),
        Entry(t, "enrolled", "entered (event x)", "s"),
        Entry(t + timedelta(hours=1), "stage", "stage lead -> mql (score)"),
        Entry(t + timedelta(hours=3), "sent", "email c sent", "other", "c"),
    ]
    assert explain(entries)[0] == "2026-03-02 09:00 UTC  s: entered (event x)"
    assert len(explain(entries)) == 4
    assert explain(entries, "s") == [
        "2026-03-02 09:00 UTC  s: entered (event x)",
        "2026-03-02 10:00 UTC  stage lead -> mql (score)",
        "2026-03-02 11:00 UTC  s / b: email b sent",
    ]
    assert explain(entries, "s", "b")[-1] == "2026-03-02 11:00 UTC  s / b: email b sent"
    assert explain(entries, "none")[-1] == (
        "nothing was decided about none: none of its triggers fired"
    )
