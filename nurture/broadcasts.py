"""Broadcasts: start each due occurrence set-based, count its recipients beforehand.

Starting an occurrence is one transaction of a few statements, whatever the number of
leads (the periodic triggers' model, nurture.triggers): the occurrence is recorded
under a unique key, then one INSERT ... SELECT enrols every lead of the segment that
may be mailed in the broadcast's one-email sequence, each due at the occurrence's wall
time in its own time zone, in the same transaction. So each lead is enrolled once per
occurrence by that key: a second worker starting the occurrence at the same time waits
on it, then finds it started and writes nothing; a start that fails writes nothing
either. (Unlike the periodic triggers, no row per lead is needed to say "found":
an occurrence is found for all its leads at once.) Each enrollment names its occurrence
(`trigger`: "broadcast 2026-12-10 09:00").

The dispatcher then sends as for any sequence: send window, frequency cap and
priority, suppression checked again at the claim and before SMTP.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.orm import Session, sessionmaker

from nurture.config import Settings
from nurture.content import Content
from nurture.core.broadcast_parser import Broadcasts, load_broadcasts
from nurture.core.broadcasts import (
    Broadcast,
    Segment,
    journey,
    local_instant,
    occurrence_key,
    startable,
)
from nurture.core.sequence_parser import parse_sequence
from nurture.core.sequences import Sequence
from nurture.core.timing import COUNTRY_TIMEZONES, is_valid_timezone, resolve_timezone
from nurture.facts import COUNTED_BY_CAP
from nurture.models import (
    BroadcastOccurrence,
    Delivery,
    Enrollment,
    Event,
    Lead,
    SequenceVersion,
    UTCDateTime,
)
from nurture.suppression import LATEST_CONSENT

# The periodic triggers' conditions, so that a broadcast and a trigger agree on who may
# be mailed and on what an audience admits.
from nurture.triggers import _admitted, _count, _engagement, _insert, _mailable, enrolments_from

log = logging.getLogger(__name__)


def occurrence_label(wall: datetime) -> str:
    """What an enrollment's `trigger` says of the occurrence it was enrolled for."""
    return f"broadcast {wall:%Y-%m-%d %H:%M}"


@dataclass(frozen=True)
class Started:
    broadcast_id: str
    occurrence: datetime  # the wall time
    recipients: int

    def __str__(self) -> str:
        return f"{self.broadcast_id} {self.occurrence:%Y-%m-%d %H:%M}: {self.recipients} enrolled"


@dataclass(frozen=True)
class Count:
    """What a dry run finds: who would receive an occurrence, and who is kept out."""

    segment: int  # leads matching the segment
    recipients: int
    at_cap: int  # recipients whose cap is full now: their email waits for a free slot
    kept_out: Mapping[str, int]  # by reason: unsubscribed, bounced, ..., already sent


def broadcasts_of(settings: Settings, content: Content) -> Broadcasts:
    """The broadcast files of the configured folder, templates checked."""
    live = frozenset(s.id for s in content.live())
    return load_broadcasts(settings.broadcasts_dir, content.templates, live)


def run(
    sessions: sessionmaker[Session], settings: Settings, content: Content, now: datetime
) -> list[Started]:
    """Start every due occurrence of every enabled broadcast: one transaction each, a
    failing one holds back no other."""
    loaded = broadcasts_of(settings, content)
    for problem in loaded.problems:
        log.warning("broadcast file refused: %s", problem)
    done: list[Started] = []
    for broadcast in loaded.broadcasts.values():
        if not broadcast.enabled:
            continue
        for wall in startable(broadcast.schedule, now):
            try:
                with sessions.begin() as session:
                    started = start(session, broadcast, wall, now, settings.consent_required)
            except Exception:  # the next occurrence, and the next run, go on
                log.exception("broadcast %s %s failed to start", broadcast.id, wall)
                continue
            if started is not None:
                log.info("broadcast %s", started)
                done.append(started)
    return done


