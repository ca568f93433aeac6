"""The dispatcher: claim what is due, walk each lead forward, and send (`nurture.sending`).

A claim holds a delivery under this worker's token and a lease computed at that claim,
renewed by a heartbeat while the worker works (`nurture.leases`). Another worker takes a
delivery over only once its lease ran out, that is once its holder is really gone: a
`claimed` row is claimed again; a `sending` row is settled from the holder's journal
when it is on this machine, else marked uncertain (maybe delivered: never resent
blindly). A lead waits at an uncertain email until an operator or the policy
(`NURTURE_UNCERTAIN_POLICY`) resolves it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from nurture.backlog import due, priorities
from nurture.claims import SETTLED, Claimed, Job, Known, columns_of
from nurture.clock import Clock, clock_of
from nurture.composing import compose, sender_of
from nurture.config import Settings, journal_folder
from nurture.content import Content
from nurture.core.cap import cap_release
from nurture.core.decisions import DEFERRED, WAITING, Decision
from nurture.core.journey import (
    Facts,
    Finish,
    Position,
    SendEmail,
    Sleep,
    after_send,
    settle,
    waiting,
    walk,
)
from nurture.core.message import Envelope, make_message_id
from nurture.core.sequences import EmailStep, Sequence, SplitStep
from nurture.core.timing import next_window_opening, resolve_timezone, window_holidays
from nurture.db import among, insert_rows, plan_afresh, skip_locked, update_rows
from nurture.decisions import as_row, write
from nurture.enrollment import leave
from nurture.experiments import assignments_of, record, winners_of
from nurture.facts import cap_times_of, engagement, events_of
from nurture.journal import Entries, Journal, orphans, parse
from nurture.leads import PROFILE_COLUMNS, profile_of
from nurture.leases import Heartbeat, new_holder
from nurture.mail import Mailer, SendResult
from nurture.models import Delivery, Enrollment, Lead
from nurture.relay import RelayPause
from nurture.sending import (
    CHUNK,
    IN_FLIGHT,
    Flow,
    TickReport,
    backoff,
    finished,
    placed,
    slept,
    uncertain_hold,
)
from nurture.settling import settle_journal
from nurture.suppression import SUPPRESSION_COLUMNS, suppression_reason
from nurture.tracking import Tokens
from nurture.triggers import came_back

__all__ = ["CHUNK", "IN_FLIGHT", "Dispatcher", "TickReport", "backoff"]

log = logging.getLogger(__name__)
# One line per batch of emails, which `nurture worker` and `nurture run` show by default.
activity = logging.getLogger("nurture.activity")


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        content: Content,
        mailer_factory: Callable[[], Mailer],
        secret_key: str,
    ):
        self.settings = settings
        self.sessions = sessions
        self.content = content
        self.mailer_factory = mailer_factory
        self.tokens = Tokens(secret_key)
        self.sender = sender_of(settings)
        self._mailer: Mailer | None = None
        # One thread owns the SMTP connection; the tick's thread renders meanwhile.
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nurture-smtp")
        # Message-IDs must differ between installations (and after a database reset):
        # derive a tag from the secret key, never reveal the key itself.
        self._id_tag = hmac.new(secret_key.encode(), b"message-id", hashlib.sha256).hexdigest()[:16]
        self.holder = new_holder()
        self.journal = Journal(journal_folder(settings), self.holder)
        self.relay = RelayPause()
        self.stopping = threading.Event()  # stop claiming and handing over
        self.give_up = threading.Event()  # the grace period is over: start nothing more
        self._unsettled = False  # a tick failed: its claims are settled by the next one
        self._deadline: float | None = None

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.settings.lease_seconds)

    @property
    def mailer(self) -> Mailer:
        if self._mailer is None:
            self._mailer = self.mailer_factory()
        return self._mailer

    def send_now(self, message: Envelope) -> SendResult:
        """Send one message outside a tick, on the thread that owns the SMTP connection."""
        return self._sender.submit(self.mailer.send, message).result()

    def stop(self, grace: float | None = None) -> None:
        """Stop claiming; what is on the wire may finish within `grace` seconds (the
        setting by default), the rest is released at once. Safe from a signal handler."""
        grace = self.settings.shutdown_grace_seconds if grace is None else grace
        self._deadline = time.monotonic() + grace
        self.stopping.set()

    def close(self) -> None:
        if self._mailer is not None:
            try:
                wait = None if self._deadline is None else max(self._deadline - time.monotonic(), 1)
                self._sender.submit(self._mailer.close).result(timeout=wait)
            except FutureTimeout:  # the SMTP thread is stuck on the wire: leave it
                log.warning("SMTP connection still busy at shutdown; not waiting for it")
            self._mailer = None
        self.journal.close()

    # --- the tick -------------------------------------------------------------

    def tick(self, now: datetime | Clock, max_batches: int | None = None) -> TickReport:
        """Process everything due, batch after batch, then return.

        `now` is when the tick began; each batch reads the clock again (a tick can send
        for minutes), so leases and records carry the time they are really made.
        """
        clock = clock_of(now)
        self.content.reload()
        with self.sessions.begin() as session:
            self.content.store_versions(session, clock())
        total = TickReport()
        self.recover(clock())
        self.journal.open()
        flow = Flow(self, clock)
        batches = 0
        said = TickReport()  # what the flow had recorded at the last activity line
        # A batch's claim is said with the answers recorded by the next claim (the sender
        # works one batch behind), so each batch is one line: "2 due, 2 sent".
        unsaid = TickReport()
        self._unsettled = True  # until the tick ends normally
        with Heartbeat(self.sessions, self.holder, self.lease, clock):
            try:
                while max_batches is None or batches < max_batches:
                    if self.stopping.is_set() or self.relay.paused(clock()):
                        break
                    report = TickReport()
                    jobs = self._claim(clock(), report)
                    batches += 1
                    total.add(report)
                    flow.deliver(jobs)
                    if report.claimed == 0:
                        break
                    said = self._say(unsaid, flow.report, said)
                    unsaid = report
            finally:
                # What SMTP took is recorded, whatever stopped the tick.
                complete = flow.drain(self._deadline)
                if complete:
                    self.journal.clear()
        # A write tried again may have left rows of this holder behind: settled next tick.
        self._unsettled = not complete or flow.blinked
        self._say(unsaid, flow.report, said)
        total.add(flow.report)
        return total

    @staticmethod
    def _say(claimed: TickReport, recorded: TickReport, said: TickReport) -> TickReport:
        """Log one concise line: this batch's claim, and the answers recorded since the
        last line (the sender works one batch behind). Returns what is said by now."""
        line = ", ".join(filter(None, (claimed.said(), recorded.since(said).said())))
        if line:
            activity.info("emails: %s", line.replace("claimed", "due"))
        return replace(recorded)

    def recover(self, now: datetime) -> Counter[str]:
        """Settle, from their journals, the `sending` deliveries of dead workers on this
        machine, and this worker's own left from a tick that failed (none in flight
        between ticks)."""
        counts: Counter[str] = Counter()
        with orphans(journal_folder(self.settings), own=self.journal.path) as found:
            for path, entries in found:
                with self.sessions.begin() as session:
                    done = settle_journal(self, session, entries, now)
                log.info("journal %s settled: %s", path.name, done)
                counts.update(done)
        entries = parse(self.journal.path.read_bytes()) if self.journal.path.exists() else Entries()
        if self._unsettled or entries.started:
            # A tick that failed (the database went away mid-batch) left claims under
            # this holder; between ticks none is in flight, so they are settled now
            # rather than held until their lease ends.
            entries.holder = self.holder
            with self.sessions.begin() as session:
                counts.update(settle_journal(self, session, entries, now))
            self.journal.clear()
            self._unsettled = False
        return counts

    # --- claiming -------------------------------------------------------------

    def _claim(self, now: datetime, report: TickReport) -> list[Job]:
        """Lock a batch of due enrollments, walk each forward, claim the emails due.

        Rows are read as plain values and written back with executemany statements:
        the ORM's unit of work cost more than the walking itself.
        """
        jobs: list[Job] = []
        with self.sessions.begin() as session:
            plan_afresh(session)
            enrollments: list[Claimed] = []
            # Highest priority first, then oldest due: one index range per priority, so
            # no batch sorts every due row (100,000 due at once) and no claim walks the
            # rows that are not due yet (millions waiting in normal running).
            for priority in priorities(session):
                wanted = self.settings.batch_size - len(enrollments)
                if wanted == 0:
                    break
                query = (
                    select(*columns_of(Enrollment, Claimed))
                    .where(*due(now), Enrollment.priority == priority)
                    .order_by(Enrollment.due_at, Enrollment.id)
                    .limit(wanted)
                )
                enrollments.extend(
                    Claimed(*row) for row in session.execute(skip_locked(session, query))
                )
            report.claimed = len(enrollments)
            if not enrollments:
                return jobs
            ids = [e.id for e in enrollments]
            lead_ids = {e.lead_id for e in enrollments}
            # Plain rows: the walk needs the profile, not objects tracked for changes.
            leads = {
                lead.id: lead
                for lead in session.execute(
                    select(*SUPPRESSION_COLUMNS, Lead.sunset_at, *PROFILE_COLUMNS).where(
                        among(session, Lead.id, lead_ids)
                    )
                )
            }
            known = select(*columns_of(Delivery, Known))
            deliveries: dict[tuple[int, str], Known] = {
                (d.enrollment_id, d.step_id): d
                for d in (
                    Known(*row)
                    for row in session.execute(
                        known.where(among(session, Delivery.enrollment_id, ids))
                    )
                )
            }
            settled: dict[int, frozenset[str]] = {}
            for (enrollment_id, step_id), delivery in deliveries.items():
                if delivery.status in SETTLED:
                    settled[enrollment_id] = settled.get(enrollment_id, frozenset()) | {step_id}
            engaged = engagement(session, ids)
            back = came_back(session, {i for i, lead in leads.items() if lead.sunset_at})
            cap_times = cap_times_of(session, lead_ids, now, self.settings.frequency_cap.days)
            sequences = {
                e.id: self.content.pinned(session, e.sequence_id, e.version) for e in enrollments
            }
            self.content.pins.load(session, {(e.sequence_id, e.version) for e in enrollments})
            events = events_of(session, enrollments, sequences)
            testing = {s.id for s in sequences.values() if s.splits()}
            assigned = assignments_of(session, lead_ids, testing)
            winners = winners_of(session, testing)
            split_rows: list[dict[str, Any]] = []  # new split assignments, one insert
            walked: list[Claimed] = []
            changed: list[dict[str, Any]] = []
            created: list[dict[str, Any]] = []
            decided: list[dict[str, Any]] = []  # for the decision log, one insert
            for enrollment in enrollments:
                lead = leads[enrollment.lead_id]
                sequence = sequences[enrollment.id]
                suppressed = suppression_reason(lead, self.settings.consent_required)
                if suppressed is None and lead.sunset_at is not None and lead.id not in back:
                    suppressed = "sunset"  # stopped for never engaging (nurture.triggers)
                if suppressed is not None:
                    leave(session, lead.id, suppressed, now, [enrollment.sequence_id])
                    report.finished += 1
                    continue
                profile = profile_of(lead)
                done = settled.get(enrollment.id, frozenset())
                facts = Facts(
                    lead=profile,
                    clicked=engaged["email_clicked"].get(enrollment.id, frozenset()),
                    opened=engaged["email_opened"].get(enrollment.id, frozenset()),
                    done=done,
                    events=tuple(
                        e for e in events.get(lead.id, ()) if e.occurred_at >= enrollment.entered_at
                    ),
                    lead_key=str(lead.id),
                    splits=assigned.get((lead.id, sequence.id), {}),
                    winners=winners.get(sequence.id, {}),
                )
                tz = resolve_timezone(profile.timezone, profile.country, sequence.timezone)
                job = self._advance(
                    enrollment,
                    sequence,
                    facts,
                    tz,
                    deliveries,
                    changed,
                    created,
                    decided,
                    split_rows,
                    cap_times,
                    now,
                    report,
                )
                walked.append(enrollment)
                if job is not None:
                    jobs.append(job)
            update_rows(session, Enrollment, [e.changes() for e in walked])
            update_rows(session, Delivery, changed)
            record(session, split_rows)
            write(session, decided)
            if created:
                returned = ("id", "enrollment_id", "step_id")
                by_key = {
                    (enrollment_id, step_id): new_id
                    for new_id, enrollment_id, step_id in insert_rows(
                        session, Delivery, created, returned
                    )
                }
                for job in jobs:
                    if job.delivery_id == 0:
                        job.delivery_id = by_key[(job.enrollment_id, job.step.id)]
        return jobs

    def _advance(
        self,
        enrollment: Claimed,
        sequence: Sequence,
        facts: Facts,
        tz: ZoneInfo,
        deliveries: dict[tuple[int, str], Known],
        changed: list[dict[str, Any]],
        created: list[dict[str, Any]],
        decided: list[dict[str, Any]],
        split_rows: list[dict[str, Any]],
        cap_times: dict[int, list[tuple[datetime, str]]],
        now: datetime,
        report: TickReport,
    ) -> Job | None:
        def decide(kind: str, reason: str, step_id: str | None) -> None:
            decision = Decision(kind, reason, sequence.id, step_id)
            decided.append(as_row(enrollment.lead_id, decision, now))

        position = Position(enrollment.step_id, enrollment.step_started_at)
        here = deliveries.get((enrollment.id, enrollment.step_id))
        if here is not None and here.status in SETTLED:
            # Settled while the lead waited here (a journal, an operator, the policy):
            # the next steps count from when it was sent.
            current = sequence.step(enrollment.step_id)
            if isinstance(current, EmailStep | SplitStep):
                position = after_send(current, here.sent_at or here.updated_at)
        holidays = window_holidays(sequence.window, facts.lead.country, (now.year, now.year + 1))
        for _ in range(len(sequence.steps) + 2):
            result = walk(sequence, position, facts, now, tz, holidays)
            decided.extend(as_row(enrollment.lead_id, d, now) for d in result.decisions)
            if result.assigned:  # recorded with the walk, in the same transaction
                facts = replace(facts, splits={**facts.splits, **result.assigned})
                split_rows.extend(
                    {
                        "lead_id": enrollment.lead_id,
                        "enrollment_id": enrollment.id,
                        "sequence_id": sequence.id,
                        "split_id": split_id,
                        "variant": variant,
                        "assigned_at": now,
                    }
                    for split_id, variant in result.assigned.items()
                )
            outcome = result.outcome
            if isinstance(outcome, Finish):
                _apply(enrollment, finished(outcome, now))
                report.finished += 1
                return None
            if isinstance(outcome, Sleep):
                _apply(enrollment, slept(outcome))
                decide(WAITING, waiting(outcome), outcome.position.step_id)
                return None
            assert isinstance(outcome, SendEmail)
            step = outcome.step
            _apply(enrollment, placed(outcome.position))
            delivery = deliveries.get((enrollment.id, step.id))
            if (
                delivery is not None
                and delivery.status in ("claimed", "sending")
                and delivery.claimed_by is not None
                and delivery.lease_until is not None
                and delivery.lease_until > now
            ):
                # Its holder (maybe this worker, a batch ago) is alive: its heartbeat renews
                # the lease. Not ours to take.
                enrollment.due_at = delivery.lease_until
                report.held += 1
                return None
            if delivery is not None and delivery.status == "sending":
                # Handed to SMTP by a worker that is gone, whose journal is not on this
                # machine: maybe delivered.
                delivery.status = "uncertain"
                delivery.updated_at = now
                changed.append(
                    {
                        "id": delivery.id,
                        "status": "uncertain",
                        "lease_until": None,
                        "last_error": f"worker {delivery.claimed_by} stopped during the SMTP"
                        " hand-off and its journal is not on this machine; not resent",
                        "updated_at": now,
                    }
                )
                report.uncertain += 1
            if delivery is not None and delivery.status == "uncertain":
                settled = self._resolve_uncertain(delivery, now, changed)
                if settled is None:
                    _apply(enrollment, uncertain_hold(self, delivery.id, delivery.updated_at))
                    report.held += 1
                    return None
                facts = settle(facts, step.id)
                position = after_send(step, settled)
                continue
            if delivery is not None and delivery.status == "failed":
                enrollment.due_at = None
                enrollment.note = f"blocked: delivery {delivery.id} failed ({delivery.last_error})"
                return None
            if (
                delivery is not None
                and delivery.status == "retry"
                and delivery.next_attempt_at is not None
                and delivery.next_attempt_at > now
            ):
                enrollment.due_at = delivery.next_attempt_at
                return None
            opening = next_window_opening(now, sequence.window, tz, holidays)
            if opening > now:
                enrollment.due_at = opening
                enrollment.note = "deferred: outside the send window"
                closed = "a public holiday" if now.astimezone(tz).date() in holidays else None
                why = closed or "outside the send window"
                decide(DEFERRED, f"email {step.template} waits until {opening:%Y-%m-%d %H:%M} "
                       f"UTC: {why} ({tz.key})", step.id)  # fmt: skip
                report.deferred += 1
                return None
            cap = self.settings.frequency_cap
            used = cap_times[enrollment.lead_id]
            release = cap_release([at for at, _ in used], cap.emails, cap.days, now)
            if release is not None:
                enrollment.due_at = release
                enrollment.note = "deferred: frequency cap"
                by = ", ".join(sorted({sequence_id for _, sequence_id in used}))
                decide(DEFERRED, f"email {step.template} waits until {release:%Y-%m-%d %H:%M} "
                       f"UTC: frequency cap of {cap.emails} emails in {cap.days} days reached "
                       f"(emails from {by})", step.id)  # fmt: skip
                report.deferred += 1
                return None
            lease = now + self.lease
            claim = {
                "status": "claimed",
                "lease_until": lease,
                "claimed_by": self.holder,
                "updated_at": now,
            }
            if delivery is None:
                message_id = make_message_id(
                    f"{self._id_tag}/{enrollment.id}/{step.id}/{enrollment.entered_at}",
                    self.settings.message_id_domain,
                )
                created.append(
                    {
                        "enrollment_id": enrollment.id,
                        "lead_id": enrollment.lead_id,
                        "sequence_id": sequence.id,
                        "version": sequence.version,
                        "step_id": step.id,
                        "template": step.template,
                        "kind": step.kind,
                        "attempts": 0,
                        "message_id": message_id,
                        "to_email": facts.lead.email,
                        "created_at": now,
                        "links": [],
                        **claim,
                    }
                )
                delivery_id, attempts = 0, 0  # the id exists once the batch is inserted
            else:
                changed.append({"id": delivery.id, **claim})
                delivery_id, attempts, message_id = (
                    delivery.id,
                    delivery.attempts,
                    delivery.message_id,
                )
            enrollment.due_at = lease  # nobody else picks it up while we hold the lease
            enrollment.note = None
            cap_times[enrollment.lead_id].append((now, sequence.id))
            return Job(
                delivery_id=delivery_id,
                enrollment_id=enrollment.id,
                lead_id=enrollment.lead_id,
                sequence=sequence,
                step=step,
                facts=facts,
                tz=tz,
                message_id=message_id,
                attempts=attempts,
            )
        raise RuntimeError(f"enrollment {enrollment.id}: no progress")  # pragma: no cover

    def _resolve_uncertain(
        self, delivery: Known, now: datetime, changed: list[dict[str, Any]]
    ) -> datetime | None:
        """Apply the uncertain policy once its time has come: when the email counts as
        sent (or skipped), else None (the lead keeps waiting)."""
        policy = self.settings.uncertain_policy
        if policy.after is None or delivery.updated_at + policy.after > now:
            return None
        status = "sent" if policy.action == "sent" else "skipped"
        note = f"{delivery.last_error or 'uncertain'}; {status} by policy ({policy})"
        changed.append({"id": delivery.id, "status": status, "last_error": note, "updated_at": now})
        delivery.status = status
        return delivery.sent_at or delivery.updated_at

    # --- delivering -------------------------------------------------------------

    def _deliver(self, jobs: list[Job], now: datetime | Clock, report: TickReport) -> None:
        """Render, hand over, send and record these jobs (the tick does it batch by batch)."""
        flow = Flow(self, clock_of(now))
        try:
            flow.deliver(jobs)
        finally:
            flow.drain(self._deadline)
        report.add(flow.report)

    def _hand_over(
        self, session: Session, chunk: list[Job], now: datetime, report: TickReport
    ) -> list[Job]:
        from nurture.sending import hand_over

        return hand_over(self, session, chunk, now, report)

    def _render(self, job: Job, now: datetime) -> None:
        compose(self, job, now)


def _apply(enrollment: Claimed, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(enrollment, name, value)
