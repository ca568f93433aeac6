"""Running it: API keys, deliveries that need an operator, rescoring, the CRM outbox."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from sqlalchemy import select

from nurture import redaction
from nurture.cli import _now, _prepare, _runtime, cli
from nurture.commands.authoring import _parse_time


@cli.group()
def keys() -> None:
    """API keys for the JSON API."""


@keys.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["intake", "events", "read", "sales", "admin"]),
    help="What the key may do (repeat it); default intake, events and read. The CRM's"
    " key needs sales.",
)
@click.pass_context
def keys_create(ctx: click.Context, name: str, scopes: tuple[str, ...]) -> None:
    """Create a key; it is shown once."""
    from nurture.apikeys import DEFAULT_SCOPES, KeyRefused, create_key

    runtime = _runtime(ctx)
    _prepare(runtime)
    try:
        with runtime.sessions.begin() as session:
            key = create_key(session, name, _now(), scopes or DEFAULT_SCOPES)
    except KeyRefused as error:
        raise click.ClickException(str(error)) from None
    click.echo(key)


@keys.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    """Every key: prefix, name, scopes, created, last used (to the minute), revoked."""
    from nurture.models import ApiKey

    def at(moment: datetime | None, none: str) -> str:
        return f"{moment:%Y-%m-%d %H:%M}" if moment else none

    runtime = _runtime(ctx)
    _prepare(runtime)
    with runtime.sessions() as session:
        found = list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))
    if not found:
        click.echo("no API key: `nurture keys create NAME` makes one")
    for key in found:
        click.echo(
            f"nk_{key.prefix}  {key.name}  [{key.scopes.replace(',', ', ')}]"
            f"  created {at(key.created_at, '')}  last used {at(key.last_used_at, 'never')}"
            + (f"  revoked {at(key.revoked_at, '')}" if key.revoked_at else "")
        )


@keys.command("revoke")
@click.argument("prefix")
@click.pass_context
def keys_revoke(ctx: click.Context, prefix: str) -> None:
    from nurture.apikeys import revoke_key

    runtime = _runtime(ctx)
    with runtime.sessions.begin() as session:
        if not revoke_key(session, prefix.split(".")[0], _now()):
            raise click.ClickException("no such active key")
    click.echo("revoked")


@cli.group()
def deliveries() -> None:
    """Deliveries an operator must look at (held, uncertain, failed, retrying)."""


_LISTED = ("claimed", "sending", "uncertain", "failed", "retry")


def _delivery_filters(
    status: str, since: str | None, sequence: str | None, transient: bool, ids: tuple[int, ...]
) -> dict[str, Any]:
    from nurture.deliveries import ATTENTION, HELD

    statuses = {"all": _LISTED, "held": HELD, "attention": ATTENTION}.get(status, (status,))
    return {
        "statuses": statuses,
        "since": _parse_time(since) if since else None,
        "sequence": sequence,
        "transient": transient,
        "ids": ids,
    }


def _row_line(row: Any, now: datetime) -> str:
    line = (
        f"{row.id:>8} {row.status:<9} {row.to_email:<32} {row.sequence_id}/{row.step_id}"
        f" attempts {row.attempts} <{row.message_id}>"
    )
    if row.status in ("claimed", "sending"):
        left = (row.lease_until - now).total_seconds() if row.lease_until else 0
        state = f"lease {left:.0f}s left" if left > 0 else "lease ended: holder gone"
        line += f" held by {row.claimed_by or '-'} ({state})"
    if row.relay_reply:
        line += f" relay: {row.queue_id or row.relay_reply}"
    if row.last_error:
        line += f": {redaction.text(row.last_error)}"
    return line


_STATUS = click.Choice(["all", "held", "attention", *_LISTED])


@deliveries.command("list")
@click.option("--status", type=_STATUS, default="all", show_default=True)
@click.option("--since", help="Changed at or after this time (ISO 8601 with offset).")
@click.option("--sequence", help="Only this sequence.")
@click.option("--transient", is_flag=True, help="Only failures for a passing reason.")
@click.pass_context
def deliveries_list(
    ctx: click.Context, status: str, since: str | None, sequence: str | None, transient: bool
) -> None:
    """Held rows with their holder and lease; the others with Message-ID and relay answer."""
    from nurture.deliveries import listed

    runtime = _runtime(ctx)
    now = _now()
    with runtime.sessions() as session:
        rows = listed(session, **_delivery_filters(status, since, sequence, transient, ()))
    for row in rows:
        click.echo(_row_line(row, now))
    click.echo(f"{len(rows)} deliveries")


@deliveries.command("resolve")
@click.argument("delivery_ids", nargs=-1, type=int)
@click.option("--uncertain", "status", flag_value="uncertain", help="Every uncertain delivery.")
@click.option("--failed", "status", flag_value="failed", help="Every failed delivery.")
@click.option("--since", help="Only those changed at or after this time (ISO 8601).")
@click.option("--sequence", help="Only this sequence.")
@click.option("--transient", is_flag=True, help="Only failures for a passing reason.")
@click.option("--resend", "action", flag_value="resend", help="Send it again (lead still there).")
@click.option("--mark-sent", "action", flag_value="mark-sent", help="Confirmed delivered.")
@click.option("--sent", "action", flag_value="mark-sent", hidden=True)
@click.option("--skip", "action", flag_value="skip", help="Do not send: move on.")
@click.option("--dry-run", is_flag=True, help="Show what would change, change nothing.")
@click.pass_context
def deliveries_resolve(
    ctx: click.Context,
    delivery_ids: tuple[int, ...],
    status: str | None,
    since: str | None,
    sequence: str | None,
    transient: bool,
    action: str | None,
    dry_run: bool,
) -> None:
    """Settle uncertain, failed or retrying deliveries, by id or in bulk with filters;
    each lead resumes at once (after --mark-sent or --skip it moves on; after --resend
    the email goes again)."""
    from nurture.deliveries import ResolveError, check_found, listed, resolve

    if action is None:
        raise click.UsageError("choose --resend, --mark-sent or --skip")
    if not delivery_ids and status is None:
        raise click.UsageError("give delivery ids, or --uncertain / --failed with filters")
    filters = _delivery_filters(status or "attention", since, sequence, transient, delivery_ids)
    runtime = _runtime(ctx)
    now = _now()
    with runtime.sessions.begin() as session:
        rows = listed(session, **filters)
        try:
            check_found(rows, delivery_ids)
        except ResolveError as error:
            raise click.ClickException(str(error)) from None
        if dry_run:
            for row in rows:
                click.echo(f"would {action}: " + _row_line(row, now))
            click.echo(f"{len(rows)} deliveries would be changed (dry run)")
            return
        try:
            changed = resolve(session, rows, action, now)
        except ResolveError as error:
            raise click.ClickException(str(error)) from None
    for delivery_id in changed:
        click.echo(f"delivery {delivery_id}: {action}")
    click.echo(f"{len(changed)} deliveries: {action}")


# --- scoring and the CRM ----------------------------------------------------------------


@cli.group()
def scoring() -> None:
    """Lead scoring (sequences/rules/scoring.yaml)."""


@scoring.command("rescore")
@click.pass_context
def scoring_rescore(ctx: click.Context) -> None:
    """Recompute every lead's score from the event log with the current scoring file."""
    from nurture.scores import rescore

    runtime = _runtime(ctx)
    _prepare(runtime)
    model = runtime.content.scoring
    if model is None:
        raise click.ClickException(
            f"no usable scoring file at {runtime.settings.scoring_file}: run `nurture validate`"
        )
    report = rescore(runtime.sessions, model, _now())
    click.echo(f"rescored {report.leads} leads: {report.changes} score changes (v{model.version})")


