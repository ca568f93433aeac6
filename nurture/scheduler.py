"""APScheduler 3 as a metronome: one interval job calling `tick(now)`.

The schedule of each lead lives in the database; this only decides how often a
worker looks at it. Never started inside web server workers.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from nurture.runtime import Runtime

log = logging.getLogger(__name__)


def tick_once(runtime: Runtime) -> None:
    now = datetime.now(UTC)  # the one place a worker reads the clock
    try:
        report = runtime.dispatcher.tick(now)
    except Exception:  # a bad tick must not kill the metronome; the next one retries
        log.exception("tick failed")
        return
    if report.claimed:
        log.info("tick: %s", report)


def make_scheduler(runtime: Runtime, blocking: bool) -> BaseScheduler:
    scheduler: BaseScheduler = BlockingScheduler() if blocking else BackgroundScheduler()
    scheduler.add_job(
        tick_once,
        "interval",
        args=[runtime],
        seconds=runtime.settings.tick_seconds,
        next_run_time=datetime.now(UTC),
        max_instances=1,  # a slow tick is never overlapped by the next one
        coalesce=True,
        misfire_grace_time=None,
        id="tick",
    )
    return scheduler
