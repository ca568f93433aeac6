"""Sending claimed emails: hand-over, the SMTP thread, recording the answers.

Delivery states (one row per enrollment and email step, unique):

    claimed --(chunk handed to SMTP)--> sending --> sent
       |                                   |------> retry (4xx / network before DATA)
       |                                   |------> failed (5xx, or retries exhausted)
       |                                   '------> uncertain (connection lost after DATA)
       |--(lead unsubscribed meanwhile)--> skipped
       '--(released: shutdown, lost lease)--> claimed, lease ended: the next claim takes it

Every write is fenced (`nurture.leases`): made only while this worker still holds the
row. Every answer is in the journal (`nurture.journal`) before it is recorded, and
recording is retried: a database blip never turns a delivered email into a doubt.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from nurture.core.decisions import WAITING, Decision
from nurture.core.journey import Finish, Position, Sleep, after_send, settle, waiting, walk
from nurture.core.timing import window_holidays
from nurture.db import among, update_rows
from nurture.decisions import as_row, write
from nurture.enrollment import leave
from nurture.leases import holds, update_if_held
from nurture.mail import Rejected, RetryLater, SendResult, Sent, Uncertain
from nurture.models import Delivery, Enrollment, Lead
from nurture.suppression import SUPPRESSION_COLUMNS, suppression_reason

if TYPE_CHECKING:
    from nurture.claims import Job
    from nurture.dispatch import Dispatcher

log = logging.getLogger(__name__)

CHUNK = 25  # messages handed to SMTP per commit
IN_FLIGHT = 2  # chunks handed over at once: one on the wire, the next one waiting for it
# What a record leaves a delivery in while keeping its holder (a release clears it).
SETTLED_BY_RECORD = ("sent", "retry", "failed")
RECORD_TRIES = 6  # a failed record is tried again after 0.5, 1, 2, 4, 8 s


@dataclass
class TickReport:
    claimed: int = 0
    sent: int = 0
    deferred: int = 0
    retried: int = 0
    failed: int = 0
    uncertain: int = 0
    skipped: int = 0
    finished: int = 0
    held: int = 0  # waiting at an uncertain email, or for a live holder
    released: int = 0  # given back unsent (shutdown, relay outage before the hand-over)
    paused: int = 0  # not attempted: the relay was unavailable
    lost: int = 0  # leases lost before the hand-over or the record: left to the new holder

    def add(self, other: TickReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def __str__(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))

    def restore(self, earlier: TickReport) -> None:
        """Back to `earlier` (a copy of this report): a transaction that counted was
        rolled back."""
        for f in fields(self):
            setattr(self, f.name, getattr(earlier, f.name))

    def since(self, earlier: TickReport) -> TickReport:
        """What happened after `earlier` (a copy of this report taken then)."""
        return TickReport(**{f.name: getattr(self, f.name) - getattr(earlier, f.name)
                             for f in fields(self)})  # fmt: skip

    def said(self) -> str:
        """The figures that are not zero, as an operator reads them: `48 sent, 2 deferred`."""
        return ", ".join(f"{getattr(self, f.name)} {f.name}" for f in fields(self)
                         if getattr(self, f.name))  # fmt: skip


def backoff(attempts: int) -> timedelta:
    """1 min, 2, 4 ... capped at 4 hours, with a little jitter so retries spread out."""
    base = min(60 * 2 ** max(attempts - 1, 0), 4 * 3600)
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


def queue_id(reply: str) -> str | None:
    """The relay's queue id in a 250 answer ("250 2.0.0 Ok: queued as 4XyZ"), if any."""
    words = reply.split()
    for marker in ("as", "id", "id="):
        if marker in words[:-1]:
            return words[words.index(marker) + 1].strip("<>()")
    return None


