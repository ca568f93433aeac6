"""Double opt-in for website forms: a submission waits in `form_confirmations` until
the person follows the link emailed to them; only then does it become a lead.

    POST /forms/<form> --> pending --worker--> sending --> sent | failed
                              ^                    |
                              '---- retryable -----'
    POST /forms/confirm/<token> --> the same intake as any form; the row is deleted
    expired, whatever its state --> purged by the worker's retention
    `nurture gdpr erase EMAIL` --> deleted

The email leaves from a worker, never from the web request. A worker claims a row by
moving it from `pending` to `sending` in the database, so two workers never send the
same email; a row found still `sending` after its lease (the worker died on the wire)
is marked `failed`, not resent: it may have arrived. The link carries only the row's
random `public_id`, signed with the secret key.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from itsdangerous import BadData, URLSafeSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, sessionmaker

from nurture.clock import Clock, clock_of
from nurture.composing import sender_of
from nurture.config import Settings
from nurture.core.confirmation import (
    ConfirmationEmail,
    ConfirmationTemplate,
    compose,
    retry_delay,
)
from nurture.core.message import Envelope, envelope_of, make_message_id
from nurture.db import skip_locked
from nurture.mail import Rejected, RetryLater, SendResult, Sent, Uncertain
from nurture.models import FormConfirmation
from nurture.suppression import list_key, suppressed

log = logging.getLogger(__name__)

SALT = "nurture.form-confirmation"
TOKEN_LIMIT = 200  # characters: ours are about 70
TEMPLATE = Path("forms") / "form_confirmation"  # under the templates folder
DEFAULT_LOCALE = "en"
RESEND_AFTER = timedelta(minutes=15)  # a new submission sends the link again after this
CHUNK = 20  # rows claimed per transaction


# --- the link ---------------------------------------------------------------------


def link_token(secret_key: str, public_id: str) -> str:
    return str(URLSafeSerializer(secret_key, salt=SALT).dumps(public_id))


def read_token(secret_key: str, token: str) -> str | None:
    """The confirmation id a token carries, or None when the token is not ours."""
    if len(token) > TOKEN_LIMIT:
        return None
    try:
        value = URLSafeSerializer(secret_key, salt=SALT).loads(token)
    except (BadData, UnicodeError, ValueError):
        return None
    return value if isinstance(value, str) else None


def confirm_url(settings: Settings, secret_key: str, public_id: str) -> str:
    return f"{settings.base_url}/forms/confirm/{link_token(secret_key, public_id)}"


# --- submissions ------------------------------------------------------------------


def hold(
    session: Session,
    settings: Settings,
    form: str,
    email: str,
    locale: str | None,
    payload: Mapping[str, Any],
    now: datetime,
) -> FormConfirmation | None:
    """Keep a form submission aside until its address is confirmed, and ask a worker
    to send the link. None: the address is on the suppression list (nothing kept,
    nothing sent: it asked never to be mailed again).

    The same address submitting the same form again updates the waiting submission
    (latest answers win, the expiry starts again) and keeps its link; the email goes
    again only once the earlier one was sent (or failed) and was asked for more than
    `RESEND_AFTER` ago, so a form cannot be used to flood someone's inbox.
    """
    if suppressed(session, list_key(settings), email, now):
        return None
    row = session.scalar(
        select(FormConfirmation)
        .where(FormConfirmation.email == email, FormConfirmation.form == form)
        .with_for_update()
    )
    if row is not None and row.expires_at <= now:
        session.delete(row)  # its link is dead: start afresh with a new one
        session.flush()
        row = None
    if row is None:
        row = FormConfirmation(
            public_id=secrets.token_urlsafe(24),
            form=form,
            email=email,
            created_at=now,
        )
        _queue(row, now)
        session.add(row)
    elif row.send_state in ("sent", "failed") and row.requested_at <= now - RESEND_AFTER:
        _queue(row, now)
    row.locale = locale
    row.payload = dict(payload)
    row.expires_at = now + timedelta(days=settings.double_opt_in_days)
    return row


def _queue(row: FormConfirmation, now: datetime) -> None:
    row.send_state = "pending"
    row.attempts = 0
    row.next_attempt_at = now
    row.lease_until = None
    row.last_error = None
    row.requested_at = now


def find(session: Session, public_id: str) -> FormConfirmation | None:
    return session.scalar(select(FormConfirmation).where(FormConfirmation.public_id == public_id))


@dataclass(frozen=True)
class Pending:
    """A submission taken out of waiting: the caller runs the intake with it."""

    form: str
    lead: dict[str, Any]  # the body `parse_lead` takes
    properties: dict[str, Any]  # the `form_submitted` event's
    submitted_at: datetime


@dataclass(frozen=True)
class NotConfirmed:
    """Why a confirmation did nothing: `unknown` (never ours, already confirmed,
    purged or erased) or `expired`."""

    reason: str


def take_pending(session: Session, public_id: str, now: datetime) -> Pending | NotConfirmed:
    """Remove the waiting submission from the table, inside the caller's transaction
    (which runs the intake with it: both commit together, or neither). Locked, so two
    confirmations at once make one lead: the second finds nothing."""
    row = session.scalar(
        select(FormConfirmation).where(FormConfirmation.public_id == public_id).with_for_update()
    )
    if row is None:
        return NotConfirmed("unknown")
    if row.expires_at <= now:
        return NotConfirmed("expired")
    pending = Pending(
        form=row.form,
        lead=dict(row.payload.get("lead") or {}),
        properties=dict(row.payload.get("properties") or {}),
        submitted_at=row.created_at,
    )
    session.delete(row)
    return pending


# --- retention and erasure --------------------------------------------------------


def purge_expired(session: Session, now: datetime) -> int:
    """Delete the submissions whose link has expired; how many."""
    result = session.execute(
        delete(FormConfirmation)
        .where(FormConfirmation.expires_at <= now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


def forget(session: Session, email: str) -> int:
    """Delete every waiting submission of this address (an erasure request); how many."""
    result = session.execute(
        delete(FormConfirmation)
        .where(FormConfirmation.email == email.strip().lower())
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# --- sending ----------------------------------------------------------------------


@dataclass
class SendReport:
    """What one `send_due` call did. `failed`: given up (refused, retries spent, or a
    worker that died while sending)."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    def __str__(self) -> str:
        return ", ".join(f"{f.name} {getattr(self, f.name)}" for f in fields(self))


