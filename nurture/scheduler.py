"""APScheduler 3 as a metronome: interval jobs calling plain functions of `now`.

Four jobs: `tick` (every `NURTURE_TICK_SECONDS`: emails, CRM, SLA, digests), `hits`
(every second: tracking hits into events and scores, so scores follow readers
closely), `triggers` (every five minutes: the inactivity and date triggers and the
account rule, each one statement over every lead, then the broadcast occurrences due
to start) and `summary` (every five minutes: the reports' daily summary, when it is
due). The schedule of each lead lives in the database; this only decides how often a
worker looks at it. Never started inside web server workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from nurture.clock import Clock
from nurture.runtime import Runtime

log = logging.getLogger(__name__)

HITS_SECONDS = 1.0
# Inactivity counts in days and dates in calendar days: every few minutes is enough,
# and each run reads every lead once per trigger.
TRIGGER_SECONDS = 300.0


def track(runtime: Runtime, now: datetime) -> str:
    """Tracking hits: recover the spool files of dead processes on this machine, then
    classify and record every hit waiting."""
    from nurture.config import spool_folder
    from nurture.hits import process
    from nurture.spool import recover

    recovered = recover(spool_folder(runtime.settings), runtime.engine)
    done = process(runtime.sessions, runtime.content, runtime.settings, now)
    return f"{done}" + (f", {recovered} recovered from the spool" if recovered else "")


def work(runtime: Runtime, now: datetime, triggers: bool = False) -> list[str]:
    """Everything a worker does at `now`: tracking hits, form confirmation emails,
    the stop rules of A/B splits, emails, CRM pushes, SLA escalations, digests; and
    with `triggers`, first the inactivity and date triggers and the broadcasts due to
    start (the worker runs them on their own, less often).

    Each part runs even when another failed: a broken SMTP server must not hold
    back the CRM, nor the other way round. Returns one line per part.
    """
    from nurture.alarms import check as check_alarms
    from nurture.digest import send_digests
    from nurture.feedback import escalate_overdue

    # Started with the tick and read by the CRM part at each push, so a push sent
    # after minutes of emails is still signed with the time it leaves.
    clock = Clock(now)
    lines: list[str] = []

    def escalate() -> str:
        with runtime.sessions.begin() as session:
            found = escalate_overdue(session, runtime.content, now, runtime.settings.sla)
        return f"{len(found)} escalated"

    def retention() -> str:
        from nurture.confirmation import purge_expired
        from nurture.idempotency import expire
        from nurture.privacy import forget_files, purge
        from nurture.suppression import list_key

        key = list_key(runtime.settings)
        with runtime.sessions.begin() as session:
            purged = purge(session, key, now, runtime.settings.retention_days)
            answers = expire(session, now)
            unconfirmed = purge_expired(session, now)
        forget_files(runtime.settings.outbox_dir, purged)
        return (
            f"{len(purged.emails)} purged"
            + (f", {answers} idempotency answers expired" if answers else "")
            + (f", {unconfirmed} unconfirmed form submissions expired" if unconfirmed else "")
        )

    def splits() -> str:
        from nurture.experiments import decide_winners

        with runtime.sessions.begin() as session:
            found = decide_winners(session, runtime.content, now)
        return "; ".join(found) or "no new winner"

    def confirmations() -> str:
        from nurture.confirmation import send_due

        rt = runtime
        return str(send_due(rt.sessions, rt.settings, rt.secret_key, rt.dispatcher.send_now, clock))

    parts = (
        ("hits", lambda: track(runtime, now)),
        *((("triggers", lambda: find_triggered(runtime, now)),) if triggers else ()),
        # Before the sequence emails: someone is waiting for this one, by the form.
        ("confirmations", confirmations),
        # Before the emails: a split's winner goes to the leads assigned from now on.
        ("splits", splits),
        ("tick", lambda: str(runtime.dispatcher.tick(clock))),
        ("retention", retention),
        ("crm", lambda: str(runtime.crm.deliver_due(clock))),
        ("sla", escalate),
        ("digest", lambda: f"{send_digests(runtime, now)} sent"),
        ("alarms", lambda: check_alarms(runtime, now)),
        # Last: the reports' summary waits for nothing more urgent.
        *((("summary", lambda: summarize_due(runtime, now)),) if triggers else ()),
    )
    for name, part in parts:
        if runtime.stopping.is_set():
            lines.append(f"{name}: not started (stopping)")
            continue
        try:
            lines.append(f"{name}: {part()}")
        except Exception:  # one failing part must not stop the others, nor the metronome
            log.exception("%s failed", name)
            lines.append(f"{name}: failed (see the log)")
    return lines


def tick_once(runtime: Runtime) -> None:
    now = datetime.now(UTC)  # the one place a worker reads the clock
    for line in work(runtime, now):
        log.info(line)


def _beat(name: str, job: Callable[[Runtime, datetime], str], runtime: Runtime, idle: str) -> None:
    """One run of a periodic job at the clock's now; its line logged unless `idle`."""
    now = datetime.now(UTC)
    try:
        line = job(runtime, now)
    except Exception:  # the metronome keeps going; the next run tries again
        log.exception("%s failed", name)
        return
    if not line.startswith(idle):
        log.info("%s: %s", name, line)


