"""The CRM outbox relay: deliver `crm_pushes` rows as signed webhooks, retry, dead-letter.

A row is written by `enqueue` in the same transaction as the change it reports, so
nothing is pushed that did not happen and nothing that happened is lost. A worker
tick calls `CrmPusher.deliver_due(clock)` with the `Clock` it started at its `now`:

    pending --2xx--------------------------------------------> delivered
       |----3xx, other 4xx, 5xx, timeout, refused -----------> pending, backed off
       |----429 / 503 with Retry-After ----------------------> pending, at that time
       |----no 2xx after 10 attempts (about three days) -----> dead
       '----410 Gone ----------------------------------------> dead, endpoint disabled
    dead --replay--> pending (same webhook-id, attempts from zero)

Every attempt of a row carries the same `webhook-id` and the same body bytes: the
receiver deduplicates on the id. Each attempt is signed with the time it leaves, not
the tick's start: a tick whose emails took minutes would otherwise send timestamps a
receiver refuses as too old. Delivery is at least once (a worker killed after the
POST but before recording it sends again when its lease ends). The contract for the
receiving side is in docs/crm.md.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import json
import logging
import math
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks.webhooks import Webhook

from nurture import __version__
from nurture.clock import Clock
from nurture.config import ConfigError, Settings
from nurture.db import skip_locked
from nurture.models import CrmPush, EndpointState
from nurture.webhook_transport import (
    Response,
    Transport,
    TransportError,
    UrllibTransport,
)

log = logging.getLogger(__name__)

# Standard Webhooks' example schedule: the wait after each failed attempt. Ten
# attempts over about 75 hours, so a receiver down for a long weekend loses nothing.
RETRY_DELAYS: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_RETRY_AFTER = timedelta(hours=24)  # a receiver may not park a message for longer
TIMEOUT = 15.0  # seconds; Standard Webhooks expects receivers to answer within 15-30 s
CHUNK = 10  # rows claimed per transaction: what one crashed worker can hold up
BUDGET = 60.0  # seconds of sending per call, so `webhook-timestamp` stays fresh
SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
MIN_SECRET_BYTES = 24  # 192 bits, the Standard Webhooks minimum
USER_AGENT = f"nurture/{__version__} (Standard Webhooks)"
THROTTLED = (429, 502, 503, 504)  # the receiver is overloaded: stop for this call
SECRET_VARIABLE = "NURTURE_CRM_WEBHOOK_SECRET"  # noqa: S105 - a variable name
URL_VARIABLE = "NURTURE_CRM_WEBHOOK_URL"


# --- signing -------------------------------------------------------------------------


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks form: `whsec_` + base64 of 32 bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def check_secret(secret: str) -> str:
    """The secret unchanged if usable, else ValueError saying what is wrong.

    The form is `whsec_` + standard base64 (the prefix may be left out), decoding to at
    least 24 bytes. Checked strictly: the `standardwebhooks` package would silently
    drop characters outside the alphabet (url-safe `-` and `_`, say) and sign with
    another key than the receiver's.
    """
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            'expected "whsec_" followed by standard base64 (A-Z, a-z, 0-9, +, /);'
            " generate one with `nurture crm secret`"
        ) from None
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(
            f"the key is {len(key)} bytes, expected at least {MIN_SECRET_BYTES};"
            " generate one with `nurture crm secret`"
        )
    return secret.strip()


def signed_headers(signer: Webhook, webhook_id: str, at: datetime, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one attempt made at `at`."""
    stamp = at.astimezone(UTC)
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(math.floor(stamp.timestamp())),
        "webhook-signature": signer.sign(webhook_id, stamp, body.decode("utf-8")),
    }


def body_of(payload: Mapping[str, Any]) -> bytes:
    """The exact bytes sent: compact, sorted keys (PostgreSQL's JSONB keeps no key
    order, so sorting makes every attempt identical), ASCII only (so a receiver that
    verifies text rather than bytes still computes the same signature)."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True, allow_nan=False).encode(
        "ascii"
    )


# --- decisions (no database, no network) ------------------------------------------------


def retry_delay(attempts: int) -> timedelta | None:
    """The wait after the `attempts`-th failed attempt, with ±10 % jitter; None: give up."""
    if attempts >= MAX_ATTEMPTS:
        return None
    base = RETRY_DELAYS[max(attempts, 1) - 1]
    # Jitter spreads the retries of a burst of pushes that failed together.
    return base * random.uniform(0.9, 1.1)


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """When a `Retry-After` header (seconds or an HTTP date) allows the next attempt.

    None when absent or unreadable; a past date means now; capped at 24 hours.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        seconds = min(int(text), int(MAX_RETRY_AFTER.total_seconds()))
        return now + timedelta(seconds=seconds)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)  # HTTP dates are always GMT
    return min(max(when, now), now + MAX_RETRY_AFTER)


