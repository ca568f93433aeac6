"""Inactivity and date triggers: found set-based by the periodic job, enrolled once per
occurrence, mailed by the real dispatcher, over a moving clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import func, select

from nurture.core.intake import parse_lead
from nurture.core.sequence_parser import parse_sequence
from nurture.enrollment import on_event, unsubscribe
from nurture.intake import take
from nurture.leads import add_event, find_lead, upsert_lead
from nurture.mail import MemoryMailer
from nurture.models import Enrollment, TriggerFiring
from nurture.runtime import Runtime
from nurture.scheduler import find_triggered, make_scheduler
from nurture.suppression import list_key
from nurture.triggers import evaluate

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
DAY = timedelta(days=1)

WIN_BACK = """\
id: win-back
name: Win back cold leads
locales: [en]
entry:
  triggers:
    - inactive: {days: 90}
  audience:
    country: [FR, BE]
  reentry: {after: 1 day}
exit:
  events: [email_clicked]
steps:
  - id: last-chance
    email: {template: example, kind: other}
"""

RENEWAL = """\
id: renewal
name: Renewal in 60 days
locales: [en]
entry:
  triggers:
    - date: {field: renewal_date, before: 60 days}
steps:
  - id: renew
    email: {template: example, kind: renewal}
"""

ANNIVERSARY = """\
id: anniversary
name: Contract anniversary
locales: [en]
entry:
  triggers:
    - date: {field: contract_start, every: year}
  reentry: {after: 30 days}
steps:
  - id: thanks
    email: {template: example, kind: other}
"""


LAST_CHANCE = """\
id: last-chance
name: Last chance, then sunset
locales: [en]
sunset: true
entry:
  triggers:
    - inactive: {days: 180}
  audience:
    country: ES
exit:
  events: [email_clicked, form_submitted]
steps:
  - id: still-interested
    email: {template: example, kind: other}
  - id: grace
    wait: 7 days
"""

NEWS = """\
id: news
name: News
locales: [en]
entry:
  triggers:
    - event: {name: news}
  reentry: {after: 1 day}
steps:
  - id: update
    email: {template: example, kind: product_update}
"""

COMMITTEE = """\
id: committee
name: Three people of one company engaged this month
locales: [en]
entry:
  triggers:
    - account_engaged: {contacts: 3, within: 30 days}
  reentry: never
steps:
  - id: for-the-team
    email: {template: example, kind: other}
"""

SEQUENCES = {
    "win-back": WIN_BACK,
    "renewal": RENEWAL,
    "anniversary": ANNIVERSARY,
    "last-chance": LAST_CHANCE,
    "news": NEWS,
    "committee": COMMITTEE,
}


@pytest.fixture
def runtime(make_runtime: Any, content_dirs: tuple[Path, Path]) -> Runtime:
    sequences, templates = content_dirs
    for name, text in SEQUENCES.items():
        (sequences / f"{name}.yaml").write_text(text)
    mailer = MemoryMailer()
    made: Runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    return made


def add(runtime: Runtime, email: str, now: datetime, **values: Any) -> None:
    with runtime.sessions.begin() as session:
        upsert_lead(session, parse_lead({"email": email, "country": "FR", **values}), now)


def arrive(runtime: Runtime, email: str, now: datetime) -> None:
    """As intake takes a lead: into the account of its email's domain."""
    with runtime.sessions.begin() as session:
        data = parse_lead({"email": email, "country": "US"})
        take(session, runtime.content, runtime.settings, data, now)


def run_job(runtime: Runtime, now: datetime) -> dict[str, int]:
    """The periodic job, then a dispatcher tick: who was enrolled, by sequence."""
    with runtime.sessions.begin() as session:
        fired = evaluate(session, runtime.content, now)
    runtime.dispatcher.tick(now)
    enrolled: dict[str, int] = {}
    for one in fired:
        enrolled[one.sequence_id] = enrolled.get(one.sequence_id, 0) + one.enrolled
    return enrolled


