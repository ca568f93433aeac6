"""The Operations section, for admins: the CRM outbox and its dead letters, deliveries
to settle, the tracking backlog, workers and alarms, CSV imports (this module), API keys
(`operations_keys`). What the figures are: `operations_figures`.

Each button does what its CLI command does, through the same function: Replay is
`nurture crm replay` (`crm.replay`), the delivery actions are `nurture deliveries
resolve --mark-sent / --resend / --skip` (`deliveries.resolve`). The CLI keeps no
audit entry for these; the console logs one line per action, naming the console user
by id (logs carry no email address, docs/security.md).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.wrappers import Response as Answer

from nurture.config import spool_folder
from nurture.console import blueprint
from nurture.console.auth import now, requires, user
from nurture.console.operations_figures import ago, deliveries, outbox, schedule, tracking
from nurture.crm import replay
from nurture.deliveries import ACTIONS, ATTENTION, ResolveError, check_found, listed, resolve
from nurture.dispatch import Dispatcher
from nurture.import_runs import latest
from nurture.models import CrmPush
from nurture.web import runtime
from nurture.web.tracking import faults

log = logging.getLogger(__name__)

# The CLI's action names (`--mark-sent`, `--resend`, `--skip`), as the buttons say them.
ACTION_LABELS = {"mark-sent": "Count as sent", "resend": "Resend", "skip": "Skip"}
assert tuple(ACTION_LABELS) == ACTIONS


@dataclass(frozen=True)
class ThisProcess:
    """What only the process serving the page knows, as /healthz and /metrics say it."""

    spool_problem: str | None  # /healthz "spool"
    spool_write_failures: int  # nurture_spool_write_failures_total
    direct: int  # nurture_tracking_hits_direct_total
    opens_dropped: int  # nurture_tracking_hits_dropped_total
    retry_pages: dict[str, int]  # nurture_tracking_click_retry_pages_total
    relay_paused_until: datetime | None  # a worker in this process (`nurture run`) waits
    relay_reason: str | None


def _this_process(at: datetime) -> ThisProcess:
    rt = runtime()
    spool = rt.spool
    found = faults()
    # Only `nurture run` sends from the web process; never start a dispatcher to ask.
    dispatcher: Dispatcher | None = vars(rt).get("dispatcher")
    relay = dispatcher.relay if dispatcher is not None else None
    paused = relay is not None and relay.paused(at)
    return ThisProcess(
        spool_problem=spool.check(),
        spool_write_failures=spool.write_failures,
        direct=spool.direct,
        opens_dropped=found.opens_dropped,
        retry_pages=dict(sorted(found.retry_pages.items())),
        relay_paused_until=relay.until if paused and relay else None,
        relay_reason=relay.reason if paused and relay else None,
    )


@blueprint.get("/operations")
@requires("admin")
def operations() -> str:
    rt = runtime()
    at = now()
    with rt.sessions() as session:
        figures = {
            "outbox": outbox(session, at),
            "deliveries": deliveries(session),
            "tracking": tracking(session, spool_folder(rt.settings)),
            "schedule": schedule(session, rt.settings, at),
            "imports": latest(session, at),
        }
    return render_template(
        "console/operations.html",
        **figures,
        process=_this_process(at),
        now=at,
        ago=ago,
        actions=ACTION_LABELS,
    )


def _back(anchor: str) -> Answer:
    return redirect(url_for("console.operations", _anchor=anchor), code=303)


# --- the CRM outbox: `nurture crm replay` -------------------------------------------------


@blueprint.post("/operations/crm/<int:push_id>/replay")
@requires("admin")
def replay_push(push_id: int) -> Answer:
    with runtime().sessions.begin() as session:
        was = session.scalar(select(CrmPush.status).where(CrmPush.id == push_id))
        count = replay(session, now(), [push_id])
    if count:
        log.info("console user %s replayed CRM push %s", user().id, push_id)
        flash(f"Push {push_id} queued again: pending, due now (same webhook-id).", "done")
    else:  # the CLI's words for an id that is not a dead letter
        reason = "no such push" if was is None else f"not a dead letter (it is {was})"
        flash(f"push {push_id}: {reason}", "problem")
    return _back("crm")


@blueprint.post("/operations/crm/replay")
@requires("admin")
def replay_all() -> Answer:
    with runtime().sessions.begin() as session:
        count = replay(session, now(), all_dead=True)
    log.info("console user %s replayed every dead CRM push: %s", user().id, count)
    if count:
        flash(f"{count} push(es) queued again: pending, due now.", "done")
    else:
        flash("No dead letter to replay.", "problem")
    return _back("crm")


# --- deliveries: `nurture deliveries resolve` ----------------------------------------------


def _settle(ids: list[int], action: str) -> Answer:
    if action not in ACTIONS:
        flash(f"action: expected one of {', '.join(ACTIONS)}", "problem")
        return _back("deliveries")
    if not ids:
        flash("Tick the deliveries to settle first.", "problem")
        return _back("deliveries")
    try:
        with runtime().sessions.begin() as session:
            # As `nurture deliveries resolve ID… --ACTION`: among those needing attention.
            rows = listed(session, ATTENTION, ids=ids)
            check_found(rows, ids)
            changed = resolve(session, rows, action, now())
    except ResolveError as error:  # nothing was changed
        flash(str(error), "problem")
        return _back("deliveries")
    log.info("console user %s settled deliveries %s: %s", user().id, changed, action)
    named = ", ".join(map(str, changed))
    flash(f"{len(changed)} deliveries: {action} ({ACTION_LABELS[action]}: {named}).", "done")
    return _back("deliveries")


@blueprint.post("/operations/deliveries/resolve")
@requires("admin")
def resolve_deliveries() -> Answer:
    raw = request.form.getlist("ids")
    if not all(value.isdigit() for value in raw):
        flash("ids: delivery ids are numbers", "problem")
        return _back("deliveries")
    return _settle(sorted({int(value) for value in raw}), request.form.get("action", ""))


@blueprint.post("/operations/deliveries/<int:delivery_id>/resolve")
@requires("admin")
def resolve_delivery(delivery_id: int) -> Answer:
    return _settle([delivery_id], request.form.get("action", ""))


# The API keys' pages join the blueprint with this module.
from nurture.console import operations_keys  # noqa: E402, F401