def track_once(runtime: Runtime) -> None:
    _beat("hits", track, runtime, "0 processed, 0 failed")


def summarize_due(runtime: Runtime, now: datetime) -> str:
    """The reports' daily summary (nurture/reports/summary.py): every closed day again
    on the first run of a UTC day, the last days again when an hour has passed."""
    from nurture.reports.summary import RECENT_DAYS, due, summarize_unless_busy

    with runtime.sessions.begin() as session:
        wanted = due(session, now)
        if wanted is None:
            return "up to date"
        days = None if wanted == "every day" else RECENT_DAYS
        done = summarize_unless_busy(session, now, days, runtime.settings)
        return "another worker is summing" if done is None else str(done)


def summary_once(runtime: Runtime) -> None:
    _beat("summary", summarize_due, runtime, "up to date")


def find_triggered(runtime: Runtime, now: datetime) -> str:
    """The inactivity and date triggers of every live sequence, the account rule
    (nurture.account_promotion), then the broadcast occurrences due to start, at `now`."""
    from nurture import broadcasts
    from nurture.account_promotion import promote_accounts
    from nurture.triggers import run

    rt = runtime
    fired = run(rt.sessions, rt.content, now, rt.settings.consent_required)
    line = f"{sum(f.enrolled for f in fired)} enrolled by {len(fired)} triggers"
    with rt.sessions.begin() as session:
        promoted = promote_accounts(session, rt.content, now, rt.settings.sla)
    if promoted.found:
        line = f"accounts: {promoted}; {line}"
    started = broadcasts.run(rt.sessions, rt.settings, rt.content, now)
    if started:
        line += f", {sum(s.recipients for s in started)} by {len(started)} broadcasts"
    return line


def triggers_once(runtime: Runtime) -> None:
    _beat("triggers", find_triggered, runtime, "0 enrolled")


def make_scheduler(runtime: Runtime, blocking: bool) -> BaseScheduler:
    scheduler: BaseScheduler = BlockingScheduler() if blocking else BackgroundScheduler()
    jobs: tuple[tuple[str, Callable[[Runtime], None], float, bool], ...] = (
        # id, what, every (seconds), whether it runs at once on start
        ("tick", tick_once, runtime.settings.tick_seconds, True),
        ("hits", track_once, HITS_SECONDS, False),
        ("triggers", triggers_once, TRIGGER_SECONDS, True),
        ("summary", summary_once, TRIGGER_SECONDS, True),
    )
    for name, job, seconds, at_once in jobs:
        scheduler.add_job(
            job,
            "interval",
            args=[runtime],
            seconds=seconds,
            **({"next_run_time": datetime.now(UTC)} if at_once else {}),
            max_instances=1,  # a slow run is never overlapped by the next one
            coalesce=True,
            misfire_grace_time=None,
            id=name,
        )
    return scheduler
