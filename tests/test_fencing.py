"""Fenced claims, the SMTP journal, uncertain emails held until resolved, relay outages.

In one process with two dispatchers (two holders) on a real database; the workers
test runs the same promises with real processes.
"""

from __future__ import annotations

import os
from collections import Counter
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from smtp_server import SmtpTestServer
from sqlalchemy import func, select, update
from test_dispatch import T0, enter, sequence_file

from nurture.cli import cli
from nurture.dispatch import TickReport
from nurture.leases import renew
from nurture.mail import MemoryMailer, Sent, SmtpMailer
from nurture.models import Delivery, Enrollment
from nurture.runtime import Runtime


@pytest.fixture
def folders(content_dirs: tuple[Path, Path]) -> tuple[Path, Path]:
    sequence_file(content_dirs[0], "two")
    return content_dirs


@pytest.fixture
def build(make_runtime: Any, folders: tuple[Path, Path], tmp_path: Path) -> Any:
    def make(mailer: Any, **overrides: Any) -> Runtime:
        runtime: Runtime = make_runtime(
            mailer_factory=mailer if callable(mailer) else (lambda: mailer),
            sequences_dir=folders[0],
            templates_dir=folders[1],
            journal_dir=tmp_path / "journal",  # one machine: both workers share it
            **overrides,
        )
        return runtime

    return make


def rows(runtime: Runtime) -> list[Delivery]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Delivery).order_by(Delivery.id)))


def cli_env(runtime: Runtime) -> dict[str, str]:
    return {"NURTURE_DATABASE_URL": runtime.settings.database_url, "NURTURE_SECRET_KEY": "x" * 32}


def test_a_claim_lost_before_the_hand_over_is_never_sent(build: Any) -> None:
    first_mailer, second_mailer = MemoryMailer(), MemoryMailer()
    first = build(first_mailer, lease_seconds=60)
    second = build(second_mailer, lease_seconds=60)
    enter(first, "a@example.com")
    jobs = first.dispatcher._claim(T0, TickReport())
    assert [job.facts.lead.email for job in jobs] == ["a@example.com"]
    # The first worker stalls past its lease without renewing it; the second takes over.
    report = second.dispatcher.tick(T0 + timedelta(seconds=61))
    assert report.sent == 1
    # The first one wakes up and goes on with what it thinks it holds.
    late = TickReport()
    first.dispatcher._deliver(jobs, T0 + timedelta(seconds=62), late)
    assert late.lost == 1 and late.sent == 0
    assert first_mailer.attempts == []
    assert len(second_mailer.messages) == 1
    assert [(d.status, d.claimed_by) for d in rows(first)] == [("sent", second.dispatcher.holder)]


def test_a_live_holder_keeps_its_claim_past_the_first_lease(build: Any) -> None:
    first = build(MemoryMailer(), lease_seconds=60)
    second_mailer = MemoryMailer()
    second = build(second_mailer, lease_seconds=60)
    enter(first, "b@example.com")
    jobs = first.dispatcher._claim(T0, TickReport())
    # Its heartbeat renewed the lease: the claim is not "expired" at T0 + 61 s.
    with first.sessions.begin() as session:
        assert renew(session, first.dispatcher.holder, T0 + timedelta(seconds=110)) == 1
    report = second.dispatcher.tick(T0 + timedelta(seconds=61))
    assert report.claimed == 1 and report.held == 1 and report.sent == 0
    assert second_mailer.attempts == []
    with first.sessions() as session:
        enrollment = session.scalars(select(Enrollment)).one()
        assert enrollment.due_at == T0 + timedelta(seconds=110)  # looked at again then
    done = TickReport()
    first.dispatcher._deliver(jobs, T0 + timedelta(seconds=62), done)
    assert done.sent == 1