def outcome_of(
    result: SendResult, attempts: int, now: datetime, max_attempts: int
) -> tuple[str, dict[str, Any]]:
    """What the delivery row becomes for this answer (`attempts` counts this one), and
    its kind: sent, uncertain, retry, paused, failed, bounced."""
    if isinstance(result, Sent):
        return "sent", {
            "status": "sent",
            "sent_at": now,
            "lease_until": None,
            "relay_reply": result.reply[:500] or None,
            "last_error": None,
        }
    if isinstance(result, Uncertain):
        return "uncertain", {
            "status": "uncertain",
            "sent_at": now,
            "lease_until": None,
            "last_error": result.reason,
            "relay_reply": result.last_reply[:500] or None,
        }
    if isinstance(result, RetryLater) and result.relay_down:
        # Not this message's fault: the attempt is not counted.
        return "paused", {
            "status": "retry",
            "attempts": attempts - 1,
            "last_error": f"relay unavailable: {result.reason}",
            "lease_until": None,
        }
    if isinstance(result, RetryLater) and attempts < max_attempts:
        return "retry", {
            "status": "retry",
            "last_error": result.reason,
            "next_attempt_at": now + backoff(attempts),
            "lease_until": None,
        }
    if isinstance(result, Rejected):
        kind = "bounced" if result.bounce else "failed"
        return kind, {
            "status": "failed",
            "last_error": f"{result.code} {result.reason}",
            "lease_until": None,
        }
    return "failed", {
        "status": "failed",
        "last_error": f"gave up after {attempts} attempts: {result.reason}",
        "lease_until": None,
    }


def release_values(now: datetime, attempts: int) -> dict[str, Any]:
    """A claimed delivery given back untouched: the next claim (anyone's) takes it."""
    return {
        "status": "claimed",
        "claimed_by": None,
        "lease_until": now,
        "attempts": attempts,
        "updated_at": now,
    }


def uncertain_hold(dispatcher: Dispatcher, delivery_id: int, since: datetime) -> dict[str, Any]:
    """The enrollment of an uncertain email waits at that step until it is resolved."""
    policy = dispatcher.settings.uncertain_policy
    due = None if policy.after is None else since + policy.after
    then = "" if due is None else f"; {policy.action} by policy at {due:%Y-%m-%d %H:%M} UTC"
    return {"due_at": due, "note": f"held: delivery {delivery_id} uncertain{then}"}


