"""Real worker processes: several at once deliver each step exactly once; a killed one
loses nothing except what it honestly marks uncertain.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from smtp_server import SmtpTestServer
from sqlalchemy import func, select

from nurture.models import Delivery
from nurture.seeding import seed_due

pytestmark = pytest.mark.slow

TWO_EMAILS = """\
id: burst
name: Burst
locales: [en, fr]
entry:
  triggers:
    - event: {name: start}
steps:
  - id: first
    email: {template: example, kind: guide}
  - id: second
    email: {template: example, kind: comparison}
"""


def content(content_dirs: tuple[Path, Path]) -> tuple[Path, Path]:
    (content_dirs[0] / "burst.yaml").write_text(TWO_EMAILS)
    return content_dirs


def worker_env(runtime: Any, smtp_url: str, **extra: str) -> dict[str, str]:
    settings = runtime.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update(
        {
            "NURTURE_DATABASE_URL": settings.database_url,
            "NURTURE_SECRET_KEY": settings.secret_key,
            "NURTURE_SMTP_URL": smtp_url,
            "NURTURE_SEQUENCES_DIR": str(settings.sequences_dir),
            "NURTURE_TEMPLATES_DIR": str(settings.templates_dir),
            "NURTURE_BASE_URL": settings.base_url,
            "NURTURE_FREQUENCY_CAP": "100/1d",
            "NURTURE_BATCH_SIZE": "100",
            "NURTURE_JOURNAL_DIR": str(settings.journal_dir),
            **extra,
        }
    )
    return env


def statuses(runtime: Any) -> Counter[str]:
    with runtime.sessions() as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return Counter({status: count for status, count in rows})


def held(runtime: Any) -> list[tuple[str, str | None, Any, str | None]]:
    """The deliveries not yet sent: status, holder, lease, last error (a failure says)."""
    query = select(Delivery.status, Delivery.claimed_by, Delivery.lease_until, Delivery.last_error)
    with runtime.sessions() as session:
        return [tuple(row) for row in session.execute(query.where(Delivery.status != "sent"))][:20]


@pytest.mark.parametrize("processes", [2, 4])
def test_parallel_workers_deliver_every_step_exactly_once(
    processes: int, postgres_url: str, make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 800  # two emails each: 1,600 due steps
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    with SmtpTestServer() as server:
        env = worker_env(runtime, server.url)
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "nurture", "tick"],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(processes)
        ]
        outputs = [w.communicate(timeout=300) for w in workers]
        received = server.received
    assert all(w.returncode == 0 for w in workers), outputs
    per_id = Counter(r.message["Message-ID"] for r in received)
    assert len(per_id) == leads * 2
    assert max(per_id.values()) == 1  # nobody got the same email twice
    assert statuses(runtime) == Counter({"sent": leads * 2})
    # The work really was shared: more than one process sent mail.
    ticks = [
        next(line for line in out.splitlines() if line.startswith("tick:")) for out, _ in outputs
    ]
    sent_by = [int(line.split("sent ")[1].split(",")[0]) for line in ticks]
    assert sum(sent_by) == leads * 2
    assert sum(1 for n in sent_by if n > 0) >= 2, sent_by


def test_worker_killed_mid_send_loses_nothing_and_sends_nothing_twice(
    make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates, lease_seconds=30)
    leads = 200
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    # A slow server: each message takes a moment, so the kill lands mid-chunk.
    with SmtpTestServer(stall_after_data=0.01) as server:
        env = worker_env(
            runtime, server.url, NURTURE_TICK_SECONDS="0.2", NURTURE_LEASE_SECONDS="30"
        )
        worker = subprocess.Popen(
            [sys.executable, "-m", "nurture", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while len(server.received) < 70 and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the worker's progress, not for a schedule
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        assert len(server.received) >= 70, "the worker made no progress"
        before = statuses(runtime)
        assert before["sending"] + before["claimed"] > 0, before  # it died holding work

        # A new worker on the same machine: the dead one's journal settles what it
        # handed to SMTP at once; what it had only claimed waits for the lease.
        restarted = make_runtime(
            sequences_dir=sequences, templates_dir=templates, smtp_url=server.url
        )
        later = datetime.now(UTC)
        while True:
            report = restarted.dispatcher.tick(later)
            if report.claimed == 0 and later > datetime.now(UTC) + timedelta(seconds=31):
                break
            later += timedelta(seconds=31)
        received = server.received

    per_id = Counter(r.message["Message-ID"] for r in received)
    assert max(per_id.values()) == 1, "a message was sent twice"
    final = statuses(runtime)
    # At most the one message on the wire when it died is uncertain (its lead waits
    # there, so its second email is not due); everything else went out exactly once.
    assert final["uncertain"] <= 1, final
    with runtime.sessions() as session:
        rows = session.execute(select(Delivery.message_id, Delivery.status)).all()
        held_first = session.scalar(
            select(func.count()).where(Delivery.status == "uncertain", Delivery.step_id == "first")
        )
    assert final["sent"] + final["uncertain"] + (held_first or 0) == leads * 2, final
    for message_id, status in rows:
        count = per_id.get(f"<{message_id}>", 0)
        if status == "sent":
            assert count == 1
        else:
            assert status == "uncertain" and count in (0, 1)


def spawn(env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    out = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    return subprocess.Popen(
        [sys.executable, "-m", "nurture", "worker"], env=env, stdout=out, stderr=out
    )


def wait_for(condition: Any, timeout: float, what: str, state: Any = None) -> None:
    """Poll `condition`; on timeout, say what was awaited and `state()` (what was seen)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            seen = f"; seen: {state()}" if state is not None else ""
            raise AssertionError(f"timed out waiting for {what}{seen}")
        time.sleep(0.05)  # polling the workers' progress, not waiting for a schedule