def test_a_dead_workers_journal_settles_each_email_exactly(build: Any) -> None:
    dead = build(MemoryMailer(), lease_seconds=300)
    mailer = MemoryMailer()
    alive = build(mailer, lease_seconds=300)
    for name in ("c1", "c2", "c3"):
        enter(dead, f"{name}@example.com")
    dispatcher = dead.dispatcher
    jobs = sorted(dispatcher._claim(T0, TickReport()), key=lambda job: job.delivery_id)
    for job in jobs:
        dispatcher._render(job, T0)
    with dead.sessions.begin() as session:
        assert len(dispatcher._hand_over(session, jobs, T0, TickReport())) == 3
    # Its SMTP thread sent the first (and heard back), was sending the second, never
    # reached the third, when the process died.
    journal = dispatcher.journal
    journal.started(jobs[0].delivery_id)
    journal.answered(jobs[0].delivery_id, Sent("250 2.0.0 Ok: queued as 4ABC12"))
    journal.started(jobs[1].delivery_id)
    assert journal._fd is not None
    os.close(journal._fd)  # the process is gone: its lock with it
    journal._fd = None

    # Another worker on the same machine, long before the dead one's leases end.
    report = alive.dispatcher.tick(T0 + timedelta(seconds=5))
    assert report.sent == 1  # only the third, never handed to the relay
    assert [m["To"] for m in mailer.messages] == ["Zoé <c3@example.com>"]
    settled = rows(alive)
    assert [d.status for d in settled] == ["sent", "uncertain", "sent"]
    assert settled[0].relay_reply == "250 2.0.0 Ok: queued as 4ABC12"
    assert "on the wire" in (settled[1].last_error or "")
    assert not journal.path.exists()  # settled, then removed
    # The uncertain lead waits at its email; the others moved on to their wait.
    with alive.sessions() as session:
        steps = dict(session.execute(select(Enrollment.lead_id, Enrollment.step_id)).all())
    assert sorted(steps.values()) == ["first", "pause", "pause"]


def test_an_uncertain_email_is_resolved_in_bulk_by_the_operator(build: Any) -> None:
    from nurture.mail import Uncertain

    mailer = MemoryMailer([Uncertain("no reply after the data"), Uncertain("no reply")])
    runtime = build(mailer, uncertain_policy=_hold())
    enter(runtime, "d1@example.com")
    enter(runtime, "d2@example.com")
    assert runtime.dispatcher.tick(T0).uncertain == 2
    # Held for good under the "hold" policy, however long.
    assert runtime.dispatcher.tick(T0 + timedelta(days=30)).sent == 0
    env = cli_env(runtime)
    listed = CliRunner().invoke(cli, ["deliveries", "list", "--status", "uncertain"], env=env)
    assert listed.exit_code == 0, listed.output
    assert "d1@example.com" in listed.output and "<" in listed.output  # the Message-ID
    dry = CliRunner().invoke(
        cli, ["deliveries", "resolve", "--uncertain", "--resend", "--dry-run"], env=env
    )
    assert "2 deliveries would be changed" in dry.output
    assert [d.status for d in rows(runtime)] == ["uncertain", "uncertain"]
    with freeze_time(T0 + timedelta(days=30)):
        since = (T0 - timedelta(hours=1)).isoformat()
        done = CliRunner().invoke(
            cli, ["deliveries", "resolve", "--uncertain", "--since", since, "--resend"], env=env
        )
    assert done.exit_code == 0, done.output
    assert "2 deliveries: resend" in done.output
    report = runtime.dispatcher.tick(T0 + timedelta(days=30, minutes=1))
    assert report.sent == 2
    assert Counter(d.status for d in rows(runtime)) == Counter({"sent": 2})


def test_resend_is_refused_when_the_lead_has_moved_on(build: Any) -> None:
    from nurture.mail import Uncertain

    runtime = build(MemoryMailer([Uncertain("no reply")]), uncertain_policy=_hold())
    enter(runtime, "e@example.com")
    runtime.dispatcher.tick(T0)
    with runtime.sessions.begin() as session:
        session.execute(update(Enrollment).values(step_id="second"))
    result = CliRunner().invoke(
        cli, ["deliveries", "resolve", "1", "--resend"], env=cli_env(runtime)
    )
    assert result.exit_code != 0
    assert "the lead has moved on" in result.output
    assert [d.status for d in rows(runtime)] == ["uncertain"]  # nothing changed