def start(
    session: Session,
    broadcast: Broadcast,
    wall: datetime,
    now: datetime,
    consent_required: bool = False,
) -> Started | None:
    """Enrol the segment for the occurrence `wall`; None when it was started already."""
    key = occurrence_key(wall)
    recorded = session.execute(
        _insert(session, BroadcastOccurrence)
        .values(
            broadcast_id=broadcast.id,
            occurrence=key,
            version=broadcast.version,
            started_at=now,
            recipients=0,
        )
        .on_conflict_do_nothing(index_elements=["broadcast_id", "occurrence"])
    )
    if not _count(recorded):
        return None
    sequence = _sequence(session, broadcast, now)
    found = recipients(session, broadcast, now, consent_required)
    due = _due(session, broadcast, wall)
    said = occurrence_label(wall)
    enrolled = _count(session.execute(_enrolment(session, sequence, found, due, said, now)))
    session.execute(
        update(BroadcastOccurrence)
        .where(
            BroadcastOccurrence.broadcast_id == broadcast.id,
            BroadcastOccurrence.occurrence == key,
        )
        .values(recipients=enrolled)
    )
    return Started(broadcast.id, wall, enrolled)


def recipients(
    session: Session, broadcast: Broadcast, now: datetime, consent_required: bool = False
) -> Any:
    """The leads an occurrence goes to: in the segment and mailable. Those recorded for
    it already are left to the unique key (ON CONFLICT DO NOTHING): a NOT EXISTS probe
    into the table being written is planned from its statistics before the insert (an
    empty table: a scan per row, quadratic at a million)."""
    return select(Lead.id).where(
        segment_condition(session, broadcast.segment, now), _mailable(consent_required)
    )


def segment_condition(session: Session, segment: Segment, now: datetime) -> ColumnElement[bool]:
    """The segment as a condition over the leads table."""
    holds: list[ColumnElement[bool]] = [_admitted(session, segment.audience)]
    if segment.tags is not None:
        holds.append(_tagged(session, sorted(segment.tags)))
    if segment.score is not None:
        if segment.score.min is not None:
            holds.append(Lead.score >= segment.score.min)
        if segment.score.max is not None:
            holds.append(Lead.score <= segment.score.max)
    if segment.active_within_days is not None:
        since = now - timedelta(days=segment.active_within_days)
        holds.append(exists().where(_engagement(Lead.id), Event.occurred_at > since))
    return and_(true(), *holds)


def _tagged(session: Session, tags: list[str]) -> ColumnElement[bool]:
    if session.get_bind().dialect.name == "postgresql":
        return Lead.tags.op("?|")(array(tags))
    each = func.json_each(Lead.tags).table_valued("value")
    return exists().select_from(each).where(each.c.value.in_(tags))


def _already(broadcast: Broadcast, wall: datetime) -> ColumnElement[bool]:
    return exists().where(
        Enrollment.lead_id == Lead.id,
        Enrollment.sequence_id == broadcast.sequence_id,
        Enrollment.trigger == occurrence_label(wall),
    )


def _sequence(session: Session, broadcast: Broadcast, now: datetime) -> Sequence:
    """The broadcast's one-email sequence, stored as a sequence version (idempotent)."""
    text = journey(broadcast)
    parsed = parse_sequence(text, broadcast.path)
    if parsed.sequence is None:  # the broadcast parser checked everything it uses
        raise ValueError(f"{broadcast.path}: {'; '.join(map(str, parsed.problems))}")
    sequence = parsed.sequence
    row = {
        "sequence_id": sequence.id,
        "version": sequence.version,
        "path": broadcast.path,
        "source": text,
        "loaded_at": now,
    }
    session.execute(
        _insert(session, SequenceVersion)
        .values(row)
        .on_conflict_do_nothing(index_elements=["sequence_id", "version"])
    )
    return sequence


def _due(session: Session, broadcast: Broadcast, wall: datetime) -> ColumnElement[Any]:
    """Each lead's due time: `wall` in its own zone (its time zone, else its country's,
    else the broadcast's), as the dispatcher resolves it. One branch per instant: the
    zones found among the leads, read once."""
    instant: dict[str, datetime] = {}  # by zone name

    def when(zone_name: str) -> datetime:
        if zone_name not in instant:
            zone = resolve_timezone(zone_name, None, broadcast.timezone)
            instant[zone_name] = local_instant(wall, zone)
        return instant[zone_name]

    default = when(broadcast.timezone)
    written = session.scalars(select(Lead.timezone).where(Lead.timezone.is_not(None)).distinct())
    by_zone: dict[datetime, list[str]] = defaultdict(list)
    for name in written:
        if name and is_valid_timezone(name) and name != "localtime":
            by_zone[when(name)].append(name)
    by_country: dict[datetime, list[str]] = defaultdict(list)
    for code, zone_name in COUNTRY_TIMEZONES.items():
        by_country[when(zone_name)].append(code)
    country = func.upper(func.trim(Lead.country))
    of_country = case(
        *(
            (country.in_(sorted(codes)), literal(at, UTCDateTime()))
            for at, codes in by_country.items()
        ),
        else_=literal(default, UTCDateTime()),
    )
    if not by_zone:
        return of_country
    return case(
        *(
            (Lead.timezone.in_(sorted(names)), literal(at, UTCDateTime()))
            for at, names in by_zone.items()
        ),
        else_=of_country,
    )