def mailed(runtime: Runtime) -> list[tuple[str, str]]:
    mailer = runtime.dispatcher.mailer
    assert isinstance(mailer, MemoryMailer)
    return [(str(m["To"]), str(m["Subject"])) for m in mailer.messages]


def enrollments(runtime: Runtime, sequence_id: str) -> list[tuple[str, int]]:
    from nurture.models import Lead

    with runtime.sessions() as session:
        rows = session.execute(
            select(Lead.email, Enrollment.cycle)
            .join(Lead, Lead.id == Enrollment.lead_id)
            .where(Enrollment.sequence_id == sequence_id)
            .order_by(Lead.email, Enrollment.cycle)
        )
        return [(email, cycle) for email, cycle in rows]


def test_a_cold_lead_is_won_back_once_per_inactive_spell(runtime: Runtime) -> None:
    add(runtime, "cold@example.com", T0)
    add(runtime, "gone@example.com", T0)
    add(runtime, "elsewhere@example.com", T0, country="US")  # outside the audience
    add(runtime, "busy@example.com", T0)
    with runtime.sessions.begin() as session:
        gone = find_lead(session, "gone@example.com")
        assert gone is not None
        unsubscribe(session, list_key(runtime.settings), gone, T0 + DAY)
        busy = find_lead(session, "busy@example.com")
        assert busy is not None
        # A form counts as engagement; an open does not (privacy proxies open everything).
        on_event(session, runtime.content, busy, "form_submitted", {"form": "demo"}, T0 + 50 * DAY)

    assert run_job(runtime, T0 + 89 * DAY).get("win-back", 0) == 0
    assert run_job(runtime, T0 + 90 * DAY)["win-back"] == 1
    assert [to for to, _ in mailed(runtime)] == ["cold@example.com"]
    # The next runs, after the lead finished the sequence and its cool-down: still the
    # same spell of inactivity, so not again.
    for day in (90, 91, 95, 120):
        assert run_job(runtime, T0 + day * DAY).get("win-back", 0) == 0
    assert enrollments(runtime, "win-back") == [("cold@example.com", 1)]

    with runtime.sessions.begin() as session:
        cold = find_lead(session, "cold@example.com")
        assert cold is not None
        add_event(session, cold, "email_opened", T0 + 100 * DAY, classification="human")
        add_event(session, cold, "email_clicked", T0 + 121 * DAY, classification="scanner")
    assert run_job(runtime, T0 + 140 * DAY)["win-back"] == 1  # busy, 90 days after its form
    with runtime.sessions.begin() as session:
        cold = find_lead(session, "cold@example.com")
        assert cold is not None
        add_event(session, cold, "email_clicked", T0 + 141 * DAY, classification="human")
    assert run_job(runtime, T0 + 230 * DAY).get("win-back", 0) == 0
    assert run_job(runtime, T0 + 231 * DAY)["win-back"] == 1  # a new spell, 90 days on
    assert enrollments(runtime, "win-back") == [
        ("busy@example.com", 1),
        ("cold@example.com", 1),
        ("cold@example.com", 2),
    ]
    assert [to for to, _ in mailed(runtime)] == [
        "cold@example.com",
        "busy@example.com",
        "cold@example.com",
    ]