@dataclass(frozen=True)
class _Claimed:
    id: int
    public_id: str
    form: str
    email: str
    locale: str | None
    first_name: str | None
    attempts: int
    requested_at: datetime
    lease_until: datetime


def load_template(templates_dir: Path, locale: str | None) -> ConfirmationTemplate:
    """The confirmation email in `locale`, else its language, else English;
    raises FileNotFoundError naming the folder looked for."""
    folder = templates_dir / TEMPLATE
    chain = [locale, locale.split("-")[0]] if locale else []
    for candidate in dict.fromkeys([*chain, DEFAULT_LOCALE]):
        if candidate and (folder / candidate / "body.html").is_file():
            files = folder / candidate
            return ConfirmationTemplate(
                locale=candidate,
                subject=(files / "subject.txt").read_text(encoding="utf-8"),
                html=(files / "body.html").read_text(encoding="utf-8"),
                text=(files / "body.txt").read_text(encoding="utf-8"),
            )
    raise FileNotFoundError(f"no confirmation email template in {folder / DEFAULT_LOCALE}")


def send_due(
    sessions: sessionmaker[Session],
    settings: Settings,
    secret_key: str,
    send: Callable[[Envelope], SendResult],
    now: datetime | Clock,
    limit: int = 200,
) -> SendReport:
    """Send the confirmation emails that are due, one attempt each; record each outcome.

    `send` hands one message to the mailer (the dispatcher's, so the SMTP connection
    is shared with the sequence emails).
    """
    clock = clock_of(now)
    report = SendReport()
    report.failed += _abandon(sessions, clock())
    claimed = 0
    while claimed < limit:
        batch = _claim(sessions, clock(), timedelta(seconds=settings.lease_seconds), CHUNK)
        if not batch:
            break
        claimed += len(batch)
        for row in batch:
            outcome = _attempt(row, settings, secret_key, send, clock())
            _record(sessions, row, outcome, clock(), report)
    if report.sent or report.retried or report.failed:
        log.info("confirmation emails: %s", report)
    return report


