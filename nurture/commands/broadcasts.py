"""`nurture broadcasts`: list the broadcast files, count an occurrence's recipients."""

from __future__ import annotations

from datetime import datetime

import click

from nurture.cli import _now, _runtime, cli


@cli.group()
def broadcasts() -> None:
    """One-off and recurring sends to a segment (docs/broadcasts.md)."""


@broadcasts.command("list")
@click.pass_context
def list_broadcasts(ctx: click.Context) -> None:
    """Each broadcast: its schedule, next occurrence and the last one started."""
    from nurture.broadcasts import broadcasts_of, started
    from nurture.core.broadcasts import next_wall_time

    runtime = _runtime(ctx)
    loaded = broadcasts_of(runtime.settings, runtime.content)
    now = _now()
    with runtime.sessions() as session:
        for broadcast in sorted(loaded.broadcasts.values(), key=lambda b: b.id):
            upcoming = next_wall_time(broadcast.schedule, now)
            last = started(session, broadcast.id)
            parts = [
                f"{broadcast.id}: {broadcast.schedule}",
                f"priority {broadcast.priority}",
                "next " + (f"{upcoming:%Y-%m-%d %H:%M}" if upcoming else "none"),
            ]
            if last:
                parts.append(f"last started {last[0][0]:%Y-%m-%d %H:%M} ({last[0][1]} leads)")
            if not broadcast.enabled:
                parts.append("disabled")
            click.echo(", ".join(parts))
    for problem in loaded.problems:
        click.echo(str(problem), err=True)
    if not loaded.broadcasts and not loaded.problems:
        click.echo(f"no broadcast files in {runtime.settings.broadcasts_dir}")


@broadcasts.command("dry-run")
@click.argument("broadcast_id")
@click.option(
    "--occurrence",
    help='The local wall time, such as "2026-12-10 09:00" (default: the next one).',
)
@click.pass_context
def dry_run(ctx: click.Context, broadcast_id: str, occurrence: str | None) -> None:
    """Count who an occurrence would reach now, and who is kept out and why; sends nothing."""
    from nurture.broadcasts import broadcasts_of
    from nurture.broadcasts import dry_run as count
    from nurture.core.broadcasts import next_wall_time, startable

    runtime = _runtime(ctx)
    loaded = broadcasts_of(runtime.settings, runtime.content)
    broadcast = loaded.broadcasts.get(broadcast_id)
    if broadcast is None:
        mine = [str(p) for p in loaded.problems if broadcast_id in p.path]
        known = ", ".join(sorted(loaded.broadcasts)) or "none"
        why = "\n  ".join(mine) if mine else f"the broadcasts: {known}"
        raise click.ClickException(f"unknown broadcast {broadcast_id!r}; {why}")
    now = _now()
    if occurrence is not None:
        try:
            wall = datetime.fromisoformat(occurrence.strip())
        except ValueError:
            raise click.BadParameter(
                'expected a local time such as "2026-12-10 09:00"', param_hint="--occurrence"
            ) from None
        if wall.tzinfo is not None:
            raise click.BadParameter("a wall time, without an offset", param_hint="--occurrence")
    else:
        due = startable(broadcast.schedule, now)
        found = due[-1] if due else next_wall_time(broadcast.schedule, now)
        if found is None:
            raise click.ClickException(f"{broadcast_id} has no occurrence to come")
        wall = found
    with runtime.sessions() as session:
        result = count(session, broadcast, wall, now, runtime.settings)
    click.echo(f"{broadcast.id} {wall:%Y-%m-%d %H:%M} (local time of each lead): dry run")
    click.echo(f"segment: {result.segment} leads")
    click.echo(f"recipients: {result.recipients}")
    click.echo(f"  at the frequency cap now (their email waits for a free slot): {result.at_cap}")
    for reason, number in sorted(result.kept_out.items()):
        click.echo(f"kept out, {reason}: {number}")