def test_a_renewal_date_enrols_sixty_days_before_once(runtime: Runtime) -> None:
    renewal = (T0 + 100 * DAY).date()
    add(runtime, "renews@example.com", T0, fields={"renewal_date": renewal.isoformat()})
    stamped = f"{renewal.isoformat()}T00:00:00Z"  # an ISO timestamp: its date counts
    add(runtime, "stamped@example.com", T0, fields={"renewal_date": stamped})
    add(
        runtime, "late@example.com", T0, fields={"renewal_date": (T0 + 45 * DAY).date().isoformat()}
    )
    for bad in ("next spring", "2026-02-30", "10/06/2026", "", "2026-06"):
        add(runtime, f"bad{len(bad)}@example.com", T0, fields={"renewal_date": bad})
    add(runtime, "number@example.com", T0, fields={"renewal_date": 20260610})

    assert run_job(runtime, T0 + 39 * DAY).get("renewal", 0) == 0
    with runtime.sessions.begin() as session:
        fired = evaluate(session, runtime.content, T0 + 39 * DAY)
    # Said at each run (a warning in the worker's log): never found, and why.
    assert [f.unreadable for f in fired if f.sequence_id == "renewal"] == [4]
    assert run_job(runtime, T0 + 40 * DAY)["renewal"] == 2
    for day in (40, 41, 47, 60):
        assert run_job(runtime, T0 + day * DAY).get("renewal", 0) == 0
    # "late" had its day 15 days ago, past the 7 days of catch-up: not written to.
    assert enrollments(runtime, "renewal") == [
        ("renews@example.com", 1),
        ("stamped@example.com", 1),
    ]
    assert sorted(to for to, _ in mailed(runtime)) == ["renews@example.com", "stamped@example.com"]

    # The renewal date moves a year on: a new occurrence, but re-entry is never.
    with runtime.sessions.begin() as session:
        lead = find_lead(session, "renews@example.com")
        assert lead is not None
        lead.fields = {"renewal_date": renewal.replace(year=renewal.year + 1).isoformat()}
    assert run_job(runtime, T0 + 405 * DAY).get("renewal", 0) == 0


def test_an_anniversary_enrols_once_a_year(runtime: Runtime) -> None:
    for email, start in (("signed", "2025-03-10"), ("new", "2026-03-10"), ("leap", "2024-02-29")):
        # Outside the win-back audience, which a year of silence would otherwise enter.
        add(runtime, f"{email}@example.com", T0, country="DE", fields={"contract_start": start})

    march_10 = datetime(2026, 3, 10, 6, 0, tzinfo=UTC)
    assert run_job(runtime, march_10 - DAY).get("anniversary", 0) == 0
    assert run_job(runtime, march_10)["anniversary"] == 1
    assert run_job(runtime, march_10 + timedelta(hours=5)).get("anniversary", 0) == 0
    assert run_job(runtime, march_10 + 40 * DAY).get("anniversary", 0) == 0
    # 2027: the second anniversary of one, the first of the other; 28 February for the leap.
    assert run_job(runtime, datetime(2027, 2, 28, 6, 0, tzinfo=UTC))["anniversary"] == 1
    assert run_job(runtime, datetime(2027, 3, 1, 6, 0, tzinfo=UTC)).get("anniversary", 0) == 0
    assert run_job(runtime, datetime(2027, 3, 10, 6, 0, tzinfo=UTC))["anniversary"] == 2
    assert enrollments(runtime, "anniversary") == [
        ("leap@example.com", 1),
        ("new@example.com", 1),
        ("signed@example.com", 1),
        ("signed@example.com", 2),
    ]
    assert len(mailed(runtime)) == 4