class Flow:
    """Keeps the SMTP connection busy: the tick's thread claims and renders the next
    chunks while the sender thread carries this one.

    A chunk is marked `sending` (lease and suppression re-checked) just before it joins
    the sender's queue; at most `IN_FLIGHT` chunks are handed over at once, and the
    journal tells which of their messages really went out.
    """

    def __init__(self, dispatcher: Dispatcher, clock: Callable[[], datetime]):
        self.dispatcher = dispatcher
        self.clock = clock
        self.report = TickReport()
        self.blinked = False  # a write failed and was tried again during this tick
        self.pending: deque[tuple[list[Job], Future[None]]] = deque()
        self.lock = threading.Lock()  # a job's start on the wire vs. a stop's deadline

    # --- the tick's thread ---------------------------------------------------------

    def deliver(self, jobs: list[Job]) -> None:
        """Render chunk after chunk, each handed to the sender as soon as it is ready;
        what a stop or a relay outage leaves unsent is released."""
        dispatcher = self.dispatcher
        for start in range(0, len(jobs), CHUNK):
            chunk = jobs[start : start + CHUNK]
            if dispatcher.stopping.is_set() or dispatcher.relay.paused(self.clock()):
                self._release(jobs[start:])
                return
            now = self.clock()
            for job in chunk:
                dispatcher._render(job, now)
            self.send(chunk)

    def send(self, chunk: list[Job]) -> None:
        """Record what SMTP has finished and hand this chunk over, in one transaction
        (one commit per chunk instead of two)."""
        settled = self._settled(keep=IN_FLIGHT - 1)
        ready = self._in_transaction(
            lambda session: self._record_and_hand_over(session, settled, chunk)
        )
        self.pending.append((chunk, self.dispatcher._sender.submit(self._send_all, ready)))

    def drain(self, deadline: float | None = None) -> bool:
        """Wait for SMTP (until `deadline`, monotonic) and record everything it answered.
        False if something was still on the wire at the deadline: the journal keeps it."""
        complete = True
        settled: list[list[Job]] = []
        while self.pending:
            chunk, future = self.pending[0]
            try:
                timeout = None if deadline is None else max(deadline - time.monotonic(), 0)
                future.result(timeout=timeout)
            except FutureTimeout:
                complete = False
                with self.lock:  # nothing more starts on the wire from now on
                    self.dispatcher.give_up.set()
                    settled.extend(list(c) for c, _ in self.pending)
                self.pending.clear()
                break
            settled.append(chunk)
            self.pending.popleft()
        if settled:
            self._in_transaction(lambda session: self._record(session, settled))
        return complete

    def _settled(self, keep: int) -> list[list[Job]]:
        """The chunks SMTP is done with, oldest first: all that have finished, and as
        many more (waiting for them) as leave at most `keep` pending."""
        settled = []
        while self.pending and (len(self.pending) > keep or self.pending[0][1].done()):
            chunk, sending = self.pending.popleft()
            sending.result()
            settled.append(chunk)
        return settled

    def _in_transaction(self, work: Callable[[Session], Any]) -> Any:
        """Run `work` in a transaction, again after a database error (the answers it
        records are in memory and in the journal meanwhile).

        A commit can succeed on the server and still fail on the client (the connection
        drops before the answer): each try counts afresh, and its writes accept the rows
        an earlier try of this holder already wrote. The next tick also settles this
        holder's rows from the journal, so nothing waits for a lease."""
        before = replace(self.report)
        for attempt in range(RECORD_TRIES):
            try:
                with self.dispatcher.sessions.begin() as session:
                    return work(session)
            except DBAPIError as error:
                self.report.restore(before)
                self.blinked = True
                if attempt == RECORD_TRIES - 1:
                    raise
                log.warning("recording failed (%s); trying again", error.__class__.__name__)
                time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    def _record_and_hand_over(
        self, session: Session, settled: list[list[Job]], chunk: list[Job]
    ) -> list[Job]:
        self._record(session, settled)
        return hand_over(self.dispatcher, session, chunk, self.clock(), self.report)

    def _record(self, session: Session, settled: list[list[Job]]) -> None:
        jobs = [job for chunk in settled for job in chunk]
        if jobs:
            record(self.dispatcher, session, jobs, self.clock(), self.report)

    def _release(self, jobs: list[Job]) -> None:
        if jobs:
            self._in_transaction(
                lambda session: record(self.dispatcher, session, jobs, self.clock(), self.report)
            )

    # --- the SMTP thread -------------------------------------------------------------

    def _send_all(self, ready: list[Job]) -> None:
        dispatcher = self.dispatcher
        mailer = dispatcher.mailer
        journal = dispatcher.journal
        for job in ready:
            if job.message is None:
                continue
            with self.lock:
                if dispatcher.stopping.is_set() or dispatcher.give_up.is_set():
                    return  # not on the wire: released when recorded
                if dispatcher.relay.paused(self.clock()):
                    job.outage = dispatcher.relay.reason
                    continue
                job.on_wire = True
                journal.started(job.delivery_id)
            result = mailer.send(job.message)
            journal.answered(job.delivery_id, result)
            job.result = result
            if isinstance(result, RetryLater) and result.relay_down:
                until = dispatcher.relay.down(self.clock(), result.reason)
                log.warning("relay unavailable (%s): sending paused until %s", result, until)
            elif not isinstance(result, RetryLater):
                dispatcher.relay.up()


