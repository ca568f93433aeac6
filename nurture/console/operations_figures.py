"""What the Operations page shows, read from the database and the spool folder: the CRM
outbox and its dead letters, the deliveries an operator settles, the tracking backlog,
the workers' schedule and the alarms. No Flask here: the routes pass `now` and the
settings in, and get frozen values back.

The figures are the ones the CLI prints (`nurture crm status`, `nurture deliveries
list`) and `/metrics` reports, read through the same functions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from nurture import redaction
from nurture.alarms import complaint_alarm, treatment_alarm
from nurture.backlog import due_count, stuck
from nurture.config import Settings
from nurture.crm import OutboxSummary, outbox_summary
from nurture.deliveries import HELD, Row, listed
from nurture.hits import waiting
from nurture.models import AlarmState, CrmPush, Delivery, Enrollment, Lead, Promotion, TrackingHit
from nurture.spool import SUFFIX

SHOWN = 200  # rows of one list on the page; the count above it says how many in all
SETTLED_HERE = ("uncertain", "failed")  # what `backlog.stuck` returns: an operator's call
# How the sender writes down a relay that refused as a whole (nurture/sending.py).
RELAY_DOWN = ("relay unavailable", "not attempted: relay unavailable")


def ago(then: datetime | None, now: datetime) -> str:
    """`then` as a distance from `now`: "3 h 5 min ago", "in 12 min", "just now"."""
    if then is None:
        return "—"
    seconds = int((now - then).total_seconds())
    future, seconds = seconds < 0, abs(seconds)
    if seconds < 60:
        return "just now" if not future else "in less than a minute"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] * bool(days) + [f"{hours} h"] * bool(hours)
    if not days:
        parts += [f"{minutes} min"] * bool(minutes)
    text = " ".join(parts)
    return f"in {text}" if future else f"{text} ago"


def shown(text: str | None) -> str | None:
    """A stored error as the CLI prints it: secrets masked (never the address asked about)."""
    return redaction.text(text) if text else None


# --- the CRM outbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class PushRow:
    id: int
    kind: str
    webhook_id: str
    lead_email: str | None
    promotion_reason: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_status: int | None  # the CRM's last HTTP answer; None: no answer came
    last_error: str | None
    created_at: datetime

    @property
    def why_dead(self) -> str:
        if self.last_status == 410:
            return "the CRM answered 410 Gone: the endpoint is disabled"
        return f"no 2xx answer after {self.attempts} attempts"


@dataclass(frozen=True)
class Outbox:
    summary: OutboxSummary
    oldest_pending_at: datetime | None  # when the oldest pending push was written
    next_attempt_at: datetime | None  # the soonest attempt among pending pushes
    last_error: str | None  # the latest error among pending pushes
    pending: tuple[PushRow, ...]
    dead: tuple[PushRow, ...]


def _pushes(session: Session, status: str, order: Any) -> tuple[PushRow, ...]:
    query = (
        select(CrmPush, Lead.email, Promotion.reason)
        .outerjoin(Promotion, Promotion.id == CrmPush.promotion_id)
        .outerjoin(Lead, Lead.id == Promotion.lead_id)
        .where(CrmPush.status == status)
        .order_by(order, CrmPush.id)
        .limit(SHOWN)
    )
    return tuple(
        PushRow(
            id=push.id,
            kind=push.kind,
            webhook_id=push.webhook_id,
            lead_email=email or _payload_email(push.payload),
            promotion_reason=reason,
            attempts=push.attempts,
            next_attempt_at=push.next_attempt_at,
            last_status=push.last_status,
            last_error=shown(push.last_error),
            created_at=push.created_at,
        )
        for push, email, reason in session.execute(query)
    )


def _payload_email(payload: Mapping[str, Any]) -> str | None:
    """The lead a push without a promotion names in its body, if any."""
    data = payload.get("data")
    lead = data.get("lead") if isinstance(data, Mapping) else None
    email = lead.get("email") if isinstance(lead, Mapping) else None
    return email if isinstance(email, str) else None


def outbox(session: Session, now: datetime) -> Outbox:
    pending = CrmPush.status == "pending"
    oldest, soonest = session.execute(
        select(func.min(CrmPush.created_at), func.min(CrmPush.next_attempt_at)).where(pending)
    ).one()
    last_error = session.scalar(
        select(CrmPush.last_error)
        .where(pending, CrmPush.last_error.is_not(None))
        .order_by(CrmPush.next_attempt_at.desc(), CrmPush.id.desc())
        .limit(1)
    )
    return Outbox(
        summary=outbox_summary(session, now),
        oldest_pending_at=oldest,
        next_attempt_at=soonest,
        last_error=shown(last_error),
        pending=_pushes(session, "pending", CrmPush.next_attempt_at),
        dead=_pushes(session, "dead", CrmPush.id),
    )


# --- deliveries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliveries:
    to_settle: tuple[Row, ...]  # uncertain and failed, as `nurture deliveries list` reads them
    held: tuple[Row, ...]  # claimed or sending: their holder and lease
    stuck: int  # backlog.stuck: uncertain and failed


def deliveries(session: Session) -> Deliveries:
    settle = listed(session, SETTLED_HERE)
    return Deliveries(
        to_settle=tuple(_masked(row) for row in settle[:SHOWN]),
        held=tuple(_masked(row) for row in listed(session, HELD)[:SHOWN]),
        stuck=len(stuck(session)),
    )


def _masked(row: Row) -> Row:
    return replace(row, last_error=shown(row.last_error))


# --- the tracking backlog ------------------------------------------------------------------


@dataclass(frozen=True)
class SpoolFiles:
    """The spool folder of this machine, as the web process can read it."""

    folder: Path
    problem: str | None  # why it could not be read; None when it was
    exists: bool = True  # False: no hit was ever spooled on this machine
    files: int = 0  # spool files holding hits not yet in the database
    hits: int = 0  # complete lines in them
    size: int = 0  # bytes


def spool_files(folder: Path) -> SpoolFiles:
    """Hits waiting on disk: each process's file is emptied every few hundred
    milliseconds, so a file that stays full belongs to a process that died (the next
    worker's recovery ingests it)."""
    try:
        paths = sorted(p for p in folder.iterdir() if p.suffix == SUFFIX)
    except FileNotFoundError:
        return SpoolFiles(folder, None, exists=False)
    except OSError as error:
        return SpoolFiles(folder, f"cannot be read: {error.strerror or error}")
    files = hits = size = 0
    for path in paths:
        try:
            with path.open("rb") as file:
                lines = sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))
                size += os.fstat(file.fileno()).st_size
        except FileNotFoundError:
            continue  # recovered just now
        except OSError as error:
            return SpoolFiles(folder, f"{path.name} cannot be read: {error.strerror or error}")
        files += lines > 0
        hits += lines
    return SpoolFiles(folder, None, files=files, hits=hits, size=size)