def test_a_lead_that_never_engages_is_sunset_and_mailed_no_more(runtime: Runtime) -> None:
    from nurture.decisions import story

    add(runtime, "silent@example.com", T0, country="ES")
    assert run_job(runtime, T0 + 180 * DAY)["last-chance"] == 1
    assert mailed(runtime) == [("silent@example.com", "Hello, a short guide for your team")]
    run_job(runtime, T0 + 188 * DAY)  # the grace week is over: the sequence ends
    run_job(runtime, T0 + 189 * DAY)  # and the next run sunsets the lead
    with runtime.sessions.begin() as session:
        lead = find_lead(session, "silent@example.com")
        assert lead is not None
        assert lead.sunset_at == T0 + 189 * DAY
        said = [entry.reason for entry in story(session, lead.id) if entry.kind == "sunset"]
        assert said == [
            "sunset: finished last-chance without a human click or a form since entering;"
            " no more sequence emails until it engages again"
        ]
        on_event(session, runtime.content, lead, "news", {}, T0 + 190 * DAY)
    runtime.dispatcher.tick(T0 + 190 * DAY)
    assert len(mailed(runtime)) == 1  # entered on the event, left at once: sunset
    with runtime.sessions() as session:
        left = session.scalars(
            select(Enrollment.exit_reason).where(Enrollment.sequence_id == "news")
        ).all()
        assert left == ["sunset"]
    # No trigger finds it either, whatever the days: not even a year later.
    assert run_job(runtime, T0 + 400 * DAY) == {
        "win-back": 0,
        "renewal": 0,
        "anniversary": 0,
        "last-chance": 0,
        "committee": 0,
    }

    # It comes back by itself: a form. It is mailed again at once, before the next
    # run of the triggers takes it off the sunset and says so.
    with runtime.sessions.begin() as session:
        lead = find_lead(session, "silent@example.com")
        assert lead is not None
        on_event(session, runtime.content, lead, "form_submitted", {"form": "demo"}, T0 + 401 * DAY)
        on_event(session, runtime.content, lead, "news", {}, T0 + 401 * DAY)
    runtime.dispatcher.tick(T0 + 401 * DAY)
    assert [to for to, _ in mailed(runtime)] == ["silent@example.com", "silent@example.com"]
    run_job(runtime, T0 + 401 * DAY)
    with runtime.sessions.begin() as session:
        lead = find_lead(session, "silent@example.com")
        assert lead is not None
        assert lead.sunset_at is None
        said = [entry.reason for entry in story(session, lead.id) if entry.kind == "sunset"]
        assert said[-1] == "back from sunset: a human click or a form after it"


def test_two_workers_running_the_job_at_once_enrol_each_lead_once(runtime: Runtime) -> None:
    for number in range(20):
        add(runtime, f"cold{number}@example.com", T0)
    now = T0 + 100 * DAY
    first = runtime.sessions()
    first.begin()
    assert sum(f.enrolled for f in evaluate(first, runtime.content, now)) == 20
    results: list[int] = []

    def second() -> None:
        # Waits on the first's uncommitted firings (PostgreSQL), then skips them.
        with runtime.sessions.begin() as session:
            results.append(sum(f.enrolled for f in evaluate(session, runtime.content, now)))

    worker = threading.Thread(target=second)
    if runtime.engine.dialect.name == "postgresql":
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # held by the unique key, not racing past it
        first.commit()
        worker.join(10)
    else:
        first.commit()  # SQLite has one writer: the second run comes after
        worker.start()
        worker.join(10)
    first.close()
    assert results == [0]
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Enrollment)) == 20
        assert session.scalar(select(func.count()).select_from(TriggerFiring)) == 20


def test_the_worker_runs_the_triggers_on_a_schedule(runtime: Runtime) -> None:
    add(runtime, "cold@example.com", T0)
    add(runtime, "later@example.com", T0 + DAY)
    assert find_triggered(runtime, T0 + 90 * DAY) == "1 enrolled by 5 triggers"
    scheduler = make_scheduler(runtime, blocking=False)  # not started: no thread
    job = scheduler.get_job("triggers")
    assert job is not None and job.trigger.interval == timedelta(minutes=5)
    with freeze_time(T0 + 91 * DAY):
        job.func(*job.args)  # what the metronome calls
    assert enrollments(runtime, "win-back") == [("cold@example.com", 1), ("later@example.com", 1)]


