"""The dispatcher: claim what is due, walk each lead forward, send, record.

Delivery states (one row per enrollment and email step, unique):

    claimed --(chunk handed to SMTP)--> sending --> sent
       |                                   |------> retry (4xx / network before DATA)
       |                                   |------> failed (5xx, or retries exhausted)
       |                                   '------> uncertain (connection lost after DATA)
       '--(lead unsubscribed meanwhile)--> skipped

A worker that dies leaves `claimed` rows (never handed over: claimed again once the
lease ends) or `sending` rows (maybe delivered: marked uncertain, never resent blindly).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import random
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from nurture.config import Settings
from nurture.content import Content
from nurture.core.cap import cap_release
from nurture.core.journey import (
    EventFact,
    Facts,
    Finish,
    Position,
    SendEmail,
    Sleep,
    after_send,
    settle,
    walk,
)
from nurture.core.links import rewrite
from nurture.core.message import Envelope, MessageError, OutgoingEmail, build, make_message_id
from nurture.core.rendering import EmailContext, RenderError, Sender
from nurture.core.sequences import BranchStep, EmailStep, EventSeen, Sequence, WaitStep
from nurture.core.timing import next_window_opening, resolve_timezone, window_holidays
from nurture.db import among, insert_rows, plan_afresh, skip_locked, update_rows
from nurture.enrollment import leave
from nurture.leads import PROFILE_COLUMNS, profile_of
from nurture.mail import Mailer, Rejected, RetryLater, SendResult, Sent, Uncertain
from nurture.models import Consent, Delivery, Enrollment, Event, Lead
from nurture.tracking import Tokens, click_url, open_url, unsubscribe_url

log = logging.getLogger(__name__)

SETTLED = ("sent", "uncertain", "skipped")
COUNTED_BY_CAP = ("claimed", "sending", "sent", "uncertain")
CHUNK = 25  # messages handed to SMTP per commit: bounds what a crash can leave uncertain
IN_FLIGHT = 2  # chunks `sending` at once: one on the wire, the next one waiting for it


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

    def add(self, other: TickReport) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def __str__(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))


@dataclass
class Job:
    """One email to render and hand to SMTP."""

    delivery_id: int
    enrollment_id: int
    lead_id: int
    sequence: Sequence
    step: EmailStep
    facts: Facts
    tz: ZoneInfo
    message_id: str
    attempts: int
    rendered: OutgoingEmail | None = None
    message: Envelope | None = None
    links: list[str] = field(default_factory=list)
    honeypot: int | None = None
    error: str | None = None
    events: list[str] = field(default_factory=list)


@dataclass
class Claimed:
    """An enrollment as the claim reads it (fields named and ordered as the columns read);
    what `_advance` changes is written in one go."""

    id: int
    lead_id: int
    sequence_id: str
    version: str
    status: str
    step_id: str
    step_started_at: datetime
    due_at: datetime | None
    waiting_for: str | None
    note: str | None
    entered_at: datetime
    left_at: datetime | None
    exit_reason: str | None

    WRITTEN = (  # what a walk may change
        "status",
        "step_id",
        "step_started_at",
        "due_at",
        "waiting_for",
        "note",
        "left_at",
        "exit_reason",
    )

    def changes(self) -> dict[str, Any]:
        return {"id": self.id, **{name: getattr(self, name) for name in self.WRITTEN}}


@dataclass
class Known:
    """A delivery already recorded for a claimed enrollment's step."""

    id: int
    enrollment_id: int
    step_id: str
    status: str
    attempts: int
    message_id: str
    last_error: str | None
    next_attempt_at: datetime | None


def _selected(model: type[Any], row: type[Any]) -> list[Any]:
    """The model's columns named like the row type's fields, in their order."""
    return [getattr(model, f.name) for f in fields(row)]


def backoff(attempts: int) -> timedelta:
    """1 min, 2, 4 ... capped at 4 hours, with a little jitter so retries spread out."""
    base = min(60 * 2 ** max(attempts - 1, 0), 4 * 3600)
    return timedelta(seconds=base * random.uniform(0.9, 1.1))


