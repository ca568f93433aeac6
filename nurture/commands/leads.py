"""Leads from the command line: import, show, top leads per rep, why (the decision log)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from nurture.cli import _now, _prepare, _runtime, cli


@cli.group()
def leads() -> None:
    """Leads: import, show, top leads per rep, why (the decision log)."""


@leads.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", help="Source to record on leads that have none.")
@click.pass_context
def leads_import(ctx: click.Context, file: Path, source: str | None) -> None:
    """Import leads from a CSV file (header row with field names; re-runnable).

    Columns: email (required), first_name, last_name, company, job_title, company_size,
    country, timezone, locale, source, campaign, stage, tags (separated by ;), and
    fields.NAME for custom fields. Bad rows are reported as FILE:LINE: reason.
    """
    from nurture.csvimport import import_csv

    runtime = _runtime(ctx)
    _prepare(runtime)
    with click.progressbar(
        length=file.stat().st_size, label=f"importing {file.name}", file=sys.stderr
    ) as bar:
        report = import_csv(runtime, file, _now(), source, progress=bar.update)
    for line, reason in report.refused:
        click.echo(f"{file}:{line}: {reason}", err=True)
    click.echo(
        f"imported {report.created} new, {report.updated} updated, {len(report.refused)} refused"
    )
    if report.refused:
        sys.exit(1)


@leads.command("show")
@click.argument("email")
@click.pass_context
def leads_show(ctx: click.Context, email: str) -> None:
    """A lead, its enrollments and its timeline, as JSON."""
    from nurture.leads import find_lead
    from nurture.web.api import lead_json

    runtime = _runtime(ctx)
    with runtime.sessions() as session:
        lead = find_lead(session, email.strip().lower())
        if lead is None:
            raise click.ClickException(f"no lead with email {email}")
        body = lead_json(session, lead, detail=True, content=runtime.content)
        click.echo(json.dumps(body, indent=2, default=str, ensure_ascii=False))


@leads.command("top")
@click.option("--rep", help="One rep's list (their email), else every rep's.")
@click.option("--format", "form", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_context
def leads_top(ctx: click.Context, rep: str | None, form: str) -> None:
    """Today's top leads per rep: the daily digest's list, as a report."""
    from nurture.core.tables import render
    from nurture.digest import top_table

    runtime = _runtime(ctx)
    routing = runtime.content.routing
    if routing is None:
        raise click.ClickException(
            f"no routing file at {runtime.settings.routing_file}: leads have no reps"
        )
    with runtime.sessions() as session:
        try:
            data = top_table(session, routing, _now(), runtime.settings.digest_size, rep)
        except LookupError as error:
            raise click.BadParameter(str(error), param_hint="--rep") from None
    click.echo(render(data, form), nl=False)


@leads.command("why")
@click.argument("email")
@click.option("--sequence", help="Only what concerns this sequence.")
@click.option("--step", help="Only what concerns this step of it (needs --sequence).")
@click.pass_context
def leads_why(ctx: click.Context, email: str, sequence: str | None, step: str | None) -> None:
    """Why did (or didn't) this lead get an email: every decision, oldest first."""
    from nurture.core.decisions import explain
    from nurture.decisions import story
    from nurture.leads import find_lead

    if step is not None and sequence is None:
        raise click.UsageError("--step needs --sequence: step ids belong to a sequence")
    runtime = _runtime(ctx)
    with runtime.sessions() as session:
        lead = find_lead(session, email.strip().lower())
        if lead is None:
            raise click.ClickException(f"no lead with email {email}")
        lines = explain(story(session, lead.id), sequence, step)
    for line in lines or ["nothing was decided about this lead yet"]:
        click.echo(line)