def test_three_people_of_one_account_engaging_enrol_the_whole_account(runtime: Runtime) -> None:
    """Human clicks or forms by three people of acme.example within 30 days: its four
    people enter, the quiet one too; a scanner's click does not count, nor a company
    with two, nor a personal mailbox."""
    for name in ("ana", "ben", "cy", "quiet"):
        arrive(runtime, f"{name}@acme.example", T0)
    for name in ("dee", "eve"):
        arrive(runtime, f"{name}@globex.example", T0)
    arrive(runtime, "fay@gmail.com", T0)
    arrive(runtime, "gus@gmail.com", T0)
    arrive(runtime, "hal@gmail.com", T0)

    def click(email: str, day: int, classification: str = "human") -> None:
        with runtime.sessions.begin() as session:
            lead = find_lead(session, email)
            assert lead is not None
            add_event(session, lead, "email_clicked", T0 + day * DAY, classification=classification)

    click("ana@acme.example", 1)
    click("ben@acme.example", 2)
    click("cy@acme.example", 3, classification="scanner")
    for email in ("dee@globex.example", "eve@globex.example", "fay@gmail.com",
                  "gus@gmail.com", "hal@gmail.com"):  # fmt: skip
        click(email, 3)
    assert run_job(runtime, T0 + 4 * DAY).get("committee", 0) == 0
    with runtime.sessions.begin() as session:
        cy = find_lead(session, "cy@acme.example")
        assert cy is not None
        on_event(session, runtime.content, cy, "form_submitted", {"form": "demo"}, T0 + 5 * DAY)
    assert run_job(runtime, T0 + 5 * DAY)["committee"] == 4
    assert sorted(to for to, _ in mailed(runtime)) == [
        "ana@acme.example", "ben@acme.example", "cy@acme.example", "quiet@acme.example",
    ]  # fmt: skip
    # Found again on the next runs of the period, and the next: nobody enters twice.
    for day in (5, 6, 20, 40):
        assert run_job(runtime, T0 + day * DAY).get("committee", 0) == 0
    assert len(enrollments(runtime, "committee")) == 4


def test_clicks_spread_over_more_than_the_window_enrol_nobody(runtime: Runtime) -> None:
    for name in ("ana", "ben", "cy"):
        arrive(runtime, f"{name}@acme.example", T0)
    for day, name in ((1, "ana"), (20, "ben"), (40, "cy")):
        with runtime.sessions.begin() as session:
            lead = find_lead(session, f"{name}@acme.example")
            assert lead is not None
            add_event(session, lead, "email_clicked", T0 + day * DAY, classification="human")
    assert run_job(runtime, T0 + 41 * DAY).get("committee", 0) == 0


@pytest.mark.parametrize(
    ("trigger", "problem"),
    [
        ("inactive: {days: 0}", "x.yaml:5: entry.triggers[1].inactive.days: expected a number"),
        ("inactive: 30", "x.yaml:5: entry.triggers[1].inactive: expected {days:"),
        (
            "date: {field: renewal_date, before: 2 business days}",
            'x.yaml:5: entry.triggers[1].date.before: expected days or weeks such as "60 days"',
        ),
        (
            "date: {field: renewal_date, before: 60 days, after: 1 day}",
            "x.yaml:5: entry.triggers[1].date: expected before or after, not both",
        ),
        (
            "date: {field: renewal_date, every: month}",
            'x.yaml:5: entry.triggers[1].date.every: unknown value "month"',
        ),
        (
            "date: {before: 60 days}",
            'x.yaml:5: entry.triggers[1].date: missing required key "field"',
        ),
        ("date: {field: contract_start, every: year}", "x.yaml:5: entry.triggers: a trigger every"),
        (
            "account_engaged: {contacts: 1, within: 30 days}",
            "x.yaml:5: entry.triggers[1].account_engaged.contacts: expected a number of people,"
            " at least 2",
        ),
        (
            "account_engaged: {contacts: 3, within: 2 hours}",
            "x.yaml:5: entry.triggers[1].account_engaged.within: expected days or weeks such as"
            ' "60 days", not "2 hours"',
        ),
        (
            "account_engaged: {contacts: 3}",
            'x.yaml:5: entry.triggers[1].account_engaged: missing required key "within"',
        ),
    ],
)
def test_a_bad_trigger_is_located(trigger: str, problem: str) -> None:
    text = (
        f"name: X\nlocales: [en]\nentry:\n  triggers:\n    - {trigger}\n"
        "steps:\n  - id: a\n    wait: 1 day\n"
    )
    result = parse_sequence(text, "x.yaml")
    assert result.sequence is None
    assert any(str(found).startswith(problem) for found in result.problems), result.problems