@cli.group()
def crm() -> None:
    """The CRM outbox: status, replay of dead letters, signing secret."""


@crm.command("status")
@click.pass_context
def crm_status(ctx: click.Context) -> None:
    from nurture.crm import outbox_summary

    runtime = _runtime(ctx)
    with runtime.sessions() as session:
        summary = outbox_summary(session, _now())
        click.echo(
            f"pending {summary.pending} (due {summary.due}), delivered {summary.delivered}, "
            f"dead {summary.dead}"
        )
        for state in summary.disabled:
            click.echo(f"disabled endpoint {redaction.url(state.url)}: {state.reason}")
        from nurture.models import CrmPush

        for push in session.scalars(select(CrmPush).where(CrmPush.status == "dead")):
            click.echo(
                f"dead {push.id:>6} {push.webhook_id} {push.kind}: "
                f"{push.attempts} attempts, last {push.last_status or '-'}"
                f" {redaction.text(push.last_error or '')}"
            )


@crm.command("replay")
@click.argument("push_ids", nargs=-1, type=int)
@click.option("--all", "all_dead", is_flag=True, help="Replay every dead letter.")
@click.pass_context
def crm_replay(ctx: click.Context, push_ids: tuple[int, ...], all_dead: bool) -> None:
    """Send dead-lettered pushes again (same webhook-id), at the next tick."""
    from nurture.crm import replay

    if not push_ids and not all_dead:
        raise click.UsageError("give push ids, or --all")
    from nurture.models import CrmPush

    runtime = _runtime(ctx)
    with runtime.sessions.begin() as session:
        statuses = select(CrmPush.id, CrmPush.status).where(CrmPush.id.in_(push_ids))
        before = {push_id: status for push_id, status in session.execute(statuses)}
        count = replay(session, _now(), list(push_ids) or None, all_dead=all_dead)
    click.echo(f"{count} push(es) queued again")
    # Ids that were not dead letters: say which and why, and fail.
    refused = [
        f"push {push_id}: no such push"
        if push_id not in before
        else f"push {push_id}: not a dead letter (it is {before[push_id]})"
        for push_id in dict.fromkeys(push_ids)
        if before.get(push_id) != "dead"
    ]
    if refused:
        raise click.ClickException("; ".join(refused))


@crm.command("enable")
@click.argument("url")
@click.pass_context
def crm_enable(ctx: click.Context, url: str) -> None:
    """Use an endpoint again after it answered 410 Gone."""
    from nurture.crm import enable_endpoint

    runtime = _runtime(ctx)
    with runtime.sessions.begin() as session:
        if not enable_endpoint(session, url):
            raise click.ClickException(f"{redaction.url(url)} is not disabled")
    click.echo(f"{redaction.url(url)} enabled")


@crm.command("secret")
def crm_secret() -> None:
    """Print a new signing secret for NURTURE_CRM_WEBHOOK_SECRET."""
    from nurture.crm import generate_secret

    click.echo(generate_secret())


# --- personal data ---------------------------------------------------------------------