def test_a_tick_longer_than_the_lease_sends_nothing_twice(
    postgres_url: str, make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    """Two workers, a relay taking 20 ms per message, batches of 200: each tick runs
    about four seconds, twice the two-second lease. The heartbeat keeps the claims."""
    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 400
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    with SmtpTestServer(stall_after_data=0.02) as server:
        env = worker_env(
            runtime,
            server.url,
            NURTURE_LEASE_SECONDS="2",
            NURTURE_BATCH_SIZE="200",
            NURTURE_TICK_SECONDS="0.2",
        )
        workers = [spawn(env) for _ in range(2)]
        try:
            wait_for(lambda: statuses(runtime)["sent"] == leads * 2, 240, "every email")
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=60) for worker in workers]
        received = server.received
    per_id = Counter(r.message["Message-ID"] for r in received)
    assert len(per_id) == leads * 2
    assert max(per_id.values()) == 1, [m for m, n in per_id.items() if n > 1][:5]
    assert codes == [0, 0]


def test_sigterm_mid_send_exits_0_within_the_grace_and_leaves_nothing_uncertain(
    make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 300
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    with SmtpTestServer(stall_after_data=0.02) as server:
        env = worker_env(
            runtime, server.url, NURTURE_TICK_SECONDS="0.2", NURTURE_SHUTDOWN_GRACE_SECONDS="10"
        )
        worker = spawn(env)
        wait_for(lambda: len(server.received) >= 40, 120, "the worker's first emails")
        stopped_at = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        took = time.monotonic() - stopped_at
        after_stop = statuses(runtime)
        received = len(server.received)
        # Nothing was left for a lease to free: another worker carries on at once.
        restarted = make_runtime(
            sequences_dir=sequences, templates_dir=templates, smtp_url=server.url
        )
        restarted.dispatcher.tick(datetime.now(UTC))
        restarted.dispatcher.tick(datetime.now(UTC) + timedelta(days=1))
        per_id = Counter(r.message["Message-ID"] for r in server.received)
    assert code == 0
    assert took < 10
    assert after_stop["uncertain"] == 0 and after_stop["sending"] == 0, after_stop
    assert after_stop["sent"] == received  # every answer the relay gave is recorded
    assert statuses(runtime) == Counter({"sent": leads * 2})
    assert max(per_id.values()) == 1


def test_database_connections_killed_mid_send_mark_nothing_uncertain(
    postgres_url: str, make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 600
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    with SmtpTestServer(stall_after_data=0.005) as server:
        env = worker_env(runtime, server.url, NURTURE_TICK_SECONDS="0.2")
        worker = spawn(env)
        try:
            for goal in (100, 400, 800):
                wait_for(lambda g=goal: len(server.received) >= g, 120, f"{goal} emails")
                terminate_backends(runtime)  # as a PostgreSQL restart does to clients
            wait_for(lambda: statuses(runtime)["sent"] >= leads * 2, 180, "every email")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        per_id = Counter(r.message["Message-ID"] for r in server.received)
    assert statuses(runtime) == Counter({"sent": leads * 2})
    assert len(per_id) == leads * 2 and max(per_id.values()) == 1


def terminate_backends(runtime: Any) -> int:
    from sqlalchemy import text

    with runtime.engine.connect() as connection:
        killed = connection.execute(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar()
    return int(killed or 0)


def test_eight_workers_with_kills_deliver_every_step_exactly_once_or_held(
    postgres_url: str, make_runtime: Any, content_dirs: tuple[Path, Path], tmp_path: Path
) -> None:
    """8 workers over 6,000 due steps; random SIGKILLs (each replaced), one SIGTERM and
    a burst of killed database connections. Every step reaches the relay exactly once,
    or is held uncertain (at most one per killed worker) and resolved by the operator."""
    import random

    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 3_000
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    chance = random.Random(11)
    with SmtpTestServer() as server:
        env = worker_env(
            runtime, server.url, NURTURE_TICK_SECONDS="0.2", NURTURE_LEASE_SECONDS="10"
        )
        logs = tmp_path / "workers.log"
        workers = [spawn(env, logs) for _ in range(8)]
        kills = 0
        try:
            for goal in range(500, 4_500, 500):
                wait_for(lambda g=goal: len(server.received) >= g, 240, f"{goal} emails")
                if goal == 2000:
                    victim = workers.pop(chance.randrange(len(workers)))
                    victim.send_signal(signal.SIGTERM)
                    assert victim.wait(timeout=60) == 0
                elif goal == 3000:
                    for _ in range(3):
                        terminate_backends(runtime)
                        time.sleep(0.2)
                else:
                    victim = workers.pop(chance.randrange(len(workers)))
                    victim.send_signal(signal.SIGKILL)
                    victim.wait(timeout=30)
                    kills += 1
                workers.append(spawn(env, logs))

            def settled() -> bool:
                counts = statuses(runtime)
                with runtime.sessions() as session:
                    waiting = session.scalar(
                        select(func.count()).where(
                            Delivery.status == "uncertain", Delivery.step_id == "first"
                        )
                    )
                return counts["sent"] + counts["uncertain"] + (waiting or 0) == leads * 2

            wait_for(settled, 300, "every step settled")
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            codes = [worker.wait(timeout=60) for worker in workers]
        assert codes == [0] * len(codes), logs.read_text()[-3000:]
        per_id = Counter(r.message["Message-ID"] for r in server.received)
        assert max(per_id.values()) == 1, "a message was sent twice"
        with runtime.sessions() as session:
            uncertain = session.execute(
                select(Delivery.id, Delivery.message_id).where(Delivery.status == "uncertain")
            ).all()
        assert len(uncertain) <= kills, (len(uncertain), kills)
        # The operator checks each against the relay's log, and settles it.
        arrived = [str(d) for d, m in uncertain if per_id.get(f"<{m}>")]
        missing = [str(d) for d, m in uncertain if not per_id.get(f"<{m}>")]
        resolver = make_runtime(
            sequences_dir=sequences, templates_dir=templates, smtp_url=server.url
        )
        from click.testing import CliRunner

        from nurture.cli import cli

        cli_env = {"NURTURE_DATABASE_URL": runtime.settings.database_url, **env}
        for ids, action in ((arrived, "--mark-sent"), (missing, "--resend")):
            if ids:
                done = CliRunner().invoke(cli, ["deliveries", "resolve", *ids, action], env=cli_env)
                assert done.exit_code == 0, done.output
        later = datetime.now(UTC)
        while resolver.dispatcher.tick(later).claimed:
            later += timedelta(minutes=1)
        received = server.received
    per_id = Counter(r.message["Message-ID"] for r in received)
    assert len(per_id) == leads * 2 and max(per_id.values()) == 1
    assert statuses(runtime) == Counter({"sent": leads * 2})
    # Each lead's emails arrived in the order of its journey.
    order: dict[str, list[str]] = {}
    for r in received:
        order.setdefault(r.recipients[0], []).append(r.message["Message-ID"])
    with runtime.sessions() as session:
        step_of = {
            f"<{m}>": s for m, s in session.execute(select(Delivery.message_id, Delivery.step_id))
        }
    assert all([step_of[m] for m in ids] == ["first", "second"] for ids in order.values())


def test_a_database_restart_mid_send_marks_no_delivered_email_uncertain(
    postgres_url: str, make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    """The worker reaches PostgreSQL through a proxy that drops every connection and
    refuses new ones for three seconds, as a server restart does; answers the relay
    gave meanwhile are recorded once the database is back."""
    from tcp_proxy import TcpProxy

    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 300
    seed_due(runtime, "burst", leads, datetime.now(UTC))
    proxy = TcpProxy(("127.0.0.1", 5432))
    through = runtime.settings.database_url.replace(":5432/", f":{proxy.port}/")
    try:
        with SmtpTestServer(stall_after_data=0.005) as server:
            env = worker_env(runtime, server.url, NURTURE_TICK_SECONDS="0.2")
            env["NURTURE_DATABASE_URL"] = through
            worker = spawn(env)
            try:
                wait_for(lambda: len(server.received) >= 150, 120, "the first emails")
                proxy.cut()
                time.sleep(3)  # the length of the outage, not a wait for a schedule
                during = len(server.received)
                proxy.restore()
                wait_for(
                    lambda: statuses(runtime)["sent"] >= leads * 2,
                    180,
                    "every email",
                    lambda: (statuses(runtime), held(runtime)),
                )
            finally:
                worker.send_signal(signal.SIGTERM)
                code = worker.wait(timeout=60)
            per_id = Counter(r.message["Message-ID"] for r in server.received)
    finally:
        proxy.close()
    assert during >= 150  # what was on the wire went on while the database was away
    assert statuses(runtime) == Counter({"sent": leads * 2})
    assert len(per_id) == leads * 2 and max(per_id.values()) == 1
    assert code == 0
