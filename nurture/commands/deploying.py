"""Deployment commands: `nurture plan` (the files on disk against what is live) and
`nurture apply` (make them live, moving leads in flight as `migrate:` says)."""

from __future__ import annotations

import sys

import click

from nurture.cli import _now, _runtime, cli


@cli.command()
@click.option("--format", "form", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def plan(ctx: click.Context, form: str) -> None:
    """What `nurture apply` would change; exit 1 when the plan has a problem or an error."""
    from nurture.core.deployment import as_json, lines, problem_lines
    from nurture.db import upgrade
    from nurture.deployment import dumps, make_plan, plan_id

    runtime = _runtime(ctx)
    upgrade(runtime.settings.database_url)
    content = runtime.content
    with runtime.sessions() as session:
        result = make_plan(session, content)
    reviewed = plan_id(content)
    if form == "json":
        click.echo(dumps({**as_json(result), "plan_id": reviewed}))
    else:
        for line in lines(result):
            click.echo(line)
        click.echo(f"plan id: {reviewed} (nurture apply --expect {reviewed})")
    for line in problem_lines(result):
        click.echo(line, err=True)
    if result.errors or result.problems:
        sys.exit(1)


@cli.command()
@click.option(
    "--expect", metavar="PLAN_ID", help="Refuse unless the files are those of this reviewed plan."
)
@click.option("--format", "form", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def apply(ctx: click.Context, expect: str | None, form: str) -> None:
    """Make the files on disk live; move leads in flight as the files' `migrate:` says."""
    from nurture.core.deployment import as_json, lines
    from nurture.db import upgrade
    from nurture.deployment import Refused, Stale, apply, dumps, summary

    runtime = _runtime(ctx)
    upgrade(runtime.settings.database_url)
    try:
        with runtime.sessions.begin() as session:
            done = apply(session, runtime.content, _now(), expect)
    except Stale as error:
        click.echo(f"nothing applied: {error}", err=True)
        sys.exit(1)
    except Refused as error:
        for problem in error.plan.errors:
            click.echo(str(problem), err=True)
        click.echo(f"nothing applied: {len(error.plan.errors)} error(s)", err=True)
        sys.exit(1)
    if form == "json":
        click.echo(dumps({"plan": as_json(done.plan), **summary(done)}))
        return
    for line in [*lines(done.plan), *done.lines()]:
        click.echo(line)