def _needs_events(sequence: Sequence) -> bool:
    for step in sequence.steps:
        if isinstance(step, WaitStep) and step.until_event:
            return True
        if isinstance(step, BranchStep) and any(
            isinstance(rule.condition, EventSeen) for rule in step.rules
        ):
            return True
    return False


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

    @property
    def mailer(self) -> Mailer:
        if self._mailer is None:
            self._mailer = self.mailer_factory()
        return self._mailer

    def send_now(self, message: Envelope) -> SendResult:
        """Send one message outside a tick, on the thread that owns the SMTP connection."""
        return self._sender.submit(self.mailer.send, message).result()

    def close(self) -> None:
        if self._mailer is not None:
            self._sender.submit(self._mailer.close).result()
            self._mailer = None

    # --- the tick -------------------------------------------------------------

    def tick(self, now: datetime, max_batches: int | None = None) -> TickReport:
        """Process everything due at `now`, batch after batch, then return."""
        self.content.reload()
        with self.sessions.begin() as session:
            self.content.store_versions(session, now)
        total = TickReport()
        flow = _Flow(self, now)
        batches = 0
        try:
            while max_batches is None or batches < max_batches:
                report = TickReport()
                jobs = self._claim(now, report)
                batches += 1
                total.add(report)
                flow.deliver(jobs)
                if report.claimed == 0:
                    break
        finally:
            flow.drain()  # what SMTP took is recorded, whatever stopped the tick
        total.add(flow.report)
        return total

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
                    select(*_selected(Enrollment, Claimed))
                    .where(*_due(now), Enrollment.priority == priority)
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
                    select(*SUPPRESSION_COLUMNS, *PROFILE_COLUMNS).where(
                        among(session, Lead.id, lead_ids)
                    )
                )
            }
            known = select(*_selected(Delivery, Known))
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
            engaged = self._engagement(session, ids)
            cap_times = self._cap_times(session, lead_ids, now)
            sequences = {
                e.id: self.content.pinned(session, e.sequence_id, e.version) for e in enrollments
            }
            events = self._events(session, enrollments, sequences)
            walked: list[Claimed] = []
            changed: list[dict[str, Any]] = []
            created: list[dict[str, Any]] = []
            for enrollment in enrollments:
                lead = leads[enrollment.lead_id]
                sequence = sequences[enrollment.id]
                suppressed = _suppression(lead, self.settings.consent_required)
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
                    cap_times,
                    now,
                    report,
                )
                walked.append(enrollment)
                if job is not None:
                    jobs.append(job)
            update_rows(session, Enrollment, [e.changes() for e in walked])
            update_rows(session, Delivery, changed)
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
        cap_times: dict[int, list[datetime]],
        now: datetime,
        report: TickReport,
    ) -> Job | None:
        position = Position(enrollment.step_id, enrollment.step_started_at)
        holidays = window_holidays(sequence.window, facts.lead.country, (now.year, now.year + 1))
        for _ in range(len(sequence.steps) + 2):
            result = walk(sequence, position, facts, now, tz, holidays)
            outcome = result.outcome
            if isinstance(outcome, Finish):
                _apply(enrollment, _finished(outcome, now))
                report.finished += 1
                return None
            if isinstance(outcome, Sleep):
                _apply(enrollment, _slept(outcome))
                return None
            assert isinstance(outcome, SendEmail)
            step = outcome.step
            _apply(enrollment, _placed(outcome.position))
            delivery = deliveries.get((enrollment.id, step.id))
            if delivery is not None and delivery.status == "sending":
                # Handed to SMTP by a worker that died before recording the answer.
                delivery.status = "uncertain"
                changed.append(
                    {
                        "id": delivery.id,
                        "status": "uncertain",
                        "last_error": "worker stopped during the SMTP hand-off; not resent",
                        "updated_at": now,
                    }
                )
                report.uncertain += 1
                facts = settle(facts, step.id)
                position = after_send(step, now)
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
                report.deferred += 1
                return None
            cap = self.settings.frequency_cap
            release = cap_release(cap_times[enrollment.lead_id], cap.emails, cap.days, now)
            if release is not None:
                enrollment.due_at = release
                enrollment.note = "deferred: frequency cap"
                report.deferred += 1
                return None
            lease = now + timedelta(seconds=self.settings.lease_seconds)
            claim = {"status": "claimed", "lease_until": lease, "updated_at": now}
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
            cap_times[enrollment.lead_id].append(now)
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

    def _engagement(self, session: Session, ids: list[int]) -> dict[str, dict[int, frozenset[str]]]:
        found: dict[str, dict[int, set[str]]] = {"email_clicked": {}, "email_opened": {}}
        rows = session.execute(
            select(Delivery.enrollment_id, Delivery.step_id, Event.name)
            .join(Event, Event.delivery_id == Delivery.id)
            .where(
                among(session, Delivery.enrollment_id, ids),
                Event.name.in_(("email_clicked", "email_opened")),
                # Branches follow people: scanner clicks and machine opens don't count.
                Event.classification == "human",
            )
        )
        for enrollment_id, step_id, name in rows:
            found[name].setdefault(enrollment_id, set()).add(step_id)
        return {name: {k: frozenset(v) for k, v in by.items()} for name, by in found.items()}

    def _cap_times(
        self, session: Session, lead_ids: Iterable[int], now: datetime
    ) -> dict[int, list[datetime]]:
        since = now - timedelta(days=self.settings.frequency_cap.days)
        moment = func.coalesce(Delivery.sent_at, Delivery.updated_at)
        times: dict[int, list[datetime]] = defaultdict(list)
        rows = session.execute(
            select(Delivery.lead_id, Delivery.sent_at, Delivery.updated_at).where(
                among(session, Delivery.lead_id, lead_ids),
                Delivery.status.in_(COUNTED_BY_CAP),
                moment > since,
            )
        )
        for lead_id, sent_at, updated_at in rows:
            times[lead_id].append(sent_at or updated_at)
        return times

    def _events(
        self, session: Session, enrollments: list[Claimed], sequences: dict[int, Sequence]
    ) -> dict[int, list[EventFact]]:
        wanted = [e for e in enrollments if _needs_events(sequences[e.id])]
        if not wanted:
            return {}
        since = min(e.entered_at for e in wanted)
        found: dict[int, list[EventFact]] = defaultdict(list)
        rows = session.scalars(
            select(Event).where(
                among(session, Event.lead_id, {e.lead_id for e in wanted}),
                Event.occurred_at >= since,
            )
        )
        for event in rows:
            found[event.lead_id].append(
                EventFact(event.name, event.occurred_at, dict(event.properties or {}))
            )
        return found

    # --- delivering -------------------------------------------------------------

    def _deliver(self, jobs: list[Job], now: datetime, report: TickReport) -> None:
        """Render, hand over, send and record these jobs (the tick does it batch by batch)."""
        flow = _Flow(self, now)
        try:
            flow.deliver(jobs)
        finally:
            flow.drain()
        report.add(flow.report)

    def _render(self, job: Job, now: datetime) -> None:
        lead = job.facts.lead
        base = self.settings.base_url
        link = unsubscribe_url(base, self.tokens.unsubscribe(job.delivery_id))
        context = EmailContext(
            lead=lead,
            rep=lead.rep,
            sender=self.sender,
            unsubscribe_url=link,
            sequence=job.sequence.id,
            step=job.step.id,
            subject_override=job.step.subject,
        )
        try:
            rendered = self.content.templates.render(job.step.template, lead.locale, context)
        except RenderError as error:
            job.error = f"render error: {error}"
            return
        click_token = self.tokens.click(job.delivery_id)
        tracked = rewrite(
            rendered.html,
            rendered.text,
            lambda index: click_url(base, click_token, index),
            open_url(base, self.tokens.open(job.delivery_id)),
            self.settings.sender_website,  # the honeypot's target: harmless if followed
            keep=lambda url: url.startswith(f"{base}/u/"),
        )
        job.links = list(tracked.links)
        job.honeypot = tracked.honeypot_index
        full_name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or None
        job.rendered = OutgoingEmail(
            message_id=job.message_id,
            from_name=self.settings.sender_name,
            from_email=self.settings.sender_email,
            to_name=full_name,
            to_email=lead.email,
            reply_to=(lead.rep.email if lead.rep else None) or self.settings.reply_to,
            subject=rendered.subject,
            html=tracked.html,
            text=tracked.text,
            list_id=f"{job.sequence.id}.{self.settings.list_id_domain}",
            list_name=job.sequence.name,
            unsubscribe_url=link,
            unsubscribe_mailto=self.settings.unsubscribe_mailto,
            date=now,
            headers={"X-Nurture-Delivery": str(job.delivery_id)},
        )
        try:
            job.message = build(job.rendered)
        except MessageError as error:  # e.g. an address SMTP could not carry
            job.rendered = None
            job.error = f"message error: {error}"

    def _hand_over(
        self, session: Session, chunk: list[Job], now: datetime, report: TickReport
    ) -> list[Job]:
        """Re-check suppression, then mark the chunk `sending` just before SMTP sees it."""
        ready: list[Job] = []
        lead_ids = {job.lead_id for job in chunk}
        required = self.settings.consent_required
        suppressed = {
            lead.id: reason
            for lead in session.execute(
                select(*SUPPRESSION_COLUMNS).where(among(session, Lead.id, lead_ids))
            )
            if (reason := _suppression(lead, required)) is not None
        }
        for job in chunk:
            if job.lead_id in suppressed:
                reason = suppressed[job.lead_id] or "suppressed"
                session.execute(
                    update(Delivery)
                    .where(Delivery.id == job.delivery_id)
                    .values(status="skipped", last_error=reason, updated_at=now)
                )
                leave(session, job.lead_id, reason, now)
                report.skipped += 1
                job.error = "skipped"
            elif job.rendered is not None:
                ready.append(job)
        if ready:
            # One row version per delivery: the state, and the links stored before
            # the email leaves (a click may come at once). The lease keeps
            # `attempts` as the claim read it.
            update_rows(
                session,
                Delivery,
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
            )
        return ready

    def _record(
        self,
        session: Session,
        chunk: list[Job],
        results: dict[int, SendResult],
        now: datetime,
        report: TickReport,
    ) -> None:
        """Write what SMTP answered and where each lead goes next.

        Two executemany UPDATEs for the whole chunk: loading the rows as objects to
        change a few columns cost a fifth of the engine's time.
        """
        delivery_rows: list[dict[str, Any]] = []
        enrollment_rows: list[dict[str, Any]] = []
        bounced: list[Job] = []
        for job in chunk:
            if job.error == "skipped":
                continue
            delivery: dict[str, Any] = {"id": job.delivery_id, "updated_at": now}
            enrollment: dict[str, Any] = {"id": job.enrollment_id}
            if job.rendered is not None:
                delivery["subject"] = job.rendered.subject[:500]
            result = results.get(job.delivery_id)
            attempts = job.attempts + 1  # counted when the chunk was handed over
            if result is None:  # render error: nothing left the building
                delivery.update(status="failed", last_error=job.error)
                enrollment.update(
                    due_at=None, note=f"blocked: delivery {job.delivery_id} {job.error}"
                )
                report.failed += 1
            elif isinstance(result, Sent | Uncertain):
                delivery.update(status="sent", sent_at=now, lease_until=None)
                if isinstance(result, Uncertain):
                    delivery.update(status="uncertain", last_error=result.reason)
                    report.uncertain += 1
                else:
                    report.sent += 1
                enrollment.update(self._continue(job, now, report))
            elif isinstance(result, RetryLater) and attempts < self.settings.max_attempts:
                retry_at = now + backoff(attempts)
                delivery.update(status="retry", last_error=result.reason, next_attempt_at=retry_at)
                enrollment.update(due_at=retry_at)
                report.retried += 1
            else:
                delivery.update(
                    status="failed",
                    last_error=f"{result.code} {result.reason}"
                    if isinstance(result, Rejected)
                    else f"gave up after {attempts} attempts: {result.reason}",
                )
                report.failed += 1
                if isinstance(result, Rejected) and result.bounce:
                    bounced.append(job)
                else:
                    enrollment.update(
                        due_at=None, note=f"blocked: delivery {job.delivery_id} failed"
                    )
            delivery_rows.append(delivery)
            if len(enrollment) > 1:
                enrollment_rows.append(enrollment)
        update_rows(session, Delivery, delivery_rows)
        update_rows(session, Enrollment, enrollment_rows)
        for job in bounced:
            lead = session.get(Lead, job.lead_id)
            assert lead is not None
            lead.bounced_at = now
            leave(session, job.lead_id, "bounced", now)

    def _continue(self, job: Job, now: datetime, report: TickReport) -> dict[str, Any]:
        """Walk on after a settled email, so waits start counting from the send."""
        facts = settle(job.facts, job.step.id)
        holidays = window_holidays(
            job.sequence.window, job.facts.lead.country, (now.year, now.year + 1)
        )
        position = after_send(job.step, now)
        outcome = walk(job.sequence, position, facts, now, job.tz, holidays).outcome
        if isinstance(outcome, Finish):
            report.finished += 1
            return _finished(outcome, now)
        if isinstance(outcome, Sleep):
            return _slept(outcome)
        # Another email right away: the next batch takes it.
        return {**_placed(outcome.position), "due_at": now}