def test_held_rows_are_listed_with_their_holder_and_lease(build: Any) -> None:
    runtime = build(MemoryMailer(), lease_seconds=300)
    enter(runtime, "f@example.com")
    with freeze_time(T0):
        runtime.dispatcher._claim(T0, TickReport())
        listed = CliRunner().invoke(cli, ["deliveries", "list"], env=cli_env(runtime))
    assert listed.exit_code == 0, listed.output
    assert "claimed" in listed.output
    assert f"held by {runtime.dispatcher.holder} (lease 300s left)" in listed.output


def test_a_relay_out_of_service_pauses_sending_and_nothing_fails(build: Any) -> None:
    with SmtpTestServer() as server:
        runtime = build(lambda: SmtpMailer(server.url, cooldown=0))
        for n in range(30):
            enter(runtime, f"g{n}@example.com")
        server.unavailable = True
        at = T0
        reports = []
        # Three hours of outage, longer than the whole retry schedule (about two hours).
        while at < T0 + timedelta(hours=3):
            reports.append(runtime.dispatcher.tick(at))
            at += timedelta(minutes=5)
        assert sum(r.failed for r in reports) == 0
        assert sum(r.paused for r in reports) > 0
        statuses = Counter(d.status for d in rows(runtime))
        assert statuses == Counter({"retry": 30}), statuses
        assert all(d.attempts == 0 for d in rows(runtime))  # no attempt was spent
        assert server.received == []
        server.unavailable = False
        runtime.dispatcher.tick(at + timedelta(minutes=10))
        received = Counter(m["To"] for m in server.messages)
    assert len(received) == 30 and set(received.values()) == {1}
    assert Counter(d.status for d in rows(runtime)) == Counter({"sent": 30})


def test_failed_for_a_passing_reason_are_resent_in_bulk(build: Any) -> None:
    from nurture.mail import RetryLater

    runtime = build(MemoryMailer([RetryLater("451 busy")] * 4), max_attempts=2)
    enter(runtime, "h1@example.com")
    enter(runtime, "h2@example.com")
    runtime.dispatcher.tick(T0)
    runtime.dispatcher.tick(T0 + timedelta(hours=1))
    assert [d.status for d in rows(runtime)] == ["failed", "failed"]
    with freeze_time(T0 + timedelta(hours=2)):
        result = CliRunner().invoke(
            cli,
            ["deliveries", "resolve", "--failed", "--transient", "--resend"],
            env=cli_env(runtime),
        )
    assert result.exit_code == 0, result.output
    assert runtime.dispatcher.tick(T0 + timedelta(hours=2, minutes=1)).sent == 2


def test_a_stop_releases_what_was_not_handed_over(build: Any) -> None:
    mailer = MemoryMailer()
    runtime = build(mailer, lease_seconds=300)
    for n in range(3):
        enter(runtime, f"i{n}@example.com")
    dispatcher = runtime.dispatcher
    jobs = dispatcher._claim(T0, TickReport())
    dispatcher.stop(grace=5)
    report = TickReport()
    dispatcher._deliver(jobs, T0, report)
    assert report.released == 3 and mailer.attempts == []
    assert [(d.status, d.claimed_by, d.lease_until) for d in rows(runtime)] == [
        ("claimed", None, T0)
    ] * 3
    # Another worker takes them at once, without waiting for a lease.
    other = build(MemoryMailer())
    assert other.dispatcher.tick(T0 + timedelta(seconds=1)).sent == 3


def _hold() -> Any:
    from nurture.config import UncertainPolicy

    return UncertainPolicy("hold", None)


