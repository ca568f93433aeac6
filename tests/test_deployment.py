"""Safe live edits: templates pinned like sequences, `nurture plan` and `nurture apply`
with a `migrate:` mapping, while leads are in flight, through the real dispatcher."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from freezegun import freeze_time
from sqlalchemy import select

from nurture.cli import cli
from nurture.content import Content
from nurture.core.intake import parse_lead
from nurture.deployment import apply
from nurture.enrollment import on_event
from nurture.leads import upsert_lead
from nurture.mail import MemoryMailer, RetryLater
from nurture.models import DecisionLog, Delivery, Enrollment, Lead
from nurture.runtime import Runtime

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)

HEAD = """\
id: onboarding
name: Onboarding
locales: [en]
entry:
  triggers:
    - event: {name: start}
steps:
"""
V1 = (
    HEAD
    + """\
  - id: hello
    email: {template: example, kind: onboarding}
  - id: long-pause
    wait: 3 days
  - id: tips
    email: {template: guide, kind: guide}
  - id: after-tips
    wait: 2 days
  - id: bye
    email: {template: closing, kind: other}
"""
)
# v2 shortens the first wait under a new id and renames the guide step: the same email.
V2_STEPS = """\
  - id: hello
    email: {template: example, kind: onboarding}
  - id: short-pause
    wait: 1 day
  - id: tips-v2
    email: {template: guide, kind: guide}
  - id: after-tips
    wait: 2 days
  - id: bye
    email: {template: closing, kind: other}
"""
MIGRATE = """\
migrate:
  long-pause: short-pause
  tips: tips-v2