class _Flow:
    """Keeps the SMTP connection busy: the tick's thread claims and renders the next
    chunks while the sender thread carries this one.

    A chunk is marked `sending` (suppression re-checked) just before it joins the
    sender's queue, and at most `IN_FLIGHT` chunks are ever `sending`: a crash leaves
    at most `IN_FLIGHT * CHUNK` deliveries uncertain. Waiting for the previous chunk
    before handing over the next, as this once did, left SMTP idle for a third of the
    time (every record, hand-over, claim and first render).
    """

    def __init__(self, dispatcher: Dispatcher, now: datetime):
        self.dispatcher = dispatcher
        self.now = now
        self.report = TickReport()
        self.pending: deque[tuple[list[Job], Future[dict[int, SendResult]]]] = deque()

    def deliver(self, jobs: list[Job]) -> None:
        """Render chunk after chunk, each handed to the sender as soon as it is ready."""
        for start in range(0, len(jobs), CHUNK):
            chunk = jobs[start : start + CHUNK]
            for job in chunk:
                self.dispatcher._render(job, self.now)
            self.send(chunk)

    def send(self, chunk: list[Job]) -> None:
        """Record what SMTP has finished and hand this chunk over, in one transaction
        (one commit per chunk instead of two)."""
        settled = self._settled(keep=IN_FLIGHT - 1)
        with self.dispatcher.sessions.begin() as session:
            self._record(session, settled)
            ready = self.dispatcher._hand_over(session, chunk, self.now, self.report)
        self.pending.append((chunk, self.dispatcher._sender.submit(self._send_all, ready)))

    def drain(self) -> None:
        settled = self._settled(keep=0)
        if settled:
            with self.dispatcher.sessions.begin() as session:
                self._record(session, settled)

    def _settled(self, keep: int) -> list[tuple[list[Job], dict[int, SendResult]]]:
        """The chunks SMTP is done with, oldest first: all that have finished, and as
        many more (waiting for them) as leave at most `keep` pending."""
        settled = []
        while self.pending and (len(self.pending) > keep or self.pending[0][1].done()):
            chunk, sending = self.pending[0]
            settled.append((chunk, sending.result()))
            self.pending.popleft()
        return settled

    def _record(
        self, session: Session, settled: list[tuple[list[Job], dict[int, SendResult]]]
    ) -> None:
        for chunk, results in settled:
            self.dispatcher._record(session, chunk, results, self.now, self.report)

    def _send_all(self, ready: list[Job]) -> dict[int, SendResult]:
        mailer = self.dispatcher.mailer
        return {job.delivery_id: mailer.send(job.message) for job in ready if job.message}


