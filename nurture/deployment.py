"""`nurture plan` and `nurture apply`: the files on disk against what is live, and
making them live, moving leads in flight as the new file's `migrate:` says.

Apply works in one transaction: it publishes the versions on disk, locks the
enrollments it moves (`FOR UPDATE`; a worker claims with `SKIP LOCKED`, so it passes
them by until apply commits), moves each onto the new version, logs why, and pins every
sequence version in use to the template versions on disk.

Nothing is sent twice: an email is "the same" when it is the same template. The
delivery unique key (enrollment, step) guards the step ids the new version keeps; a
migration renames steps, so a template the lead was sent under a step id the new
version no longer has gets a `skipped` delivery under each new step that uses it: the
dispatcher passes those steps as done. A lead whose email
is being sent right now (claimed, sending, retry, uncertain) is not moved: it stays on
its version, and the summary says how many.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from nurture.content import Content, UnknownVersion
from nurture.core.decisions import MIGRATED, Decision
from nurture.core.deployment import Facts, Key, Plan, plan, target_of
from nurture.core.message import make_message_id
from nurture.core.sequences import EmailStep, Sequence
from nurture.db import among, update_rows
from nurture.decisions import as_row, write
from nurture.models import Delivery, Enrollment, SequenceVersion
from nurture.template_pins import templates_of

BUSY = ("claimed", "sending", "retry", "uncertain")  # on the wire, or maybe delivered
CHUNK = 2000  # enrollments per look-up of their deliveries


class Refused(Exception):
    """The plan has errors (a refused file, a bad `migrate:`): nothing was changed."""

    def __init__(self, result: Plan) -> None:
        super().__init__("; ".join(str(p) for p in result.errors))
        self.plan = result


class Stale(Exception):
    """The files changed since the plan that was reviewed: nothing was changed."""


@dataclass
class Applied:
    plan: Plan
    moved: int = 0
    stayed: int = 0
    busy: int = 0  # not moved: an email of theirs was being sent
    guarded: int = 0  # steps marked done: the lead already had that email
    repinned: list[tuple[str, str, str, str | None, str]] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"applied: {self.moved} lead(s) moved, {self.stayed} stay on their version,"
            f" {self.busy} not moved (an email of theirs was being sent; apply again later),"
            f" {self.guarded} step(s) marked done (email already received)"
        ]
        for sequence_id, version, name, old, new in self.repinned:
            was = "nothing" if old is None else f"v{old[:8]}"
            out.append(
                f"template {name}: {sequence_id} v{version[:8]} now renders v{new[:8]} (was {was})"
            )
        return out


def gather(session: Session, content: Content) -> Facts:
    """The facts a plan is made from: the files as `content` read them, the database."""
    disk = {s.id: s for s in content.live()}
    stored: dict[Key, Sequence | None] = {}
    newest: dict[str, tuple[datetime, str]] = {}
    rows = session.execute(
        select(SequenceVersion.sequence_id, SequenceVersion.version, SequenceVersion.loaded_at)
    )
    for sequence_id, version, loaded_at in rows:
        try:
            stored[(sequence_id, version)] = content.pinned(session, sequence_id, version)
        except UnknownVersion:
            stored[(sequence_id, version)] = None
        if sequence_id not in newest or newest[sequence_id][0] < loaded_at:
            newest[sequence_id] = (loaded_at, version)
    counted = session.execute(
        select(Enrollment.sequence_id, Enrollment.version, Enrollment.step_id, func.count())
        .where(Enrollment.status == "active")
        .group_by(Enrollment.sequence_id, Enrollment.version, Enrollment.step_id)
    )
    in_flight = {(s, v, step): n for s, v, step, n in counted}
    in_use = {(s, v) for s, v, _ in in_flight} | {(s.id, s.version) for s in disk.values()}
    pins = content.pins.pins_of(session, in_use)
    names = {name for found in pins.values() for name in found}
    templates = {}
    for name in sorted(names):
        found = content.pins.on_disk(name)
        if found is not None:
            templates[name] = found[0]
    return Facts(
        disk=disk,
        refused=content.problems,
        stored=stored,
        newest={sid: version for sid, (_, version) in newest.items()},
        in_flight=in_flight,
        pins=pins,
        templates=templates,
    )


def plan_id(content: Content) -> str:
    """What was reviewed: the sequence and template versions on disk (not the counts of
    leads, which move while the plan is read). `apply --expect` compares it."""
    parts = sorted(f"{s.id}@{s.version}" for s in content.live())
    names = sorted({name for s in content.live() for name in templates_of(s)})
    for name in names:
        found = content.pins.on_disk(name)
        parts.append(f"template {name}@{found[0] if found else '-'}")
    parts += [f"refused {p}" for p in content.problems]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def make_plan(session: Session, content: Content) -> Plan:
    return plan(gather(session, content))


def apply(session: Session, content: Content, now: datetime, expect: str | None = None) -> Applied:
    """Make the files on disk live and move the leads in flight; in the caller's
    transaction. Raises Refused or Stale having changed nothing."""
    if expect is not None and expect != plan_id(content):
        raise Stale(
            f"the files changed since plan {expect} (now {plan_id(content)}):"
            " run nurture plan again and review it"
        )
    result = make_plan(session, content)
    if result.errors:
        raise Refused(result)
    content.store_versions(session, now)
    done = Applied(result)
    for planned in result.sequences:
        new = content.get(planned.id)
        done.stayed += planned.staying
        if new is None or planned.moving == 0:
            continue
        _move(session, new, {g.version for g in planned.groups if g.target}, now, done)
    _repin(session, content, now, done)
    return done


def _move(
    session: Session, new: Sequence, versions: set[str], now: datetime, done: Applied
) -> None:
    query = (
        select(Enrollment.id, Enrollment.lead_id, Enrollment.version, Enrollment.step_id)
        .where(
            Enrollment.sequence_id == new.id,
            Enrollment.status == "active",
            Enrollment.version.in_(sorted(versions)),
        )
        .order_by(Enrollment.id)
        .with_for_update()  # a worker's claim (SKIP LOCKED) passes them by meanwhile
    )
    enrollments = session.execute(query).all()
    for start in range(0, len(enrollments), CHUNK):
        _move_chunk(session, new, enrollments[start : start + CHUNK], now, done)


def _move_chunk(
    session: Session, new: Sequence, enrollments: Iterable[Any], now: datetime, done: Applied
) -> None:
    # Read after the lock: a claim committed just before is seen.
    by_enrollment: dict[int, dict[str, Any]] = {}
    for row in session.execute(
        select(
            Delivery.enrollment_id,
            Delivery.step_id,
            Delivery.template,
            Delivery.status,
            Delivery.sent_at,
            Delivery.to_email,
        ).where(among(session, Delivery.enrollment_id, [e.id for e in enrollments]))
    ):
        by_enrollment.setdefault(row.enrollment_id, {})[row.step_id] = row
    moves: list[dict[str, Any]] = []
    decided: list[dict[str, Any]] = []
    guards: list[dict[str, Any]] = []
    busy = 0
    for enrollment in enrollments:
        target, why, _ = target_of(new, enrollment.step_id)
        if target is None:
            continue  # counted as staying by the plan
        mine = by_enrollment.get(enrollment.id, {})
        here = mine.get(enrollment.step_id)
        where = f"{enrollment.step_id} of v{enrollment.version[:8]}"
        if here is not None and here.status in BUSY:
            busy += 1
            reason = f"not moved by nurture apply: the email of {where} is {here.status}"
            decided.append(_row(enrollment.lead_id, reason, new.id, enrollment.step_id, now))
            continue
        # Emails had under a step id the new version no longer has (renamed, removed):
        # the unique key guards the kept ids; a template used twice on purpose stays so.
        sent = {
            d.template: d
            for d in mine.values()
            if d.status == "sent" and new.step(d.step_id) is None
        }
        guards += [
            _guard(enrollment, new, step, sent[step.template], now)
            for step in new.email_steps()
            if step.template in sent and step.id not in mine
        ]
        moves.append(
            {
                "id": enrollment.id,
                "version": new.version,
                "step_id": target,
                "due_at": now,  # walked again at once: the new step says when it is due
                "waiting_for": None,
            }
        )
        reason = f"moved from {where} to {target} of v{new.version[:8]} by nurture apply: {why}"
        decided.append(_row(enrollment.lead_id, reason, new.id, target, now))
    update_rows(session, Enrollment, moves)
    if guards:
        session.execute(insert(Delivery), guards)
    write(session, decided)
    done.moved += len(moves)
    done.busy += busy
    done.stayed += busy
    done.guarded += len(guards)


def _guard(enrollment: Any, new: Sequence, step: EmailStep, had: Any, now: datetime) -> Any:
    """A `skipped` delivery under a step whose email the lead already had: the unique key
    (enrollment, step) then keeps the dispatcher from sending it."""
    return {
        "enrollment_id": enrollment.id,
        "lead_id": enrollment.lead_id,
        "sequence_id": new.id,
        "version": new.version,
        "step_id": step.id,
        "template": step.template,
        "kind": step.kind,
        "status": "skipped",
        "attempts": 0,
        "message_id": make_message_id(
            f"apply/{enrollment.id}/{step.id}/{new.version}", "apply.nurture.invalid"
        ),
        "to_email": had.to_email,
        "last_error": f"not sent: the lead already had {step.template} as step {had.step_id}"
        " (moved by nurture apply)",
        "links": [],
        "created_at": now,
        # The steps after it count from when the lead had that email.
        "updated_at": had.sent_at or now,
    }


def _row(lead_id: int, reason: str, sequence_id: str, step_id: str, now: datetime) -> Any:
    return as_row(lead_id, Decision(MIGRATED, reason, sequence_id, step_id), now)


def _repin(session: Session, content: Content, now: datetime, done: Applied) -> None:
    """Every sequence version leads are in, and every one on disk, renders the template
    versions on disk from now on (a template folder that is gone keeps its pin)."""
    in_use = {
        (row.sequence_id, row.version)
        for row in session.execute(
            select(Enrollment.sequence_id, Enrollment.version)
            .where(Enrollment.status == "active")
            .distinct()
        )
    }
    in_use |= {(s.id, s.version) for s in content.live()}
    for sequence_id, version in sorted(in_use):
        try:
            sequence = content.pinned(session, sequence_id, version)
        except UnknownVersion:
            continue
        for name, old, new in content.pins.repin(
            session, sequence_id, version, templates_of(sequence), now
        ):
            done.repinned.append((sequence_id, version, name, old, new))


def as_text(applied: Applied) -> str:
    return "\n".join(applied.lines())


def summary(applied: Applied) -> dict[str, Any]:
    return {
        "moved": applied.moved,
        "stayed": applied.stayed,
        "busy": applied.busy,
        "guarded": applied.guarded,
        "repinned": [
            {"sequence": s, "version": v, "template": n, "from": old, "to": new}
            for s, v, n, old, new in applied.repinned
        ],
    }


def dumps(body: dict[str, Any]) -> str:
    return json.dumps(body, indent=2, sort_keys=True, default=str)