def _abandon(sessions: sessionmaker[Session], now: datetime) -> int:
    """Rows a worker left `sending` past its lease: it died on the wire, the email may
    have arrived. Marked failed, never resent (a new submission sends it again)."""
    with sessions.begin() as session:
        result = session.execute(
            update(FormConfirmation)
            .where(FormConfirmation.send_state == "sending", FormConfirmation.lease_until <= now)
            .values(
                send_state="failed",
                lease_until=None,
                last_error="the worker stopped while sending it; not resent (it may have arrived)",
            )
            .execution_options(synchronize_session=False)
        )
    count = int(getattr(result, "rowcount", 0) or 0)
    if count:
        log.warning("%d confirmation emails left sending by a stopped worker: marked failed", count)
    return count


def _claim(
    sessions: sessionmaker[Session], now: datetime, lease: timedelta, size: int
) -> list[_Claimed]:
    with sessions.begin() as session:
        due = (
            select(FormConfirmation.id)
            .where(
                FormConfirmation.send_state == "pending",
                FormConfirmation.next_attempt_at <= now,
                FormConfirmation.expires_at > now,
            )
            .order_by(FormConfirmation.next_attempt_at, FormConfirmation.id)
            .limit(size)
        )
        ids = list(session.scalars(skip_locked(session, due)))
        if not ids:
            return []
        until = now + lease
        session.execute(
            update(FormConfirmation)
            .where(FormConfirmation.id.in_(ids), FormConfirmation.send_state == "pending")
            .values(send_state="sending", lease_until=until, attempts=FormConfirmation.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        rows = session.scalars(
            select(FormConfirmation).where(
                FormConfirmation.id.in_(ids),
                FormConfirmation.send_state == "sending",
                FormConfirmation.lease_until == until,
            )
        )
        return [
            _Claimed(
                row.id,
                row.public_id,
                row.form,
                row.email,
                row.locale,
                str((row.payload.get("lead") or {}).get("first_name") or "") or None,
                row.attempts,
                row.requested_at,
                until,
            )
            for row in rows
        ]


def _attempt(
    row: _Claimed,
    settings: Settings,
    secret_key: str,
    send: Callable[[Envelope], SendResult],
    now: datetime,
) -> SendResult:
    try:
        message = compose(
            load_template(settings.templates_dir, row.locale),
            ConfirmationEmail(
                # The time it was asked for: a retry keeps the Message-ID, a new
                # request (the person submitted again) gets its own.
                message_id=make_message_id(
                    f"form-confirmation/{row.public_id}/{row.requested_at.isoformat()}",
                    settings.message_id_domain,
                ),
                to_email=row.email,
                first_name=row.first_name,
                form=row.form,
                confirm_url=confirm_url(settings, secret_key, row.public_id),
                days=settings.double_opt_in_days,
                sender=sender_of(settings),
                reply_to=settings.reply_to,
                date=now,
            ),
        )
        return send(envelope_of(message))
    except Exception as error:  # a broken template or address: retried, then visible
        return RetryLater(f"{type(error).__name__}: {error}")


def _record(
    sessions: sessionmaker[Session],
    row: _Claimed,
    outcome: SendResult,
    now: datetime,
    report: SendReport,
) -> None:
    values: dict[str, Any] = {"lease_until": None}
    if isinstance(outcome, Sent):
        values.update(send_state="sent", sent_at=now, last_error=None)
        report.sent += 1
    elif isinstance(outcome, Uncertain):
        # The relay took the data but its answer was lost: most likely delivered.
        error = f"sent, unconfirmed by the relay: {outcome.reason}"
        values.update(send_state="sent", sent_at=now, last_error=error)
        report.sent += 1
    elif isinstance(outcome, Rejected):
        values.update(send_state="failed", last_error=outcome.reason)
        report.failed += 1
    else:
        delay = retry_delay(row.attempts)
        if delay is None:
            error = f"{outcome.reason} (gave up after {row.attempts} attempts)"
            values.update(send_state="failed", last_error=error)
            report.failed += 1
        else:
            values.update(
                send_state="pending", next_attempt_at=now + delay, last_error=outcome.reason
            )
            report.retried += 1
    if values["send_state"] == "failed":
        log.warning("confirmation email %d not sent: %s", row.id, values["last_error"])
    with sessions.begin() as session:
        session.execute(
            update(FormConfirmation)
            .where(
                FormConfirmation.id == row.id,
                FormConfirmation.send_state == "sending",
                FormConfirmation.lease_until == row.lease_until,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