@dataclass(frozen=True)
class Outcome:
    """What one attempt leads to.

    `stop` ends sending to the endpoint for this call (unreachable, throttled, gone):
    the rest of the claimed rows are put back untried.
    """

    status: str  # delivered | pending | dead
    last_status: int | None
    error: str | None = None
    next_attempt_at: datetime | None = None
    disable: bool = False
    stop: bool = False


def judge(answer: Response | TransportError, attempts: int, now: datetime) -> Outcome:
    """The outcome of the `attempts`-th attempt, made at `now`, given the answer."""
    if isinstance(answer, TransportError):
        return _failed(None, str(answer), attempts, now, stop=True)
    code = answer.status
    if 200 <= code < 300:
        return Outcome("delivered", code)
    if code == 410:
        return Outcome(
            "dead",
            code,
            "HTTP 410 Gone: the receiver asked never to be called again; the endpoint is"
            " disabled until `nurture crm enable`",
            disable=True,
            stop=True,
        )
    if 300 <= code < 400:
        target = answer.headers.get("location") or "no Location"
        error = (
            f"HTTP {code}: redirect to {target} not followed;"
            f" set {URL_VARIABLE} to the address that answers"
        )
        return _failed(code, error, attempts, now)
    error = f"HTTP {code}" + (f": {_excerpt(answer.body)}" if answer.body.strip() else "")
    throttled = code in THROTTLED
    later = retry_after(answer.headers.get("retry-after"), now) if code in (429, 503) else None
    if later is not None and attempts < MAX_ATTEMPTS:
        error += f" (Retry-After: {answer.headers['retry-after']})"
        return Outcome("pending", code, error, next_attempt_at=later, stop=throttled)
    return _failed(code, error, attempts, now, stop=throttled)


def _failed(
    code: int | None, error: str, attempts: int, now: datetime, stop: bool = False
) -> Outcome:
    delay = retry_delay(attempts)
    if delay is None:
        return Outcome("dead", code, f"{error} (gave up after {attempts} attempts)", stop=stop)
    return Outcome("pending", code, error, next_attempt_at=now + delay, stop=stop)