def sender_of(settings: Settings) -> Sender:
    """Who the emails come from, as the templates' footer shows it."""
    return Sender(
        name=settings.sender_name,
        company=settings.sender_company,
        email=settings.sender_email,
        postal_address=settings.postal_address,
        website=settings.sender_website,
    )


def _placed(position: Position) -> dict[str, Any]:
    return {
        "step_id": position.step_id,
        "step_started_at": position.started_at,
        "waiting_for": None,
    }


def _slept(outcome: Sleep) -> dict[str, Any]:
    return {
        **_placed(outcome.position),
        "due_at": outcome.until,
        "waiting_for": outcome.waiting_for,
        "note": None,
    }


def _finished(outcome: Finish, now: datetime) -> dict[str, Any]:
    return {
        **_placed(outcome.position),
        "status": "completed",
        "due_at": None,
        "left_at": now,
        "exit_reason": outcome.reason,
    }


def _apply(enrollment: Claimed, values: dict[str, Any]) -> None:
    for name, value in values.items():
        setattr(enrollment, name, value)


class Suppressible(Protocol):
    unsubscribed_at: datetime | None
    bounced_at: datetime | None
    stage: str
    category: str | None
    consent: bool | None  # the latest marketing decision, if any


# The latest marketing consent decision, read with the lead (one index probe each).
LATEST_CONSENT = (
    select(Consent.granted)
    .where(Consent.lead_id == Lead.id, Consent.purpose == "marketing")
    .order_by(Consent.at.desc(), Consent.id.desc())
    .limit(1)
    .scalar_subquery()
    .label("consent")
)

