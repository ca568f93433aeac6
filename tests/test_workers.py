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

from nurture.dispatch import CHUNK, IN_FLIGHT
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
            **extra,
        }
    )
    return env


def statuses(runtime: Any) -> Counter[str]:
    with runtime.sessions() as session:
        rows = session.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
        return Counter({status: count for status, count in rows})


@pytest.mark.parametrize("processes", [2, 4])
def test_parallel_workers_deliver_every_step_exactly_once(
    processes: int, postgres_url: str, make_runtime: Any, content_dirs: tuple[Path, Path]
) -> None:
    sequences, templates = content(content_dirs)
    runtime = make_runtime(sequences_dir=sequences, templates_dir=templates)
    leads = 1500  # two emails each: 3 000 due steps
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
    sent_by = [int(out.split("sent ")[1].split(",")[0]) for out, _ in outputs]
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

        # A new worker, once the dead one's leases have run out.
        restarted = make_runtime(
            sequences_dir=sequences, templates_dir=templates, smtp_url=server.url
        )
        later = datetime.now(UTC) + timedelta(seconds=31)
        while statuses(runtime)["sent"] + statuses(runtime)["uncertain"] < leads * 2:
            report = restarted.dispatcher.tick(later)
            assert report.claimed > 0
            later += timedelta(seconds=31)
        received = server.received

    per_id = Counter(r.message["Message-ID"] for r in received)
    assert max(per_id.values()) == 1, "a message was sent twice"
    final = statuses(runtime)
    assert final["sent"] + final["uncertain"] == leads * 2  # nothing lost
    assert final["uncertain"] <= IN_FLIGHT * CHUNK  # at most the chunks in SMTP's hands
    with runtime.sessions() as session:
        rows = session.execute(select(Delivery.message_id, Delivery.status)).all()
    for message_id, status in rows:
        count = per_id.get(f"<{message_id}>", 0)
        if status == "sent":
            assert count == 1
        else:
            assert status == "uncertain" and count in (0, 1)