"""
V2 = HEAD + V2_STEPS + MIGRATE


@pytest.fixture
def dirs(content_dirs: tuple[Path, Path]) -> tuple[Path, Path]:
    """The example email under three names, each with its own subject."""
    sequences, templates = content_dirs
    emails = templates / "emails"
    for name in ("guide", "closing"):
        shutil.copytree(emails / "example", emails / name)
    for name in ("example", "guide", "closing"):
        subject(templates, name, f"{name} v1")
    return sequences, templates


def subject(templates: Path, name: str, text: str) -> None:
    (templates / "emails" / name / "en" / "subject.txt").write_text(text + "\n")
    for other in (templates / "emails" / name).iterdir():
        if other.is_dir() and other.name != "en":
            (other / "subject.txt").write_text(text + "\n")


def start(runtime: Runtime, email: str, now: datetime) -> None:
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({"email": email}), now)
        on_event(session, runtime.content, lead, "start", {}, now)


def received(mailer: MemoryMailer) -> list[tuple[str, str]]:
    return sorted((str(m["To"]), str(m["Subject"])) for m in mailer.messages)


def command(runtime: Runtime, *args: str, at: datetime) -> Result:
    settings = runtime.settings
    env = {
        "NURTURE_DATABASE_URL": settings.database_url,
        "NURTURE_SECRET_KEY": "deployment-test-secret-0123456789",
        "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
        "NURTURE_TEMPLATES_DIR": str(settings.templates_dir),
        "NURTURE_OUTBOX_DIR": str(settings.outbox_dir),
        "NURTURE_BASE_URL": "https://nurture.test",
    }
    with freeze_time(at):
        return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def make(make_runtime: Any, dirs: tuple[Path, Path], mailer: MemoryMailer) -> Runtime:
    sequences, templates = dirs
    runtime: Runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    return runtime


def test_a_template_edit_reaches_leads_in_flight_only_after_apply(
    make_runtime: Any, dirs: tuple[Path, Path]
) -> None:
    sequences, templates = dirs
    (sequences / "onboarding.yaml").write_text(V1)
    mailer = MemoryMailer()
    runtime = make(make_runtime, dirs, mailer)
    start(runtime, "ada@example.com", T0)
    runtime.dispatcher.tick(T0)

    subject(templates, "guide", "guide v2")  # edited on disk while Ada waits
    subject(templates, "example", "example v2")
    start(runtime, "bob@example.com", T0 + timedelta(hours=1))
    runtime.dispatcher.tick(T0 + timedelta(hours=1))  # a new lead: the same pinned version
    runtime.dispatcher.tick(T0 + 3 * DAY)  # Ada's guide: still the published version
    assert ("ada@example.com", "guide v1") in received(mailer)

    plan = command(runtime, "plan", at=T0 + 3 * DAY)
    assert plan.exit_code == 0, plan.output
    assert "template guide: changed" in plan.output
    assert "template example: changed" in plan.output
    assert "used by onboarding" in plan.output

    applied = command(runtime, "apply", at=T0 + 3 * DAY + timedelta(minutes=5))
    assert applied.exit_code == 0, applied.output
    assert "template guide: onboarding v" in applied.output
    runtime.dispatcher.tick(T0 + 3 * DAY + timedelta(hours=2))  # Bob's guide: the new one
    assert received(mailer) == [
        ("ada@example.com", "example v1"),
        ("ada@example.com", "guide v1"),
        ("bob@example.com", "example v1"),
        ("bob@example.com", "guide v2"),
    ]
    again = command(runtime, "plan", at=T0 + 4 * DAY)
    assert "template guide" not in again.output


def test_a_process_that_never_saw_the_old_template_renders_it_from_the_database(
    make_runtime: Any, dirs: tuple[Path, Path]
) -> None:
    sequences, templates = dirs
    (sequences / "onboarding.yaml").write_text(V1)
    first = make(make_runtime, dirs, MemoryMailer())
    start(first, "ada@example.com", T0)
    first.dispatcher.tick(T0)
    subject(templates, "guide", "guide v2")
    shutil.rmtree(templates / "emails" / "closing")  # even a folder gone from disk
    mailer = MemoryMailer()
    second = make(make_runtime, dirs, mailer)
    second.dispatcher.tick(T0 + 3 * DAY)
    second.dispatcher.tick(T0 + 5 * DAY)
    assert received(mailer) == [("ada@example.com", "closing v1"), ("ada@example.com", "guide v1")]


def journeys(runtime: Runtime) -> tuple[list[tuple[str, str, str]], dict[str, tuple[str, str]]]:
    with runtime.sessions() as session:
        sent = sorted(
            (email, step, status)
            for email, step, status in session.execute(
                select(Lead.email, Delivery.step_id, Delivery.status).join(
                    Lead, Lead.id == Delivery.lead_id
                )
            )
        )
        where = {
            email: (status, step)
            for email, status, step in session.execute(
                select(Lead.email, Enrollment.status, Enrollment.step_id).join(
                    Lead, Lead.id == Enrollment.lead_id
                )
            )
        }
    return sent, where


def in_flight(make_runtime: Any, dirs: tuple[Path, Path]) -> tuple[Runtime, MemoryMailer]:
    """Three leads inside v1: at long-pause, at after-tips (guide sent), at long-pause."""
    sequences, _ = dirs
    (sequences / "onboarding.yaml").write_text(V1)
    mailer = MemoryMailer()
    runtime = make(make_runtime, dirs, mailer)
    start(runtime, "bea@example.com", T0 - 4 * DAY)
    runtime.dispatcher.tick(T0 - 4 * DAY)
    runtime.dispatcher.tick(T0 - DAY)  # Bea's guide
    for email in ("ada@example.com", "cem@example.com"):
        start(runtime, email, T0)
    runtime.dispatcher.tick(T0)
    assert len(mailer.messages) == 4
    return runtime, mailer


def test_the_plan_says_who_moves_and_who_stays(make_runtime: Any, dirs: tuple[Path, Path]) -> None:
    runtime, _ = in_flight(make_runtime, dirs)
    sequences, _ = dirs
    path = sequences / "onboarding.yaml"

    path.write_text(HEAD + V2_STEPS)  # no migrate: two leads would wait at a removed step
    plan = command(runtime, "plan", at=T0 + timedelta(hours=1))
    assert plan.exit_code == 1
    assert "sequence onboarding: changed" in plan.output
    assert "2 lead(s) at long-pause (wait) of v" in plan.output
    assert 'add "long-pause: <step>" or "long-pause: stay"' in plan.output
    assert "PROBLEM" in plan.output

    path.write_text(V2)
    plan = command(runtime, "plan", "--format", "json", at=T0 + timedelta(hours=1))
    assert plan.exit_code == 0, plan.output
    body = json.loads(plan.stdout)
    (onboarding,) = [s for s in body["sequences"] if s["id"] == "onboarding"]
    moves = {(g["step_id"], g["target"], g["leads"]) for g in onboarding["groups"]}
    assert ("long-pause", "short-pause", 2) in moves
    assert {(m["old"], m["new"], m["leads"]) for m in onboarding["migrate"]} >= {
        ("long-pause", "short-pause", 2)
    }
    assert body["moving"] == 3 and body["staying"] == 0
    assert body["errors"] == [] and body["problems"] == []

    text = command(runtime, "plan", at=T0 + timedelta(hours=1)).output
    assert "steps removed: long-pause (2 lead(s) there), tips (0 lead(s) there)" in text
    assert "migrate long-pause -> short-pause (line 19): 2 lead(s)" in text


def test_bad_migrate_mappings_are_file_line_errors_and_change_nothing(
    make_runtime: Any, dirs: tuple[Path, Path]
) -> None:
    runtime, mailer = in_flight(make_runtime, dirs)
    sequences, _ = dirs
    path = sequences / "onboarding.yaml"
    before = journeys(runtime)

    path.write_text(HEAD + V2_STEPS + "migrate:\n  long-pause: short-paus\n")
    result = command(runtime, "validate", at=T0)
    assert result.exit_code == 1
    assert (
        'onboarding.yaml:19: migrate.long-pause: "short-paus" is no step of this file'
        in result.output
    )
    applied = command(runtime, "apply", at=T0 + timedelta(hours=1))
    assert applied.exit_code == 1
    assert "onboarding.yaml:19" in applied.output

    path.write_text(HEAD + V2_STEPS + "migrate:\n  long-paws: short-pause\n")
    plan = command(runtime, "plan", at=T0 + timedelta(hours=1))
    assert plan.exit_code == 1
    assert "onboarding.yaml:19: migrate.long-paws: no published version" in plan.output
    applied = command(runtime, "apply", at=T0 + timedelta(hours=1))
    assert applied.exit_code == 1 and "nothing applied" in applied.output
    assert journeys(runtime) == before

    path.write_text(V2)
    reviewed = command(runtime, "plan", at=T0).output.split("--expect ")[1].strip(" )\n")
    path.write_text(V2 + "# edited after the review\n")
    stale = command(runtime, "apply", "--expect", reviewed, at=T0 + timedelta(hours=1))
    assert stale.exit_code == 1 and "the files changed since plan" in stale.output
    assert journeys(runtime) == before
    assert len(mailer.messages) == 4


def test_apply_moves_leads_in_flight_none_sent_twice_none_lost(
    make_runtime: Any, dirs: tuple[Path, Path]
) -> None:
    runtime, mailer = in_flight(make_runtime, dirs)
    sequences, _ = dirs
    (sequences / "onboarding.yaml").write_text(V2)
    # Cem's guide is due but the relay answers "later": its email is on its way.
    with runtime.sessions.begin() as session:
        session.execute(
            Enrollment.__table__.update()
            .where(
                Enrollment.lead_id
                == select(Lead.id).where(Lead.email == "cem@example.com").scalar_subquery()
            )
            .values(step_started_at=T0 - 3 * DAY, due_at=T0)
        )
    mailer.script(RetryLater("451 try again"))
    runtime.dispatcher.tick(T0 + timedelta(minutes=30))  # Cem's guide, refused for now

    reviewed = command(runtime, "plan", at=T0 + timedelta(hours=1))
    plan_id = reviewed.output.split("--expect ")[1].strip(" )\n")
    applied = command(runtime, "apply", "--expect", plan_id, at=T0 + timedelta(hours=1))
    assert applied.exit_code == 0, applied.output
    assert "applied: 2 lead(s) moved" in applied.output  # Ada, and Bea to the same step
    assert "1 not moved (an email of theirs was being sent" in applied.output

    for day in range(1, 8):
        runtime.dispatcher.tick(T0 + day * DAY + timedelta(hours=2))
    sent, where = journeys(runtime)
    assert received(mailer) == [
        ("ada@example.com", "closing v1"),
        ("ada@example.com", "example v1"),
        ("ada@example.com", "guide v1"),
        ("bea@example.com", "closing v1"),
        ("bea@example.com", "example v1"),
        ("bea@example.com", "guide v1"),
        ("cem@example.com", "closing v1"),
        ("cem@example.com", "example v1"),
        ("cem@example.com", "guide v1"),
    ]  # none twice
    assert where == {  # none lost: every journey ended normally
        "ada@example.com": ("completed", "end"),
        "bea@example.com": ("completed", "end"),
        "cem@example.com": ("completed", "end"),
    }
    assert ("ada@example.com", "tips-v2", "sent") in sent
    assert ("cem@example.com", "tips", "sent") in sent  # finished on its own version
    with runtime.sessions() as session:
        reasons = session.scalars(select(DecisionLog.reason)).all()
    assert any("moved from long-pause of v" in r and "to short-pause" in r for r in reasons)
    assert any("not moved by nurture apply: the email of tips" in r for r in reasons)


def test_a_lead_that_had_the_email_under_its_old_step_id_does_not_get_it_again(
    make_runtime: Any, dirs: tuple[Path, Path]
) -> None:
    """Bea had the guide as `tips`; v2 puts it later, as `tips-v2`, after a new wait."""
    runtime, mailer = in_flight(make_runtime, dirs)
    sequences, _ = dirs
    moved_later = (
        HEAD
        + """\
  - id: hello
    email: {template: example, kind: onboarding}
  - id: after-tips
    wait: 1 day
  - id: tips-v2
    email: {template: guide, kind: guide}
  - id: bye
    email: {template: closing, kind: other}
