"""Reading the alarm figures, keeping each alarm's state, telling the owner once.

The worker checks every CHECK_EVERY. An alarm that turns is written first (one row
per alarm, locked, so two workers never both send), then the owner
(`NURTURE_ALARM_EMAIL`) is told; if the email cannot leave, the state is put back
and the next check tries again. `/metrics` shows each alarm as a gauge.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nurture.config import Settings
from nurture.core.alarms import RAISED, Alarm, Reading, change, message
from nurture.mail import Sent
from nurture.models import AlarmState, Delivery, Event
from nurture.notices import notice
from nurture.reports import treatment

if TYPE_CHECKING:
    from nurture.runtime import Runtime

log = logging.getLogger(__name__)

CHECK_EVERY = timedelta(minutes=15)
TREATMENT_DAYS = 30  # hand-offs of the last month
COMPLAINT_WINDOW = timedelta(hours=24)  # providers judge a sender day by day
MIN_SENT = 100  # fewer emails than this in a day: one complaint is not a rate yet
MIN_DUE = 5  # fewer promotions due: not a rate yet


def treatment_alarm(settings: Settings) -> Alarm:
    return Alarm(
        "treatment_rate",
        "Treatment rate of leads sent to sales",
        settings.treatment_alarm,
        low_is_bad=True,
        advice="Leads handed to sales are waiting past the SLA. Check the reps' workload"
        " (`nurture report sla`) and the escalations.",
    )


def complaint_alarm(settings: Settings) -> Alarm:
    return Alarm(
        "complaint_rate",
        "Spam-complaint rate",
        settings.complaint_alarm,
        low_is_bad=False,
        advice="Mailbox providers start filtering senders over 0.3 %. Look at the last"
        " emails sent (`nurture report deliverability`), slow down cold segments, and check"
        " that every email says why the lead gets it.",
    )


def treatment_reading(
    session: Session, settings: Settings, now: datetime, rep_zones: Mapping[str, str]
) -> Reading:
    """The SLA report's treatment rate over the hand-offs of the last 30 days: in
    business hours of each rep's calendar, promotions not yet due left out."""
    in_time, due = treatment(session, settings, now, rep_zones, TREATMENT_DAYS)
    detail = (
        f"{in_time} of {due} promotions of the last {TREATMENT_DAYS} days answered within"
        f" the SLA ({settings.sla_hours} business hours)"
    )
    return Reading(treatment_alarm(settings), in_time / due if due >= MIN_DUE else None, detail)


def complaint_reading(session: Session, settings: Settings, now: datetime) -> Reading:
    """Spam complaints per email sent, over the last day."""
    since = now - COMPLAINT_WINDOW
    sent = (
        session.scalar(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.status == "sent", Delivery.sent_at > since, Delivery.sent_at <= now)
        )
        or 0
    )
    complained = (
        session.scalar(
            select(func.count())
            .select_from(Event)
            .where(Event.name == "complained", Event.occurred_at > since, Event.occurred_at <= now)
        )
        or 0
    )
    detail = f"{complained} complaints for {sent} emails sent in the last 24 hours"
    return Reading(
        complaint_alarm(settings), complained / sent if sent >= MIN_SENT else None, detail
    )


def readings(
    session: Session, settings: Settings, now: datetime, rep_zones: Mapping[str, str]
) -> list[Reading]:
    return [
        treatment_reading(session, settings, now, rep_zones),
        complaint_reading(session, settings, now),
    ]


def turn(session: Session, reading: Reading, now: datetime) -> str | None:
    """Record the reading; RAISED or CLEARED when the alarm turns (locked: once)."""
    name = reading.alarm.name
    state = session.get(AlarmState, name, with_for_update=True)
    if state is None:
        try:
            with session.begin_nested():
                state = AlarmState(name=name, raised=False, detail="", checked_at=now)
                session.add(state)
        except IntegrityError:  # another worker made it just now
            state = session.get(AlarmState, name, with_for_update=True, populate_existing=True)
            assert state is not None
    turned = change(state.raised, reading)
    state.value = reading.value
    state.detail = reading.detail[:300]
    state.checked_at = now
    if turned is not None:
        state.raised = turned == RAISED
        state.changed_at = now
    return turned


def check(runtime: Runtime, now: datetime, force: bool = False) -> str:
    """The worker's part: read, turn, tell. Returns a line for the worker's log."""
    settings = runtime.settings
    with runtime.sessions.begin() as session:
        last = session.scalar(select(func.max(AlarmState.checked_at)))
        if not force and last is not None and now - last < CHECK_EVERY:
            return "not due"
        routing = runtime.content.routing
        zones = {rep.email: rep.timezone for rep in routing.reps} if routing else {}
        found = readings(session, settings, now, zones)
        turned = [(r, t) for r in found if (t := turn(session, r, now))]
    said: list[str] = []
    for reading, what in turned:
        if tell(runtime, reading, what, now):
            said.append(f"{reading.alarm.name} {what}, told")
            continue
        with runtime.sessions.begin() as session:  # not told: turn back, try next check
            state = session.get(AlarmState, reading.alarm.name, with_for_update=True)
            if state is not None:
                state.raised = what != RAISED
        said.append(f"{reading.alarm.name} {what}, not told (tried again at the next check)")
    return "; ".join(said) or "no change"


def tell(runtime: Runtime, reading: Reading, what: str, now: datetime) -> bool:
    settings = runtime.settings
    if settings.alarm_email is None:
        log.warning(
            "alarm %s %s (%s); set NURTURE_ALARM_EMAIL to be told by email",
            reading.alarm.name, what, reading.detail,
        )  # fmt: skip
        return True
    subject, text = message(reading, what)
    key = f"alarms/{reading.alarm.name}/{what}/{now.isoformat()}"
    html = f"<html><body><pre>{_escape(text)}</pre></body></html>"
    email = notice(settings, key, settings.alarm_email, None, subject, text, html,
                   "nurture alarms", now)  # fmt: skip
    result = runtime.dispatcher.send_now(email)
    if not isinstance(result, Sent):
        log.warning("alarm email not sent (%s): will try again", result)
        return False
    return True


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def gauges(session: Session) -> list[str]:
    """The alarms for /metrics: 1 raised, 0 not; and the last figure read."""
    lines = [
        "# HELP nurture_alarm An alarm (1: raised, 0: not); see docs/reports.md.",
        "# TYPE nurture_alarm gauge",
    ]
    figures = ["# HELP nurture_alarm_value The last figure read for an alarm, as a ratio.",
               "# TYPE nurture_alarm_value gauge"]  # fmt: skip
    for state in session.scalars(select(AlarmState).order_by(AlarmState.name)):
        lines.append(f'nurture_alarm{{name="{state.name}"}} {int(state.raised)}')
        if state.value is not None:
            figures.append(f'nurture_alarm_value{{name="{state.name}"}} {state.value:g}')
    return lines + figures
