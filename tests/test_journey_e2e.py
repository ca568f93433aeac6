"""A lead walked through a whole sequence with the clock under control.

Waits, business days, a send window, the Europe/Paris DST change, a branch on a
click and an exit on a goal — through the real API, dispatcher and database.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from freezegun import freeze_time

from nurture.apikeys import create_key
from nurture.app import create_app
from nurture.mail import MemoryMailer
from nurture.runtime import Runtime

SEQUENCE = """\
id: trial
name: Trial nurture
locales: [en]
timezone: Europe/Paris
entry:
  triggers:
    - form_submitted: {form: whitepaper}
exit:
  events: [demo_requested]
send_window:
  days: mon-fri
  hours: "09:00-17:00"
steps:
  - id: welcome
    email: {template: example, kind: guide}
  - id: pause
    wait: 2 days
  - id: clicked
    branch:
      - if: {clicked: welcome}
        goto: comparison
      - else: story
  - id: story
    email: {template: example, kind: testimonial}
    next: pause-2
  - id: comparison
    email: {template: example, kind: comparison}
  - id: pause-2
    wait: 3 business days
  - id: study
    email: {template: example, kind: market_study}
"""


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.fixture
def world(
    make_runtime: Any, content_dirs: tuple[Path, Path]
) -> tuple[Runtime, FlaskClient, MemoryMailer, str]:
    sequences, templates = content_dirs
    (sequences / "trial.yaml").write_text(SEQUENCE)
    mailer = MemoryMailer()
    runtime: Runtime = make_runtime(
        mailer_factory=lambda: mailer, sequences_dir=sequences, templates_dir=templates
    )
    assert not runtime.content.problems, runtime.content.problems
    with runtime.sessions.begin() as session:
        key = create_key(session, "test", utc(2026, 3, 1))
    client = create_app(runtime=runtime).test_client()
    return runtime, client, mailer, key


def post(client: FlaskClient, key: str, path: str, body: dict[str, Any]) -> Any:
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code in (200, 201), response.get_json()
    return response.get_json()


def subjects_and_times(runtime: Runtime) -> list[tuple[str, datetime | None]]:
    from sqlalchemy import select

    from nurture.models import Delivery

    with runtime.sessions() as session:
        return [
            (d.step_id, d.sent_at) for d in session.scalars(select(Delivery).order_by(Delivery.id))
        ]


def test_clicker_walks_the_whole_sequence_across_dst(world: Any) -> None:
    runtime, client, mailer, key = world
    # Friday 27 March 2026, 18:30 in Paris (UTC+1): after the send window closed.
    with freeze_time(utc(2026, 3, 27, 17, 30)):
        post(
            client,
            key,
            "/api/v1/leads",
            {"email": "Ana@Example.com", "first_name": "Ana", "country": "FR", "locale": "en"},
        )
        body = post(
            client,
            key,
            "/api/v1/leads/ana@example.com/events",
            {"name": "form_submitted", "properties": {"form": "whitepaper"}},
        )
        assert body["enrolled"] == ["trial"]
        report = runtime.dispatcher.tick(utc(2026, 3, 27, 17, 30))
    assert report.sent == 0 and report.deferred == 1
    # Clocks go forward on Sunday 29 March: Monday 09:00 in Paris is 07:00 UTC.
    assert runtime.dispatcher.tick(utc(2026, 3, 30, 6, 59)).sent == 0
    assert runtime.dispatcher.tick(utc(2026, 3, 30, 7, 0)).sent == 1
    assert subjects_and_times(runtime) == [("welcome", utc(2026, 3, 30, 7, 0))]

    # The lead clicks the first email (reported with its Message-ID).
    message_id = mailer.messages[0]["Message-ID"].strip("<>")
    with freeze_time(utc(2026, 3, 30, 12, 0)):
        post(
            client,
            key,
            "/api/v1/leads/ana@example.com/events",
            {"name": "email_clicked", "properties": {"message_id": message_id}},
        )

    # "2 days" keeps the wall time: Wednesday 1 April 09:00 Paris, the branch sees the click.
    assert runtime.dispatcher.tick(utc(2026, 4, 1, 6, 59)).sent == 0
    assert runtime.dispatcher.tick(utc(2026, 4, 1, 7, 0)).sent == 1
    # 3 business days after Wednesday: Thursday, Friday, then not Monday 6 April,
    # Easter Monday, a public holiday in France: Tuesday 7 April.
    assert runtime.dispatcher.tick(utc(2026, 4, 6, 7, 0)).sent == 0
    assert runtime.dispatcher.tick(utc(2026, 4, 7, 7, 0)).sent == 1
    assert subjects_and_times(runtime) == [
        ("welcome", utc(2026, 3, 30, 7, 0)),
        ("comparison", utc(2026, 4, 1, 7, 0)),
        ("study", utc(2026, 4, 7, 7, 0)),
    ]
    # Nothing more, ever: ticking again sends nothing twice.
    assert runtime.dispatcher.tick(utc(2026, 6, 1, 7, 0)).sent == 0
    assert len(mailer.messages) == 3
    lead = client.get("/api/v1/leads/ana@example.com", headers={"Authorization": f"Bearer {key}"})
    assert lead.get_json()["enrollments"][0]["status"] == "completed"


def test_non_clicker_gets_the_story_then_leaves_on_the_goal(world: Any) -> None:
    runtime, client, _mailer, key = world
    with freeze_time(utc(2026, 3, 30, 8, 0)):
        post(client, key, "/api/v1/leads", {"email": "bo@example.com", "country": "FR"})
        post(
            client,
            key,
            "/api/v1/leads/bo@example.com/events",
            {"name": "form_submitted", "properties": {"form": "whitepaper"}},
        )
    assert runtime.dispatcher.tick(utc(2026, 3, 30, 8, 0)).sent == 1
    assert runtime.dispatcher.tick(utc(2026, 4, 1, 8, 0)).sent == 1  # no click: the story
    assert [s for s, _ in subjects_and_times(runtime)] == ["welcome", "story"]
    with freeze_time(utc(2026, 4, 2, 10, 0)):
        post(client, key, "/api/v1/leads/bo@example.com/events", {"name": "demo_requested"})
    assert runtime.dispatcher.tick(utc(2026, 5, 1, 8, 0)).sent == 0
    lead = client.get("/api/v1/leads/bo@example.com", headers={"Authorization": f"Bearer {key}"})
    enrollment = lead.get_json()["enrollments"][0]
    assert enrollment["status"] == "exited"
    assert enrollment["exit_reason"] == "goal: demo_requested"


def test_lead_outside_the_audience_is_not_enrolled(world: Any, tmp_path: Path) -> None:
    runtime, client, _mailer, key = world
    seq = tmp_path / "sequences" / "trial.yaml"
    seq.write_text(SEQUENCE.replace("entry:\n", "entry:\n  audience:\n    country: [BE]\n"))
    with freeze_time(utc(2026, 3, 30, 8, 0)):
        post(client, key, "/api/v1/leads", {"email": "cy@example.com", "country": "FR"})
        runtime.content.reload()
        body = post(
            client,
            key,
            "/api/v1/leads/cy@example.com/events",
            {"name": "form_submitted", "properties": {"form": "whitepaper"}},
        )
    assert body["enrolled"] == []


@pytest.mark.parametrize(
    ("name", "stopped_by"), [("bounced", "bounced_at"), ("complained", "unsubscribed_at")]
)
def test_a_bounce_or_complaint_reported_for_an_email_stops_the_mail_and_counts(
    world: Any, name: str, stopped_by: str
) -> None:
    """A bounce or a spam complaint reported through the API with the Message-ID is the
    email's (the sequence report counts it at its step), and no more email goes out."""
    from sqlalchemy import select

    from nurture.core.reports import parse_request
    from nurture.models import Enrollment, Event, Lead
    from nurture.reports import build
    from nurture.suppression import list_key, suppressed

    runtime, client, mailer, key = world
    with freeze_time(utc(2026, 3, 30, 8, 0)):
        post(client, key, "/api/v1/leads", {"email": "cy@example.com", "country": "FR"})
        post(client, key, "/api/v1/leads/cy@example.com/events",
             {"name": "form_submitted", "properties": {"form": "whitepaper"}})  # fmt: skip
    assert runtime.dispatcher.tick(utc(2026, 3, 30, 8, 0)).sent == 1
    message_id = mailer.messages[0]["Message-ID"].strip("<>")
    with freeze_time(utc(2026, 3, 30, 9, 0)):
        post(client, key, "/api/v1/leads/cy@example.com/events",
             {"name": name, "properties": {"message_id": message_id}})  # fmt: skip
    # Two days later the story would be due: nothing leaves.
    assert runtime.dispatcher.tick(utc(2026, 4, 3, 8, 0)).sent == 0
    assert len(mailer.messages) == 1
    with runtime.sessions() as session:
        lead = session.scalars(select(Lead)).one()
        event = session.scalars(select(Event).where(Event.name == name)).one()
        enrollment = session.scalars(select(Enrollment)).one()
        assert getattr(lead, stopped_by) == utc(2026, 3, 30, 9, 0)
        assert event.delivery_id is not None
        assert (enrollment.status, enrollment.exit_reason) == ("exited", name)
        key_ = list_key(runtime.settings)
        assert suppressed(session, key_, "cy@example.com", utc(2026, 3, 30, 9, 0))
        request = parse_request("sequences", "2026-03-01", "2026-03-31", None, "json", None, None)
        table = build(session, request, runtime.settings, utc(2026, 4, 1, 0, 0))
    welcome = next(r for r in table.rows if r[1] == "welcome")
    row = dict(zip(table.columns, welcome, strict=True))
    assert (row["sent"], row[name]) == (1, 1)