@dataclass(frozen=True)
class Tracking:
    waiting: int  # nurture_tracking_hits_waiting
    oldest_waiting_at: datetime | None
    failed: int  # nurture_tracking_hits_failed
    spool: SpoolFiles


def tracking(session: Session, spool_folder: Path) -> Tracking:
    oldest = session.scalar(
        select(func.min(TrackingHit.at)).where(TrackingHit.processed_at.is_(None))
    )
    failed = session.scalar(
        select(func.count()).select_from(TrackingHit).where(TrackingHit.error.is_not(None))
    )
    return Tracking(waiting(session), oldest, failed or 0, spool_files(spool_folder))


# --- workers, schedule, relay, alarms ------------------------------------------------------


@dataclass(frozen=True)
class RelayDown:
    """Emails put back because the relay refused everyone (the worker then pauses)."""

    waiting: int
    since: datetime | None
    reason: str | None  # the latest one


@dataclass(frozen=True)
class AlarmRow:
    name: str
    label: str
    raised: bool
    value: float | None
    detail: str
    advice: str | None
    changed_at: datetime | None
    checked_at: datetime


@dataclass(frozen=True)
class Schedule:
    due: int  # nurture_due_steps
    deliveries: dict[str, int]  # nurture_deliveries{status}
    enrollments: dict[str, int]  # nurture_enrollments{status}
    relay: RelayDown
    alarms: tuple[AlarmRow, ...]


def schedule(session: Session, settings: Settings, now: datetime) -> Schedule:
    down = (
        Delivery.status == "retry",
        or_(*(Delivery.last_error.startswith(prefix) for prefix in RELAY_DOWN)),
    )
    count, since = session.execute(
        select(func.count(), func.min(Delivery.updated_at)).where(*down)
    ).one()
    reason = session.scalar(
        select(Delivery.last_error).where(*down).order_by(Delivery.updated_at.desc()).limit(1)
    )
    known = {alarm.name: alarm for alarm in (treatment_alarm(settings), complaint_alarm(settings))}
    alarms = tuple(
        AlarmRow(
            name=state.name,
            label=known[state.name].label if state.name in known else state.name,
            raised=state.raised,
            value=state.value,
            detail=state.detail,
            advice=known[state.name].advice if state.name in known else None,
            changed_at=state.changed_at,
            checked_at=state.checked_at,
        )
        for state in session.scalars(
            select(AlarmState).order_by(AlarmState.raised.desc(), AlarmState.name)
        )
    )
    return Schedule(
        due=due_count(session, now),
        deliveries=_by_status(session, Delivery.status),
        enrollments=_by_status(session, Enrollment.status),
        relay=RelayDown(count, since, shown(reason)),
        alarms=alarms,
    )


def _by_status(session: Session, column: Any) -> dict[str, int]:
    rows = session.execute(select(column, func.count()).group_by(column).order_by(column))
    return {status: count for status, count in rows}
