"""Leads from the command line: import (and the imports' progress), show, top leads per
rep, why (the decision log)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from nurture.cli import _now, _prepare, _runtime, cli

SHOWN = 20  # refused rows listed on the terminal; all of them are in FILE.errors.csv


@cli.group()
def leads() -> None:
    """Leads: import (and the imports' progress), show, top leads per rep, why."""


@leads.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", help="Source to record on leads that have none.")
@click.option("--resume", is_flag=True, help="Go on with an interrupted import of FILE.")
@click.option(
    "--jobs",
    type=click.IntRange(1, 64),
    help="Share the file among this many processes (PostgreSQL; each person in one).",
)
@click.pass_context
def leads_import(
    ctx: click.Context, file: Path, source: str | None, resume: bool, jobs: int | None
) -> None:
    """Import leads from a CSV file (header row with field names; re-runnable).

    Columns: email (required), first_name, last_name, company, job_title, company_size,
    country, timezone, locale, source, campaign, stage, tags (separated by ;), and
    fields.NAME for custom fields. Bad rows are listed in FILE.errors.csv (line,
    reason) and the first ones shown as FILE:LINE: reason. Each chunk of rows (2,000 on
    PostgreSQL, 500 on SQLite; NURTURE_IMPORT_CHUNK) is committed with the import's
    progress: after an interruption, --resume goes on after the last committed chunk.
    --jobs N shares a large file among N processes on PostgreSQL (a person's rows stay
    in one, in file order); --resume goes on with such an import as it was started.
    """
    from nurture.csvimport import NothingToResume
    from nurture.import_split import CannotSplit, PartFailed, import_file

    runtime = _runtime(ctx)
    _prepare(runtime)
    size = file.stat().st_size
    started, done = time.monotonic(), [0, 0]  # bytes read by this run, and where it began

    def rate(_: object) -> str:
        read = done[0] - done[1]
        seconds = time.monotonic() - started
        if not read or seconds < 1:
            return ""
        left = (size - done[0]) / (read / seconds)
        return f"{read / seconds / 1e6:.1f} MB/s, {left // 60:.0f} min {left % 60:.0f} s left"

    with click.progressbar(
        length=size, label=f"importing {file.name}", file=sys.stderr, show_eta=False,
        item_show_func=rate,
    ) as bar:  # fmt: skip

        def read(count: int) -> None:
            if not done[0] and count and resume:
                done[1] = count  # the resumed run's first call: where it begins
            done[0] += count
            bar.update(count, done[0])

        try:
            report = import_file(runtime, file, _now(), source, read, resume, jobs)
        except (NothingToResume, CannotSplit) as error:
            raise click.ClickException(str(error)) from None
        except PartFailed as error:
            raise click.ClickException(
                f"the import stopped: {error}. What was committed stays;"
                f" `nurture leads import {file} --resume` goes on."
            ) from None
    if report.resumed_at is not None:
        click.echo(f"resumed at line {report.resumed_at}", err=True)
    for line, reason in report.refused[:SHOWN]:
        click.echo(f"{file}:{line}: {reason}", err=True)
    refused = report.refused_before + len(report.refused)
    if report.errors_file is not None:
        more = f" ({len(report.refused) - SHOWN} more)" if len(report.refused) > SHOWN else ""
        click.echo(f"every refused row{more}: {report.errors_file}", err=True)
    click.echo(f"imported {report.created} new, {report.updated} updated, {refused} refused")
    if refused:
        sys.exit(1)


@leads.command("imports")
@click.option("--format", "form", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_context
def leads_imports(ctx: click.Context, form: str) -> None:
    """The latest CSV imports: running, interrupted (and how to go on) or finished."""
    from nurture.core.tables import render
    from nurture.import_runs import imports_table

    runtime = _runtime(ctx)
    with runtime.sessions() as session:
        data = imports_table(session, _now())
    click.echo(render(data, form), nl=False)


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