def hand_over(
    dispatcher: Dispatcher, session: Session, chunk: list[Job], now: datetime, report: TickReport
) -> list[Job]:
    """Re-check suppression, then mark the chunk `sending` just before SMTP sees it,
    only where this worker still holds the claim under a live lease. Jobs whose claim
    was lost are dropped: their new holder decides."""
    required = dispatcher.settings.consent_required
    suppressed = {
        lead.id: reason
        for lead in session.execute(
            select(*SUPPRESSION_COLUMNS).where(
                among(session, Lead.id, {job.lead_id for job in chunk})
            )
        )
        if (reason := suppression_reason(lead, required)) is not None
    }
    holder = dispatcher.holder
    skipping = [job for job in chunk if job.lead_id in suppressed]
    ready = [job for job in chunk if job.lead_id not in suppressed and job.rendered is not None]
    skipped = update_if_held(
        session,
        [
            {
                "id": job.delivery_id,
                "status": "skipped",
                "last_error": suppressed[job.lead_id] or "suppressed",
                "updated_at": now,
            }
            for job in skipping
        ],
        holder,
        ("claimed", "skipped"),
        now,
    )
    # One row version per delivery: the state, and the links stored before the email
    # leaves (a click may come at once).
    sending = update_if_held(
        session,
        [
            {
                "id": job.delivery_id,
                "status": "sending",
                "attempts": job.attempts + 1,
                "updated_at": now,
                "links": job.links,
                "honeypot": job.honeypot,
            }
            for job in ready
        ],
        holder,
        # `sending` under this holder: an earlier try of this hand-over was committed
        # though the database's answer was lost; nothing of it reached SMTP yet.
        ("claimed", "sending"),
        now,
    )
    for job in skipping:
        if job.delivery_id in skipped:
            reason = suppressed[job.lead_id] or "suppressed"
            leave(session, job.lead_id, reason, now)
            report.skipped += 1
            job.error = "skipped"
        else:
            _lost(job, report, "before the hand-over")
    handed: list[Job] = []
    for job in ready:
        if job.delivery_id in sending:
            handed.append(job)
        else:
            _lost(job, report, "before the hand-over")
    return handed


def _lost(job: Job, report: TickReport, when: str) -> None:
    job.error = "lease lost"
    report.lost += 1
    log.warning("delivery %d: lease lost %s; its new holder decides", job.delivery_id, when)


def record(
    dispatcher: Dispatcher, session: Session, jobs: list[Job], now: datetime, report: TickReport
) -> None:
    """Write what SMTP answered and where each lead goes next, for the rows this worker
    still holds: one locked read and two writes per chunk, whatever its size."""
    at_step, recorded = _held_at(
        session,
        dispatcher.holder,
        [job for job in jobs if job.error not in ("skipped", "lease lost")],
    )
    delivery_rows: list[dict[str, Any]] = []
    enrollment_rows: list[dict[str, Any]] = []
    decided: list[dict[str, Any]] = []
    bounced: list[Job] = []
    settings = dispatcher.settings
    for job in jobs:
        writes = job.delivery_id in at_step
        if not writes and job.delivery_id not in recorded:
            if job.error not in ("skipped", "lease lost"):
                _lost(job, report, "before the record")
            continue
        # Otherwise an earlier try of this record was committed though the database's
        # answer was lost: counted as then, written once.
        delivery: dict[str, Any] = {"id": job.delivery_id, "updated_at": now}
        enrollment: dict[str, Any] = {"id": job.enrollment_id}
        moves = writes and at_step[job.delivery_id] == job.step.id
        if job.rendered is not None:
            delivery["subject"] = job.rendered.subject[:500]
        result = job.result
        if result is None and job.error is not None and job.rendered is None:
            # A render error: nothing left the building.
            delivery.update(status="failed", last_error=job.error, lease_until=None)
            delivery["attempts"] = job.attempts + 1
            enrollment.update(due_at=None, note=f"blocked: delivery {job.delivery_id} {job.error}")
            report.failed += 1
        elif result is None and job.outage is not None:
            delivery.update(
                status="retry",
                attempts=job.attempts,
                last_error=f"not attempted: relay unavailable ({job.outage})",
                next_attempt_at=dispatcher.relay.until or now,
                lease_until=None,
            )
            enrollment.update(due_at=dispatcher.relay.until or now)
            report.paused += 1
        elif result is None:
            if job.on_wire:
                continue  # still on the wire at the deadline: the journal settles it
            delivery.update(release_values(now, job.attempts))
            enrollment.update(due_at=now)
            report.released += 1
        else:
            kind, values = outcome_of(result, job.attempts + 1, now, settings.max_attempts)
            delivery.update(values)
            if kind == "sent":
                report.sent += 1
                enrollment.update(_continue(job, now, report, decided if moves else []))
            elif kind == "uncertain":
                report.uncertain += 1
                enrollment.update(uncertain_hold(dispatcher, job.delivery_id, now))
            elif kind == "paused":
                until = dispatcher.relay.until or now
                delivery["next_attempt_at"] = until
                enrollment.update(due_at=until)
                report.paused += 1
            elif kind == "retry":
                enrollment.update(due_at=delivery["next_attempt_at"])
                report.retried += 1
            else:
                report.failed += 1
                if kind == "bounced":
                    if writes:  # an earlier try that was committed left the lead already
                        bounced.append(job)
                else:
                    enrollment.update(
                        due_at=None, note=f"blocked: delivery {job.delivery_id} failed"
                    )
        if writes:
            delivery_rows.append(delivery)
        if len(enrollment) > 1 and moves:
            enrollment_rows.append(enrollment)
    update_rows(session, Delivery, delivery_rows)
    update_rows(session, Enrollment, enrollment_rows)
    write(session, decided)
    for job in bounced:
        lead = session.get(Lead, job.lead_id)
        assert lead is not None
        lead.bounced_at = now
        leave(session, job.lead_id, "bounced", now)