def _enrolment(
    session: Session,
    sequence: Sequence,
    found: Select[Any],
    due: ColumnElement[Any],
    said: str,
    now: datetime,
) -> Any:
    # As nurture.triggers: the cycles so far, aggregated once before the insert.
    earlier = (
        select(Enrollment.lead_id, func.max(Enrollment.cycle).label("cycle"))
        .where(Enrollment.sequence_id == sequence.id)
        .group_by(Enrollment.lead_id)
        .subquery("earlier")
    )
    when = literal(now, UTCDateTime())
    rows = found.with_only_columns(
        Lead.id,
        literal(sequence.id),
        literal(sequence.version),
        func.coalesce(earlier.c.cycle, 0) + 1,
        literal("active"),
        literal(sequence.first_step),
        when,
        due,
        literal(sequence.priority),
        literal(said),
        when,
    ).select_from(Lead.__table__.outerjoin(earlier, earlier.c.lead_id == Lead.id))
    return enrolments_from(session, rows)


# --- the dry run ----------------------------------------------------------------------


def dry_run(
    session: Session, broadcast: Broadcast, wall: datetime, now: datetime, settings: Settings
) -> Count:
    """Who the occurrence `wall` would go to if it started at `now`; nothing written.

    Each lead of the segment counts once, under the first reason that keeps it out, in
    the dispatcher's order (nurture.suppression); a lead at its frequency cap is a
    recipient whose email is deferred, not dropped."""
    consent = LATEST_CONSENT.element
    cap = settings.frequency_cap
    used = (
        select(func.count())
        .where(
            Delivery.lead_id == Lead.id,
            Delivery.status.in_(COUNTED_BY_CAP),
            func.coalesce(Delivery.sent_at, Delivery.updated_at) > now - timedelta(days=cap.days),
        )
        .scalar_subquery()
    )
    no_consent = consent.is_not(True) if settings.consent_required else false()
    reason = case(
        (Lead.unsubscribed_at.is_not(None), "unsubscribed"),
        (Lead.bounced_at.is_not(None), "bounced"),
        (
            or_(Lead.stage == "disqualified", func.coalesce(Lead.category, "") == "no_interest"),
            "disqualified",
        ),
        (consent.is_(False), "consent withdrawn"),
        (no_consent, "no consent"),
        (Lead.sunset_at.is_not(None), "sunset"),
        (_already(broadcast, wall), "already enrolled for this occurrence"),
        (used >= cap.emails, "at cap"),
        else_="recipient",
    ).label("reason")
    each = select(reason).where(segment_condition(session, broadcast.segment, now)).subquery()
    rows = session.execute(select(each.c.reason, func.count()).group_by(each.c.reason)).all()
    counts = {str(name): int(number) for name, number in rows}
    at_cap = counts.pop("at cap", 0)
    recipients_ = counts.pop("recipient", 0) + at_cap
    return Count(
        segment=recipients_ + sum(counts.values()),
        recipients=recipients_,
        at_cap=at_cap,
        kept_out=counts,
    )


def started(session: Session, broadcast_id: str) -> list[tuple[datetime, int]]:
    """The occurrences started so far (wall time, recipients), latest first."""
    rows = session.execute(
        select(BroadcastOccurrence.occurrence, BroadcastOccurrence.recipients)
        .where(BroadcastOccurrence.broadcast_id == broadcast_id)
        .order_by(BroadcastOccurrence.occurrence.desc())
    )
    return [(at.replace(tzinfo=None), count) for at, count in rows]
