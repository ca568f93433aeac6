"""What a batch's arrivals do, computed in memory before anything is written.

For each arriving lead, the same steps as `nurture.intake.take` (merge, account, consent,
enrolment by trigger and audience, stage, qualification, score), applied to a `Draft`
of the lead; the rows they would add are collected in a `Plan`, keyed by email until
the leads have ids. `arrive` raises RowPath when the arrival needs what only the row
path does (a stage move by score, enrolment decisions or a promotion for a lead stored
before the batch, whose enrolments are in the database, or a promotion after such an
arrival): nurture.intake_batch then takes that person's arrivals one by one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy.orm import Session

from nurture.accounts import key_of
from nurture.content import Content
from nurture.core.accounts import AccountKey
from nurture.core.admission import Occurrence, admission, exit_on_stage, may_reenter
from nurture.core.decisions import NOT_ENROLLED, Decision
from nurture.core.intake import LeadInput
from nurture.core.routing import NoRoute, route
from nurture.core.sequences import Sequence, TriggerKind
from nurture.core.timing import resolve_timezone
from nurture.enrollment import refused_reentry
from nurture.leads import Draft, merge, profile_of, shown
from nurture.models import Lead
from nurture.promotion import rep_load, sla_deadline
from nurture.qualifying import assess
from nurture.scores import standing


@dataclass
class Plan:
    """Rows to add, each with the `email` of its lead in place of `lead_id`."""

    history: list[dict[str, Any]] = field(default_factory=list)
    consents: list[dict[str, Any]] = field(default_factory=list)
    decisions: list[tuple[str, Decision]] = field(default_factory=list)
    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    promotions: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Plan) -> None:
        self.history += other.history
        self.consents += other.consents
        self.decisions += other.decisions
        self.stage_changes += other.stage_changes
        self.events += other.events
        self.promotions += other.promotions


@dataclass
class Promoting:
    """What promotions in memory need: whether they may be made here, and the reps'
    open promotions as `promotion.rep_load` would count them at each one."""

    allowed: bool = True
    loads: dict[str, int] | None = None  # read at the batch's first promotion

    def load(self, session: Session) -> dict[str, int]:
        if self.loads is None:
            self.loads = rep_load(session)
        return self.loads


class RowPath(Exception):
    """This arrival is taken by the row path (nurture.intake.take)."""


@dataclass
class Arrival:
    """One arrival being computed: the draft it changes and the rows it adds."""

    session: Session
    content: Content
    lead: Draft
    now: datetime
    sla: timedelta
    promoting: Promoting
    plan: Plan = field(default_factory=Plan)
    # The batch's accounts by key (made before the arrivals), and its leads as they
    # stand before this arrival (by email): what an account's figures are made of.
    accounts: Mapping[AccountKey, int] = field(default_factory=dict)
    others: Mapping[str, Draft] = field(default_factory=dict)

    def arrive(self, data: LeadInput, created: bool, source: str, suppressed: bool) -> None:
        """As `take` after its look-up; raises RowPath when the row path must do it."""
        lead, now = self.lead, self.now
        previous_stage = None if created else lead.stage
        if created and suppressed:
            # Unsubscribed or erased before: known again, but never mailed again.
            lead.unsubscribed_at = now
        changes, new_tags = merge(lead, data, created, now)
        key = key_of(self.content, lead)
        if key is not None and key not in self.accounts:
            raise RowPath("its account was not made with the batch's")
        lead.account_id = None if key is None else self.accounts[key]
        self.plan.history += [
            {"email": lead.email, "field": name, "old_value": shown(old),
             "new_value": shown(new), "source": source, "at": now}
            for name, old, new in changes
        ]  # fmt: skip
        if data.consent is not None:
            given = data.consent
            self.plan.consents.append(
                {"email": lead.email, "purpose": given.purpose, "granted": given.granted,
                 "source": given.source or source, "text_version": given.text_version, "at": now}
            )  # fmt: skip
        if created:
            self.enrol(Occurrence(TriggerKind.LEAD_CREATED))
            if lead.stage != "lead":
                self.on_stage(lead.stage)
        elif "stage" in data.values and data.values["stage"] != previous_stage:
            stage = lead.stage
            lead.stage = previous_stage or "lead"
            self.set_stage(stage, f"set by {source}")
        for tag in sorted(new_tags):
            self.enrol(Occurrence(TriggerKind.TAG_ADDED, tag=tag))
        found = assess(self.content, lead)
        graded = None  # the fit grade assess computed, while the lead is as it saw it
        if found is not None:
            lead.grade, lead.category, lead.reasons = found.grade, found.category, found.reasons
            if found.disqualify is not None:
                self.set_stage("disqualified", found.disqualify)
            elif found.promote is not None:
                self.promote(found.promote)
            elif self.content.scoring is not None:
                graded = found.grade
        model = self.content.scoring
        if model is not None:
            lead.grade, lead.score, move = standing(model, lead, now, grade=graded)
            if move is not None:
                raise RowPath(f"moved to {move.stage} by its score")

    def _enrolments(self) -> list[dict[str, Any]]:
        if self.lead.enrolments is None:
            raise RowPath("its enrolments are in the database")
        return self.lead.enrolments

    def enrol(self, occurrence: Occurrence) -> None:
        """As `enrollment.enrol`."""
        profile = profile_of(self.lead)
        for sequence in self.content.live():
            trigger, refused = admission(sequence, occurrence, profile)
            if trigger is None:
                continue
            if refused is not None:
                why = f"not entered on {occurrence.describe()}: {refused}"
                self._note(Decision(NOT_ENROLLED, why, sequence.id))
                continue
            self.enter(sequence, occurrence.describe())

    def enter(self, sequence: Sequence, trigger: str) -> None:
        """As `enrollment.enter`, with the lead's enrolments in memory."""
        lead, now = self.lead, self.now
        mine = [e for e in self._enrolments() if e["sequence_id"] == sequence.id]
        latest = max(mine, key=lambda e: e["cycle"]) if mine else None
        if latest is not None and latest["status"] == "active":
            return
        tz = resolve_timezone(lead.timezone, lead.country, sequence.timezone)
        if latest is not None and not may_reenter(sequence, latest["left_at"], now, tz):
            why = refused_reentry(sequence, latest["left_at"], trigger)
            self._note(Decision(NOT_ENROLLED, why, sequence.id))
            return
        self._enrolments().append(
            {"email": lead.email, "sequence_id": sequence.id, "version": sequence.version,
             "cycle": latest["cycle"] + 1 if latest else 1, "status": "active",
             "step_id": sequence.first_step, "step_started_at": now, "due_at": now,
             "priority": sequence.priority, "waiting_for": None, "note": None,
             "trigger": trigger[:200], "entered_at": now, "left_at": None, "exit_reason": None}
        )  # fmt: skip

    def on_stage(self, stage: str) -> None:
        """As `enrollment.on_stage`: exits first, then entries."""
        for enrolment in list(self._enrolments()):
            if enrolment["status"] != "active":
                continue
            sequence = self.content.pinned(
                self.session, enrolment["sequence_id"], enrolment["version"]
            )
            reason = exit_on_stage(sequence, stage)
            if reason is not None:
                self._leave(reason, enrolment["sequence_id"])
        self.enrol(Occurrence(TriggerKind.STAGE_REACHED, stage=stage))

    def _leave(self, reason: str, sequence_id: str) -> None:
        """As `enrollment.leave` for one sequence."""
        for enrolment in self._enrolments():
            if enrolment["sequence_id"] == sequence_id and enrolment["status"] == "active":
                self._leave_one(enrolment, reason)

    def _leave_one(self, enrolment: dict[str, Any], reason: str) -> None:
        enrolment.update(
            status="exited", left_at=self.now, exit_reason=reason, due_at=None, waiting_for=None
        )

    def set_stage(self, stage: str, cause: str) -> None:
        """As `enrollment.set_stage`."""
        lead, now = self.lead, self.now
        if stage == lead.stage:
            return
        self._enrolments()  # the exits and entries that follow need them
        previous = lead.stage
        since = lead.stage_since or lead.created_at
        lead.stage = stage
        lead.stage_since = now
        lead.updated_at = now
        self.plan.stage_changes.append(
            {"email": lead.email, "from_stage": previous, "to_stage": stage,
             "cause": cause[:300], "event_id": None, "since": since, "at": now}
        )  # fmt: skip
        self.plan.events.append(
            {"email": lead.email, "name": "stage_changed", "classification": None,
             "properties": {"from": previous, "to": stage, "cause": cause},
             "occurred_at": now, "recorded_at": now, "origin": "engine", "delivery_id": None}
        )  # fmt: skip
        self.on_stage(stage)

    def promote(self, reason: str) -> None:
        """As `promotion.promote` for a lead created in this batch: the CRM payload is
        made once the rows are written (nurture.intake_batch)."""
        lead, now = self.lead, self.now
        if lead.stage in ("sql", "opportunity", "customer", "disqualified"):
            return
        if not self.promoting.allowed:
            # An arrival taken one by one came before: its promotion counts in the
            # reps' load, so this one is made after it, one by one as well.
            raise RowPath("promoted after an arrival taken one by one")
        self._enrolments()
        routing = self.content.routing
        assignment = None
        if routing is not None:
            with contextlib.suppress(NoRoute):
                assignment = route(routing, profile_of(lead), self.promoting.load(self.session))
        if assignment is not None:
            lead.rep_name = assignment.rep.name
            lead.rep_email = assignment.rep.email
            lead.rep_phone = assignment.rep.phone
        zone = assignment.rep.timezone if assignment is not None else None
        due = sla_deadline(now, self.sla, zone, cast("Lead", lead))  # reads timezone, country
        self.plan.promotions.append(
            {"email": lead.email, "cycle": lead.cycle, "reason": reason[:500],
             "rep_name": lead.rep_name if assignment else None,
             "rep_email": lead.rep_email if assignment else None,
             "routing_rule": assignment.rule if assignment else None, "status": "pending",
             "status_at": now, "amount": None, "feedback_reason": None, "escalations": 0,
             "sla_breached": False, "sla_due_at": due, "accepted_at": None, "created_at": now}
        )  # fmt: skip
        for enrolment in self._enrolments():
            if enrolment["status"] == "active":
                self._leave_one(enrolment, "promoted to sales")
        self.set_stage("sql", f"promoted: {reason}")
        # The lead as the CRM payload shows it: as it is now, not after later arrivals
        # (which the batch takes one by one, after the payload is made).
        self.plan.promotions[-1]["lead"] = lead.row()
        # Its account as the batch has it now: the block is made once the arrivals are
        # done, for every promotion at once (nurture.intake_batch).
        account = lead.account_id
        key = key_of(self.content, lead)  # the key `arrive` found this account by
        if account is not None and key is not None:
            drafts = [
                d for e, d in self.others.items() if d.account_id == account and e != lead.email
            ]
            self.plan.promotions[-1]["account_of"] = (account, key, [*drafts, lead])

    def _note(self, decision: Decision) -> None:
        self.plan.decisions.append((self.lead.email, decision))
