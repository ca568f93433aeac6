"""The dispatcher's delivery state machine, on a real database, with scripted SMTP outcomes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from sqlalchemy import select

from nurture.backlog import due_count
from nurture.core.intake import parse_lead
from nurture.dispatch import CHUNK, IN_FLIGHT
from nurture.enrollment import on_event, unsubscribe
from nurture.leads import find_lead, upsert_lead
from nurture.mail import MemoryMailer, Rejected, RetryLater, Uncertain
from nurture.models import Consent, Delivery, Enrollment, Lead
from nurture.runtime import Runtime
from nurture.suppression import list_key

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday

TWO_EMAILS = """\
id: {id}
name: Two emails
priority: {priority}
locales: [en]
entry:
  triggers:
    - event: {{name: {trigger}}}
steps:
  - id: first
    email: {{template: example, kind: guide}}
  - id: pause
    wait: 1 day
  - id: second
    email: {{template: example, kind: comparison}}
"""


def sequence_file(
    folder: Path, sequence_id: str, trigger: str = "start", priority: int = 0
) -> Path:
    path = folder / f"{sequence_id}.yaml"
    path.write_text(TWO_EMAILS.format(id=sequence_id, trigger=trigger, priority=priority))
    return path


@pytest.fixture
def folders(content_dirs: tuple[Path, Path]) -> tuple[Path, Path]:
    return content_dirs


@pytest.fixture
def build(make_runtime: Any, folders: tuple[Path, Path]) -> Any:
    sequences, templates = folders

    def make(mailer: MemoryMailer, **overrides: Any) -> Runtime:
        runtime: Runtime = make_runtime(
            mailer_factory=lambda: mailer,
            sequences_dir=sequences,
            templates_dir=templates,
            **overrides,
        )
        return runtime

    return make


def enter(runtime: Runtime, email: str, event: str = "start", now: datetime = T0) -> None:
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(session, parse_lead({"email": email, "first_name": "Zoé"}), now)
        on_event(session, runtime.content, lead, event, {}, now)


def deliveries(runtime: Runtime) -> list[tuple[str, str, str]]:
    with runtime.sessions() as session:
        return [
            (d.to_email, d.step_id, d.status)
            for d in session.scalars(select(Delivery).order_by(Delivery.id))
        ]


def test_smtp_failure_before_data_is_retried_with_backoff(build: Any, folders: Any) -> None:
    sequence_file(folders[0], "two")
    mailer = MemoryMailer([RetryLater("451 try later"), RetryLater("connection refused")])
    runtime = build(mailer)
    enter(runtime, "a@example.com")
    first = runtime.dispatcher.tick(T0)
    assert (first.sent, first.retried) == (0, 1)
    assert deliveries(runtime) == [("a@example.com", "first", "retry")]
    # Too early: the backoff (about a minute) holds it.
    assert runtime.dispatcher.tick(T0 + timedelta(seconds=30)).claimed == 0
    assert runtime.dispatcher.tick(T0 + timedelta(minutes=2)).retried == 1
    assert runtime.dispatcher.tick(T0 + timedelta(minutes=10)).sent == 1
    assert deliveries(runtime) == [("a@example.com", "first", "sent")]
    assert len(mailer.messages) == 1
    # All three attempts carried the same Message-ID: receivers can de-duplicate.
    assert len({m["Message-ID"] for m, _ in mailer.attempts}) == 1


def test_failure_after_data_holds_the_lead_until_the_policy_settles_it(
    build: Any, folders: Any
) -> None:
    sequence_file(folders[0], "two")
    mailer = MemoryMailer([Uncertain("connection lost after DATA")])
    runtime = build(mailer)  # the default policy: treated as sent after 24 hours
    enter(runtime, "b@example.com")
    report = runtime.dispatcher.tick(T0)
    assert report.uncertain == 1
    # The lead waits at the uncertain email: the second one does not go out meanwhile.
    runtime.dispatcher.tick(T0 + timedelta(hours=23))
    assert deliveries(runtime) == [("b@example.com", "first", "uncertain")]
    with runtime.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.step_id == "first"
        assert enrollment.due_at == T0 + timedelta(hours=24)
        assert (enrollment.note or "").startswith("held: delivery 1 uncertain")
    runtime.dispatcher.tick(T0 + timedelta(hours=24, minutes=1))
    assert deliveries(runtime) == [
        ("b@example.com", "first", "sent"),
        ("b@example.com", "second", "sent"),
    ]
    with runtime.sessions() as session:
        first = session.scalars(select(Delivery).order_by(Delivery.id)).first()
        assert first is not None and "sent by policy (sent-after:24h)" in (first.last_error or "")
    assert len(mailer.attempts) == 2  # the uncertain email was never sent again


def test_hard_bounce_stops_the_lead(build: Any, folders: Any) -> None:
    sequence_file(folders[0], "two")
    mailer = MemoryMailer([Rejected("RCPT TO refused: 550 5.1.1 no such user", 550, bounce=True)])
    runtime = build(mailer)
    enter(runtime, "c@example.com")
    assert runtime.dispatcher.tick(T0).failed == 1
    runtime.dispatcher.tick(T0 + timedelta(days=3))
    assert deliveries(runtime) == [("c@example.com", "first", "failed")]
    with runtime.sessions() as session:
        lead = find_lead(session, "c@example.com")
        assert lead is not None and lead.bounced_at == T0
        enrollment = session.scalars(select(Enrollment)).one()
        assert (enrollment.status, enrollment.exit_reason) == ("exited", "bounced")


def test_retries_exhausted_block_the_lead_visibly_until_resolved(build: Any, folders: Any) -> None:
    from nurture.cli import cli

    sequence_file(folders[0], "two")
    mailer = MemoryMailer([RetryLater("refused")] * 2)
    runtime = build(mailer, max_attempts=2)
    enter(runtime, "d@example.com")
    runtime.dispatcher.tick(T0)
    runtime.dispatcher.tick(T0 + timedelta(hours=1))
    assert deliveries(runtime) == [("d@example.com", "first", "failed")]
    runtime.dispatcher.tick(T0 + timedelta(days=5))
    assert len(mailer.messages) == 0  # blocked, not skipped
    with runtime.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.due_at is None and "failed" in (enrollment.note or "")
        delivery_id = session.scalars(select(Delivery.id)).one()
    env = {
        "NURTURE_DATABASE_URL": runtime.settings.database_url,
        "NURTURE_SECRET_KEY": "x" * 32,
    }
    listed = CliRunner().invoke(cli, ["deliveries", "list", "--status", "failed"], env=env)
    assert "d@example.com" in listed.output and "failed" in listed.output
    with freeze_time(T0 + timedelta(days=5)):
        resolved = CliRunner().invoke(
            cli, ["deliveries", "resolve", str(delivery_id), "--resend"], env=env
        )
    assert resolved.exit_code == 0, resolved.output
    assert runtime.dispatcher.tick(T0 + timedelta(days=5, minutes=1)).sent == 1


def test_unsubscribe_between_claim_and_send_stops_the_email(build: Any, folders: Any) -> None:
    sequence_file(folders[0], "two")
    mailer = MemoryMailer()
    runtime = build(mailer)
    enter(runtime, "e@example.com")
    dispatcher = runtime.dispatcher
    from nurture.dispatch import TickReport

    report = TickReport()
    jobs = dispatcher._claim(T0, report)
    assert len(jobs) == 1
    with runtime.sessions.begin() as session:
        lead = find_lead(session, "e@example.com")
        assert lead is not None
        unsubscribe(session, list_key(runtime.settings), lead, T0)
    dispatcher._deliver(jobs, T0, report)
    assert report.skipped == 1 and mailer.messages == []
    assert deliveries(runtime) == [("e@example.com", "first", "skipped")]


def test_frequency_cap_defers_lower_priority_and_never_drops(build: Any, folders: Any) -> None:
    sequence_file(folders[0], "urgent", priority=90)
    sequence_file(folders[0], "casual", priority=10)
    mailer = MemoryMailer()
    from nurture.config import FrequencyCap

    runtime = build(mailer, frequency_cap=FrequencyCap(emails=1, days=1))
    enter(runtime, "f@example.com", "start")
    first = runtime.dispatcher.tick(T0)
    assert first.sent == 1 and first.deferred == 1
    assert deliveries(runtime) == [("f@example.com", "first", "sent")]
    with runtime.sessions() as session:
        urgent = session.scalars(select(Delivery.sequence_id)).one()
        casual = session.scalars(select(Enrollment).where(Enrollment.sequence_id == "casual")).one()
        assert urgent == "urgent"
        assert casual.note == "deferred: frequency cap"
        assert casual.due_at == T0 + timedelta(days=1)
    # Day after: both are due (urgent's second, casual's first): urgent wins again.
    runtime.dispatcher.tick(T0 + timedelta(days=1))
    runtime.dispatcher.tick(T0 + timedelta(days=2))
    runtime.dispatcher.tick(T0 + timedelta(days=3))
    runtime.dispatcher.tick(T0 + timedelta(days=4))
    sent = [(d[1], d[2]) for d in deliveries(runtime)]
    assert len(sent) == 4 and all(status == "sent" for _, status in sent)
    with runtime.sessions() as session:
        times = sorted(session.scalars(select(Delivery.sent_at)))
    # Never more than one a day for this lead.
    assert all(b - a >= timedelta(days=1) for a, b in pairwise(times))


def test_worker_lost_mid_send_marks_uncertain_and_lost_claims_are_taken_over(
    build: Any, folders: Any
) -> None:
    from nurture.dispatch import TickReport

    sequence_file(folders[0], "two")
    mailer = MemoryMailer()
    runtime = build(mailer, lease_seconds=60)
    enter(runtime, "g@example.com")
    enter(runtime, "h@example.com")
    dispatcher = runtime.dispatcher
    jobs = dispatcher._claim(T0, TickReport())
    for job in jobs:
        dispatcher._render(job, T0)
    # The worker marks g's chunk as handed to SMTP, then dies; h was only claimed.
    with runtime.sessions.begin() as session:
        dispatcher._hand_over(
            session, [j for j in jobs if j.facts.lead.email == "g@example.com"], T0, TickReport()
        )
    assert dispatcher.tick(T0 + timedelta(seconds=30)).claimed == 0  # leases still held
    report = dispatcher.tick(T0 + timedelta(seconds=61))
    assert report.uncertain == 1 and report.sent == 1
    assert sorted(deliveries(runtime)) == [
        ("g@example.com", "first", "uncertain"),
        ("h@example.com", "first", "sent"),
    ]
    assert [m["To"] for m in mailer.messages] == ["Zoé <h@example.com>"]


def test_disqualified_lead_is_not_mailed(build: Any, folders: Any) -> None:
    sequence_file(folders[0], "two")
    mailer = MemoryMailer()
    runtime = build(mailer)
    enter(runtime, "i@example.com")
    with runtime.sessions.begin() as session:
        lead = session.scalars(select(Lead)).one()
        lead.stage = "disqualified"
    report = runtime.dispatcher.tick(T0)
    assert report.sent == 0 and mailer.messages == []
    with runtime.sessions() as session:
        assert session.scalars(select(Enrollment.exit_reason)).one() == "disqualified"


def test_only_the_latest_consent_decision_counts(build: Any, folders: Any) -> None:
    sequence_file(folders[0], "two")
    mailer = MemoryMailer()
    runtime = build(mailer, consent_required=True)
    # granted then withdrawn; withdrawn then granted again; never asked.
    decisions = {"w@example.com": [True, False], "g@example.com": [False, True]}
    for email in ("w@example.com", "g@example.com", "n@example.com"):
        enter(runtime, email)
    with runtime.sessions.begin() as session:
        for email, granted in decisions.items():
            lead = session.scalars(select(Lead).where(Lead.email == email)).one()
            for minutes, decision in enumerate(granted):
                session.add(
                    Consent(
                        lead_id=lead.id,
                        purpose="marketing",
                        granted=decision,
                        source="form",
                        at=T0 - timedelta(minutes=10 - minutes),
                    )
                )
    runtime.dispatcher.tick(T0)
    assert [m["To"].addresses[0].username for m in mailer.messages] == ["g"]
    with runtime.sessions() as session:
        reasons = dict(
            session.execute(
                select(Lead.email, Enrollment.exit_reason).join(
                    Enrollment, Enrollment.lead_id == Lead.id
                )
            ).all()
        )
    assert reasons == {
        "w@example.com": "consent withdrawn",
        "g@example.com": None,
        "n@example.com": "no consent",
    }


def test_send_window_skips_the_leads_public_holidays(build: Any, folders: Any) -> None:
    (folders[0] / "holiday.yaml").write_text(
        TWO_EMAILS.format(id="holiday", trigger="start", priority=0)
        + 'send_window:\n  days: mon-fri\n  hours: "09:00-17:00"\n  holidays: true\n'
    )
    mailer = MemoryMailer()
    runtime = build(mailer)
    may_day = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)  # Friday 1 May, 10:00 in Paris
    with runtime.sessions.begin() as session:
        lead, _, _ = upsert_lead(
            session, parse_lead({"email": "j@example.com", "country": "FR"}), may_day
        )
        on_event(session, runtime.content, lead, "start", {}, may_day)
    assert runtime.dispatcher.tick(may_day).deferred == 1  # a French public holiday
    with runtime.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
    assert enrollment.due_at == datetime(2026, 5, 4, 7, 0, tzinfo=UTC)  # Monday 09:00 Paris


@pytest.mark.parametrize(
    ("reentry", "enrolled_again"),
    [("never", [False, False]), ("{after: 10 days}", [False, True])],
)
def test_reentry_policy(build: Any, folders: Any, reentry: str, enrolled_again: list[bool]) -> None:
    path = sequence_file(folders[0], "two")
    path.write_text(path.read_text().replace("entry:\n", f"entry:\n  reentry: {reentry}\n"))
    mailer = MemoryMailer()
    runtime = build(mailer)
    enter(runtime, "k@example.com")
    runtime.dispatcher.tick(T0)
    runtime.dispatcher.tick(T0 + timedelta(days=1))  # second email: the lead has finished
    outcomes = []
    for moment in (T0 + timedelta(days=3), T0 + timedelta(days=12)):
        with runtime.sessions.begin() as session:
            lead = find_lead(session, "k@example.com")
            assert lead is not None
            outcomes.append(bool(on_event(session, runtime.content, lead, "start", {}, moment)))
    assert outcomes == enrolled_again
    if enrolled_again[-1]:
        runtime.dispatcher.tick(T0 + timedelta(days=12))
        steps = [step for _, step, _ in deliveries(runtime)]
        assert steps == ["first", "second", "first"]  # a new cycle gets its emails again


class _WatchingMailer(MemoryMailer):
    """Holds the first message until the next chunk is `sending` too, and records how
    many deliveries were `sending` whenever a message went out."""

    def __init__(self, runtime: Any = None) -> None:
        super().__init__()
        self.runtime = runtime
        self.in_hands: list[int] = []

    def _sending(self) -> int:
        with self.runtime.sessions() as session:
            statuses = session.scalars(select(Delivery.status)).all()
        return statuses.count("sending")

    def send(self, message: Any) -> Any:
        if not self.in_hands:
            deadline = datetime.now(UTC) + timedelta(seconds=20)
            while self._sending() <= CHUNK and datetime.now(UTC) < deadline:
                threading.Event().wait(0.01)  # the tick's thread, not a schedule
        self.in_hands.append(self._sending())
        return super().send(message)


def test_the_next_chunk_is_ready_while_smtp_carries_one(build: Any, folders: Any) -> None:
    """SMTP never waits for the worker's bookkeeping, yet at most two chunks are at risk."""
    sequence_file(folders[0], "news")
    mailer = _WatchingMailer()
    runtime = build(mailer)
    mailer.runtime = runtime
    leads = 3 * CHUNK + 5
    for number in range(leads):
        enter(runtime, f"reader{number}@example.com")
    report = runtime.dispatcher.tick(T0)
    assert report.sent == leads and len(mailer.messages) == leads
    # The first chunk's first email left while the second chunk was already handed over.
    assert mailer.in_hands[0] == IN_FLIGHT * CHUNK
    assert max(mailer.in_hands) <= IN_FLIGHT * CHUNK
    assert [status for _, _, status in deliveries(runtime)] == ["sent"] * leads