# What `_suppression` reads, when the rest of the lead is not needed.
SUPPRESSION_COLUMNS = (
    Lead.id,
    Lead.unsubscribed_at,
    Lead.bounced_at,
    Lead.stage,
    Lead.category,
    LATEST_CONSENT,
)


def _suppression(lead: Suppressible, consent_required: bool) -> str | None:
    """Why this lead must not be mailed now, or None."""
    consent = lead.consent
    if lead.unsubscribed_at is not None:
        return "unsubscribed"
    if lead.bounced_at is not None:
        return "bounced"
    if lead.stage == "disqualified" or lead.category == "no_interest":
        return "disqualified"
    if consent is False:
        return "consent withdrawn"
    if consent_required and consent is not True:
        return "no consent"
    return None


def _due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (Enrollment.status == "active", Enrollment.due_at <= now)


def priorities(session: Session) -> list[int]:
    """The priorities active enrollments hold, highest first.

    A loose index scan of `ix_enrollments_claim`: one probe per priority, however many
    enrollments each holds (sequences set a handful of priorities).
    """
    found: list[int] = []
    while True:
        query = select(Enrollment.priority).where(Enrollment.status == "active")
        if found:
            query = query.where(Enrollment.priority < found[-1])
        priority = session.scalar(query.order_by(Enrollment.priority.desc()).limit(1))
        if priority is None:
            return found
        found.append(priority)


def due_count(session: Session, now: datetime) -> int:
    """Enrollments due at `now`: counted per priority, each an index range."""
    return sum(
        session.scalar(
            select(func.count())
            .select_from(Enrollment)
            .where(*_due(now), Enrollment.priority == priority)
        )
        or 0
        for priority in priorities(session)
    )


def stuck(session: Session) -> list[Delivery]:
    """Deliveries an operator must look at."""
    return list(
        session.scalars(
            select(Delivery)
            .where(or_(Delivery.status == "uncertain", Delivery.status == "failed"))
            .order_by(Delivery.updated_at.desc())
        )
    )