def test_a_tick_the_database_fails_mid_batch_leaves_no_claim_waiting_for_its_lease(
    build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away between the claim and the hand-over: the next tick of the
    same worker sends those emails at once, not once a five-minute lease has ended."""
    from sqlalchemy.exc import OperationalError

    from nurture.sending import Flow

    mailer = MemoryMailer()
    runtime = build(mailer, lease_seconds=300)
    for n in range(3):
        enter(runtime, f"j{n}@example.com")
    deliver = Flow.deliver

    def database_gone(flow: Flow, jobs: Any) -> None:
        monkeypatch.setattr(Flow, "deliver", deliver)
        raise OperationalError("UPDATE deliveries", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Flow, "deliver", database_gone)
    with pytest.raises(OperationalError):
        runtime.dispatcher.tick(T0)
    assert [(d.status, d.claimed_by) for d in rows(runtime)] == [
        ("claimed", runtime.dispatcher.holder)
    ] * 3
    report = runtime.dispatcher.tick(T0 + timedelta(seconds=1))
    assert report.sent == 3 and len(mailer.messages) == 3
    assert Counter(d.status for d in rows(runtime)) == Counter({"sent": 3})


def _commit_then_lose_the_answer(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, method: str
) -> list[int]:
    """The first call of `Flow.<method>` with jobs is committed on the server, then the
    client sees the connection drop (as when the database restarts between the commit
    and its answer). Returns how many times the method ran with jobs."""
    from sqlalchemy.exc import OperationalError

    from nurture.sending import Flow

    real = getattr(Flow, method)
    calls: list[int] = []

    def committed_then_lost(flow: Flow, session: Any, *args: Any) -> Any:
        if not args[-1]:  # nothing to write
            return real(flow, session, *args)
        calls.append(1)
        if len(calls) > 1:
            return real(flow, session, *args)
        with runtime.sessions.begin() as own:
            real(flow, own, *args)
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"))

    monkeypatch.setattr(Flow, method, committed_then_lost)
    return calls


def _three_sent_through_a_blink(
    build: Any, monkeypatch: pytest.MonkeyPatch, method: str
) -> tuple[Runtime, MemoryMailer, TickReport]:
    """Three leads due, one tick in which `Flow.<method>` commits once but the worker
    sees the connection drop."""
    mailer = MemoryMailer()
    runtime = build(mailer, lease_seconds=300)
    for n in range(3):
        enter(runtime, f"k{n}@example.com")
    calls = _commit_then_lose_the_answer(monkeypatch, runtime, method)
    report = runtime.dispatcher.tick(T0)
    assert len(calls) == 2  # the blink, then the try again
    return runtime, mailer, report


def test_a_hand_over_committed_whose_answer_was_lost_sends_each_email_once_at_once(
    build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deliveries are `sending` in the database though the worker saw an error: the
    try again hands them to SMTP in the same tick instead of calling them lost (they
    would then wait for the lease, five minutes, and be held as uncertain)."""
    runtime, mailer, report = _three_sent_through_a_blink(
        build, monkeypatch, "_record_and_hand_over"
    )
    assert (report.sent, report.lost) == (3, 0)
    assert sorted(parseaddr(m["To"])[1] for m in mailer.messages) == [
        f"k{n}@example.com" for n in range(3)
    ]
    assert Counter(d.status for d in rows(runtime)) == Counter({"sent": 3})


def test_a_record_committed_whose_answer_was_lost_is_counted_once_and_not_called_lost(
    build: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    runtime, mailer, report = _three_sent_through_a_blink(build, monkeypatch, "_record")
    assert (report.sent, report.lost) == (3, 0)
    assert "lease lost" not in caplog.text
    assert len(mailer.messages) == 3
    assert Counter(d.status for d in rows(runtime)) == Counter({"sent": 3})
    with runtime.sessions() as session:
        steps = sorted(session.scalars(select(Enrollment.step_id)))
    # Each lead moved on once, past the email it was sent.
    assert len(steps) == 3 and len(set(steps)) == 1 and steps[0] != "first"


def test_a_write_tried_again_leaves_nothing_of_the_worker_held_after_the_tick(
    build: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever an ambiguous commit left under this worker's name is settled by its next
    tick from its journal, not by the end of a lease."""
    runtime = build(MemoryMailer(), lease_seconds=300)
    for n in range(2):
        enter(runtime, f"s{n}@example.com")
    _commit_then_lose_the_answer(monkeypatch, runtime, "_record_and_hand_over")
    runtime.dispatcher.tick(T0)
    assert runtime.dispatcher._unsettled
    runtime.dispatcher.tick(T0 + timedelta(seconds=1))
    assert not runtime.dispatcher._unsettled
    with runtime.sessions() as session:
        held = session.scalar(
            select(func.count()).where(
                Delivery.claimed_by == runtime.dispatcher.holder,
                Delivery.status.in_(("claimed", "sending")),
            )
        )
    assert held == 0