def _held_at(
    session: Session, holder: str, jobs: list[Job]
) -> tuple[dict[int, str | None], set[int]]:
    """The deliveries among these jobs this holder still holds, each with where its
    lead's active enrollment stands now (None: no longer active): both rows locked, in
    one read. A lead moves on only from the step its email was sent for.

    Second, those this holder has already recorded (claimed by it, settled): only an
    earlier try of the same record, committed, writes them."""
    ids = [job.delivery_id for job in jobs]
    if not ids:
        return {}, set()
    # Read by key and checked here: planned by the holder, a database would walk every
    # row this worker holds (thousands, in a long tick) for each chunk.
    query = (
        select(
            Delivery.id,
            Delivery.claimed_by,
            Delivery.status,
            Enrollment.step_id,
            Enrollment.status.label("enrollment_status"),
        )
        .join(Enrollment, Enrollment.id == Delivery.enrollment_id)
        .where(among(session, Delivery.id, ids))
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update()
    held: dict[int, str | None] = {}
    recorded: set[int] = set()
    for row in session.execute(query):
        if holds(row, holder, ("claimed", "sending", "uncertain")):
            held[row.id] = row.step_id if row.enrollment_status == "active" else None
        elif row.claimed_by == holder and row.status in SETTLED_BY_RECORD:
            recorded.add(row.id)
    return held, recorded


def _continue(
    job: Job, now: datetime, report: TickReport, decided: list[dict[str, Any]]
) -> dict[str, Any]:
    """Walk on after a settled email, so waits start counting from the send."""
    facts = settle(job.facts, job.step.id)
    holidays = window_holidays(
        job.sequence.window, job.facts.lead.country, (now.year, now.year + 1)
    )
    position = after_send(job.step, now)
    result = walk(job.sequence, position, facts, now, job.tz, holidays)
    decided.extend(as_row(job.lead_id, d, now) for d in result.decisions)
    outcome = result.outcome
    if isinstance(outcome, Finish):
        report.finished += 1
        return finished(outcome, now)
    if isinstance(outcome, Sleep):
        step_id = outcome.position.step_id
        decision = Decision(WAITING, waiting(outcome), job.sequence.id, step_id)
        decided.append(as_row(job.lead_id, decision, now))
        return slept(outcome)
    # Another email right away: the next batch takes it.
    return {**placed(outcome.position), "due_at": now}


def placed(position: Position) -> dict[str, Any]:
    return {
        "step_id": position.step_id,
        "step_started_at": position.started_at,
        "waiting_for": None,
    }


def slept(outcome: Sleep) -> dict[str, Any]:
    return {
        **placed(outcome.position),
        "due_at": outcome.until,
        "waiting_for": outcome.waiting_for,
        "note": None,
    }


def finished(outcome: Finish, now: datetime) -> dict[str, Any]:
    return {
        **placed(outcome.position),
        "status": "completed",
        "due_at": None,
        "left_at": now,
        "exit_reason": outcome.reason,
    }