def test_a_batch_takes_the_highest_priority_first_then_the_oldest_due(
    build: Any, folders: Any
) -> None:
    sequence_file(folders[0], "urgent", trigger="hot", priority=90)
    sequence_file(folders[0], "casual", trigger="warm", priority=10)
    sequence_file(folders[0], "background", trigger="cold", priority=-5)
    mailer = MemoryMailer()
    runtime = build(mailer, batch_size=3)
    arrivals = [("c1", "cold"), ("w1", "warm"), ("h1", "hot"), ("w2", "warm"), ("h2", "hot")]
    arrivals += [("c2", "cold"), ("w3", "warm")]
    for minute, (name, event) in enumerate(arrivals):
        enter(runtime, f"{name}@example.com", event, T0 + timedelta(minutes=minute))
    now = T0 + timedelta(hours=1)
    with runtime.sessions() as session:
        assert due_count(session, now) == 7
        assert due_count(session, T0 + timedelta(minutes=3)) == 4
    sent: list[list[str]] = []
    for _ in range(3):
        before = len(mailer.messages)
        runtime.dispatcher.tick(now, max_batches=1)
        sent.append([m["To"].addresses[0].username for m in mailer.messages[before:]])
    # Each batch of three is filled across priorities, highest first, oldest due first.
    assert sent == [["h1", "h2", "w1"], ["w2", "w3", "c1"], ["c2"]]