migrate:
  long-pause: after-tips
  tips: tips-v2
"""
    )
    (sequences / "onboarding.yaml").write_text(moved_later)
    applied = command(runtime, "apply", at=T0 + timedelta(hours=1))
    assert applied.exit_code == 0, applied.output
    assert "step(s) marked done (email already received)" in applied.output
    for day in range(1, 5):
        runtime.dispatcher.tick(T0 + day * DAY + timedelta(hours=2))
    bea = [s for to, s in received(mailer) if to == "bea@example.com"]
    assert bea == ["closing v1", "example v1", "guide v1"]
    sent, where = journeys(runtime)
    assert ("bea@example.com", "tips-v2", "skipped") in sent
    assert where["bea@example.com"] == ("completed", "end")
    assert where["ada@example.com"] == ("completed", "end")


def test_a_worker_ticking_while_apply_holds_its_transaction_passes_the_moving_leads_by(
    make_runtime: Any, dirs: tuple[Path, Path]
) -> None:
    """PostgreSQL: apply locks the enrollments it moves; a worker's claim skips them
    (SKIP LOCKED) and sends them, once, on their new version after apply commits."""
    runtime, mailer = in_flight(make_runtime, dirs)
    if not runtime.settings.database_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: a worker waits for apply to commit")
    sequences, templates = dirs
    (sequences / "onboarding.yaml").write_text(V2)
    runtime.dispatcher.tick(T0 + timedelta(hours=1))  # the worker loads v2 for new leads
    other_process = Content(sequences, templates)
    with runtime.sessions.begin() as session:
        done = apply(session, other_process, T0 + timedelta(hours=2))
        assert done.moved == 3
        during = runtime.dispatcher.tick(T0 + 2 * DAY)
        assert during.claimed == 0 and len(mailer.messages) == 4
    for day in range(2, 6):
        runtime.dispatcher.tick(T0 + day * DAY + timedelta(hours=3))
    sent, where = journeys(runtime)
    assert len(mailer.messages) == 9
    assert len(set(received(mailer))) == 9  # three emails each, none twice
    assert {status for status, _ in where.values()} == {"completed"}
    assert ("ada@example.com", "tips-v2", "sent") in sent


@pytest.mark.parametrize(
    ("text", "step", "expected"),
    [
        (V2, "long-pause", ("short-pause", False)),  # named in migrate:
        (V2, "after-tips", ("after-tips", False)),  # kept: the same step
        (V2 + "  after-tips: stay\n", "after-tips", (None, False)),
        (HEAD + V2_STEPS, "after-tips", (None, False)),  # no migrate: nobody moves
        (HEAD + V2_STEPS, "long-pause", (None, True)),  # removed, unnamed: a problem
        (V2, "gone", (None, True)),
    ],
)
def test_where_apply_puts_a_lead_in_flight(
    text: str, step: str, expected: tuple[str | None, bool]
) -> None:
    from nurture.core.deployment import target_of
    from nurture.core.sequence_parser import parse_sequence

    new = parse_sequence(text, "sequences/onboarding.yaml").sequence
    assert new is not None
    target, _, problem = target_of(new, step)
    assert (target, problem) == expected