def _excerpt(body: bytes, limit: int = 200) -> str:
    text = " ".join(body.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the outbox --------------------------------------------------------------------------


def new_webhook_id() -> str:
    """`msg_` + 32 random url-safe characters: unguessable, and never a `.` (the signed
    content is `id.timestamp.body`)."""
    return "msg_" + secrets.token_urlsafe(24)


def push_values(
    kind: str, payload: Mapping[str, Any], now: datetime, promotion_id: int | None = None
) -> dict[str, Any]:
    """The outbox row of a push, as `enqueue` adds it (a batch writes many at once)."""
    if now.tzinfo is None:
        raise ValueError(f"naive datetime refused: {now!r}")
    envelope = {
        "type": kind,
        "timestamp": now.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "data": dict(payload),
    }
    try:
        body_of(envelope)
    except (TypeError, ValueError) as error:
        raise ValueError(f"CRM push {kind!r}: the payload is not plain JSON ({error})") from None
    return {
        "promotion_id": promotion_id,
        "kind": kind,
        "webhook_id": new_webhook_id(),
        "payload": envelope,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


def enqueue(
    session: Session,
    kind: str,
    payload: Mapping[str, Any],
    now: datetime,
    promotion_id: int | None = None,
) -> CrmPush:
    """Add a push to the outbox, due now, inside the caller's transaction.

    The body follows the Standard Webhooks envelope: `{"type": kind, "timestamp":
    now, "data": payload}`. A payload JSON cannot carry (a datetime, NaN) is refused
    here, in the transaction that made it, not days later by the worker.
    """
    push = CrmPush(**push_values(kind, payload, now, promotion_id))
    session.add(push)
    session.flush()
    return push


def replay(
    session: Session,
    now: datetime,
    push_ids: Sequence[int] | None = None,
    all_dead: bool = False,
) -> int:
    """Put dead pushes (the given ids, or all) back in the queue, due now; how many.

    Same webhook-id, so a receiver that did process an earlier attempt recognises it;
    attempts start again from zero. Pushes that are not dead are left alone.
    """
    if push_ids is None and not all_dead:
        raise ValueError("say which pushes to replay: their ids, or all_dead=True")
    query = select(CrmPush).where(CrmPush.status == "dead")
    if not all_dead:
        query = query.where(CrmPush.id.in_(list(push_ids or ())))
    count = 0
    for push in session.scalars(query):
        push.status = "pending"
        push.attempts = 0
        push.next_attempt_at = now
        push.lease_until = None
        count += 1
    return count


def disable_endpoint(session: Session, url: str, now: datetime, reason: str) -> None:
    """Stop sending to `url` (the receiver answered 410, or an operator says so)."""
    state = session.get(EndpointState, url)
    if state is not None:
        if state.disabled_at is None:
            state.disabled_at, state.reason = now, reason[:500]
        return
    try:
        with session.begin_nested():  # two workers may hear the same 410 at once
            session.add(EndpointState(url=url, disabled_at=now, reason=reason[:500]))
    except IntegrityError:
        pass  # disabled by the other one: the first reason stands


def enable_endpoint(session: Session, url: str) -> bool:
    """Send to `url` again; whether it was disabled. Held pushes go out on the next tick;
    the one refused with 410 is dead and needs `replay`."""
    state = session.get(EndpointState, url)
    if state is None or state.disabled_at is None:
        return False
    session.delete(state)
    return True


@dataclass(frozen=True)
class OutboxSummary:
    """The outbox at a glance, for `nurture crm status` and metrics."""

    pending: int
    due: int  # pending and due now: waiting for a tick, held, or claimed right now
    dead: int
    delivered: int
    oldest_due_at: datetime | None
    disabled: tuple[EndpointState, ...]


def outbox_summary(session: Session, now: datetime) -> OutboxSummary:
    grouped = session.execute(select(CrmPush.status, func.count()).group_by(CrmPush.status))
    counts: dict[str, int] = {status: count for status, count in grouped}
    due, oldest = session.execute(
        select(func.count(), func.min(CrmPush.next_attempt_at)).where(
            CrmPush.status == "pending", CrmPush.next_attempt_at <= now
        )
    ).one()
    disabled = select(EndpointState).where(EndpointState.disabled_at.is_not(None))
    return OutboxSummary(
        pending=counts.get("pending", 0),
        due=due,
        dead=counts.get("dead", 0),
        delivered=counts.get("delivered", 0),
        oldest_due_at=oldest,
        disabled=tuple(session.scalars(disabled)),
    )


@dataclass
class PushReport:
    """What one `deliver_due` call did.

    `held`: due pushes not sent because no URL is configured or the endpoint is
    disabled (`held_reason` says which); `released`: claimed, then put back untried
    because the endpoint stopped answering or asked to slow down.
    """

    delivered: int = 0
    retried: int = 0
    dead: int = 0
    released: int = 0
    held: int = 0
    held_reason: str | None = None

    @property
    def attempted(self) -> int:
        return self.delivered + self.retried + self.dead

    def __str__(self) -> str:
        text = ", ".join(
            f"{f.name} {getattr(self, f.name)}" for f in fields(self) if f.name != "held_reason"
        )
        return f"{text} ({self.held_reason})" if self.held_reason else text


def _reader(now: datetime | Clock) -> Callable[[], datetime]:
    """What `deliver_due` reads the time from: a `Clock` runs on; a fixed `now` stays
    fixed for the whole call (`clock_of` would run it on, so a caller that passes a
    time would no longer find exactly that time recorded)."""
    if isinstance(now, Clock):
        return now
    fixed: datetime = now
    return lambda: fixed


@dataclass(frozen=True)
class _Claimed:
    id: int
    webhook_id: str
    body: bytes
    attempts: int
    lease_until: datetime


class CrmPusher:
    """Delivers the outbox to `settings.crm_webhook_url`, signed with its secret.

    Raises ConfigError at construction when a URL is set without a usable secret.
    """

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        transport: Transport | None = None,
        *,
        timeout: float = TIMEOUT,
    ) -> None:
        self.url = settings.crm_webhook_url
        self.sessions = sessions
        self.transport: Transport = transport or UrllibTransport()
        self.timeout = timeout
        # The lease outlives a whole chunk of slow answers, or a live claim would be stolen.
        self.lease = timedelta(seconds=max(settings.lease_seconds, CHUNK * timeout + 60))
        self.signer: Webhook | None = None
        if settings.crm_webhook_secret:
            try:
                self.signer = Webhook(check_secret(settings.crm_webhook_secret))
            except ValueError as error:
                raise ConfigError(f"{SECRET_VARIABLE}: {error}") from None
        elif self.url:
            raise ConfigError(
                f"{SECRET_VARIABLE}: required when {URL_VARIABLE} is set (the receiver"
                " must be able to check that pushes come from here); generate one with"
                " `nurture crm secret`"
            )

    def deliver_due(self, now: datetime | Clock, limit: int = 100) -> PushReport:
        """Send up to `limit` due pushes, one attempt each; record each outcome.

        `now` is a fixed time, or a running `Clock` read at each step: each claim
        takes its lease from the time of the claim, each attempt is signed with the
        time just before its POST, each outcome is recorded at the time of the answer.
        """
        read = _reader(now)
        report = PushReport()
        # The budget counts from this call, not from the clock's start: a tick that
        # reaches the CRM late still gets its full minute of sending.
        started = time.monotonic()
        claimed = 0
        while claimed < limit and time.monotonic() - started < BUDGET:
            batch = self._claim(read(), min(CHUNK, limit - claimed), report)
            if not batch:
                break
            claimed += len(batch)
            if self._send(batch, read, report):
                break
        if report.attempted or report.held:
            log.info("CRM pushes: %s", report)
        return report

    # --- claiming ------------------------------------------------------------------------

    def _hold_reason(self, session: Session) -> str | None:
        if not self.url:
            return f"{URL_VARIABLE} is not set: pushes wait in the outbox"
        state = session.get(EndpointState, self.url)
        if state is not None and state.disabled_at is not None:
            since = state.disabled_at.isoformat(timespec="seconds")
            return f"endpoint disabled since {since}: {state.reason or 'no reason given'}"
        return None

    def _claim(self, now: datetime, count: int, report: PushReport) -> list[_Claimed]:
        with self.sessions.begin() as session:
            due = (
                CrmPush.status == "pending",
                CrmPush.next_attempt_at <= now,
                or_(CrmPush.lease_until.is_(None), CrmPush.lease_until <= now),
            )
            reason = self._hold_reason(session)
            if reason is not None:
                report.held = session.scalar(select(func.count()).where(*due)) or 0
                report.held_reason = reason if report.held else None
                return []
            query = (
                select(CrmPush)
                .where(*due)
                .order_by(CrmPush.next_attempt_at, CrmPush.id)
                .limit(count)
            )
            lease_until = now + self.lease
            batch = []
            for push in session.scalars(skip_locked(session, query)):
                push.lease_until = lease_until
                batch.append(
                    _Claimed(
                        push.id, push.webhook_id, body_of(push.payload), push.attempts, lease_until
                    )
                )
            return batch

    # --- sending and recording -----------------------------------------------------------

    def _send(
        self, batch: list[_Claimed], read: Callable[[], datetime], report: PushReport
    ) -> bool:
        """Attempt each claimed push; True when the endpoint said to stop for now."""
        assert self.url is not None and self.signer is not None
        for index, push in enumerate(batch):
            # Read per attempt: the ones before it may each have waited for a timeout.
            headers = {
                "content-type": "application/json",
                "user-agent": USER_AGENT,
                **signed_headers(self.signer, push.webhook_id, read(), push.body),
            }
            answer: Response | TransportError
            try:
                answer = self.transport.post(self.url, push.body, headers, self.timeout)
            except TransportError as error:
                answer = error
            # Read again: a Retry-After or a backoff counts from the answer, which may
            # have taken the whole timeout.
            answered_at = read()
            outcome = judge(answer, push.attempts + 1, answered_at)
            self._record(push, outcome, answered_at, report)
            if outcome.stop:
                self._release(batch[index + 1 :], report)
                return True
        return False

    def _record(self, push: _Claimed, outcome: Outcome, now: datetime, report: PushReport) -> None:
        with self.sessions.begin() as session:
            if outcome.disable:
                assert self.url is not None
                disable_endpoint(session, self.url, now, outcome.error or "HTTP 410 Gone")
            result = session.execute(
                update(CrmPush)
                # Only while the claim is ours: past the lease another worker may own it.
                .where(
                    CrmPush.id == push.id,
                    CrmPush.status == "pending",
                    CrmPush.lease_until == push.lease_until,
                )
                .values(
                    status=outcome.status,
                    attempts=push.attempts + 1,
                    next_attempt_at=outcome.next_attempt_at,
                    lease_until=None,
                    last_status=outcome.last_status,
                    last_error=outcome.error,
                    delivered_at=now if outcome.status == "delivered" else None,
                )
                .execution_options(synchronize_session=False)
            )
            if not getattr(result, "rowcount", 0):
                log.warning("CRM push %s: claim lost before its outcome was recorded", push.id)
                return
        if outcome.status == "delivered":
            report.delivered += 1
        elif outcome.status == "dead":
            report.dead += 1
            log.warning("CRM push %s is dead: %s", push.id, outcome.error)
        else:
            report.retried += 1

    def _release(self, rest: list[_Claimed], report: PushReport) -> None:
        if not rest:
            return
        with self.sessions.begin() as session:
            session.execute(
                update(CrmPush)
                .where(
                    CrmPush.id.in_([push.id for push in rest]),
                    CrmPush.lease_until == rest[0].lease_until,
                )
                .values(lease_until=None)
                .execution_options(synchronize_session=False)
            )
        report.released += len(rest)
