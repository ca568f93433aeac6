"""`nurture report NAME --from DAY --to DAY`: the reports, as a table, CSV or JSON.

The command reads the clock once (the SLA report's "not yet due" is as of now). A
report asked for wrongly is refused in one line, with exit code 2 like any other
usage error, and nothing is read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from nurture.cli import cli
from nurture.core.reports import ReportError, parse_request


class ReportUsageError(click.ClickException):
    """A report asked for wrongly (shown as one line, no usage text)."""

    exit_code = 2


class _OneLineErrors(click.Command):
    """Click's own usage errors (an unknown option, a missing value) in one line too."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: click.Context | None = None,
        **extra: Any,
    ) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as error:
            raise ReportUsageError(error.format_message()) from None


@cli.command("report", cls=_OneLineErrors)
@click.argument("name", required=False, metavar="NAME")
@click.option("--from", "first", metavar="YYYY-MM-DD", help="First day, included (UTC).")
@click.option("--to", "last", metavar="YYYY-MM-DD", help="Last day, included (UTC).")
@click.option(
    "--by", metavar="GROUP", help="source, campaign, sequence, rep or month (as the report allows)."
)
@click.option("--format", "form", metavar="FORMAT", help="table (default), csv or json.")
@click.option("--view", metavar="VIEW", help="funnel: cohort (default) or period.")
@click.option("--attribution", metavar="MODEL", help="sources: first (default) or last touch.")
@click.option(
    "--live", is_flag=True,
    help="Every day counted from the history, not read from the daily summary.",
)  # fmt: skip
@click.pass_context
def report(
    ctx: click.Context,
    name: str | None,
    first: str | None,
    last: str | None,
    by: str | None,
    form: str | None,
    view: str | None,
    attribution: str | None,
    live: bool,
) -> None:
    """A report over the days from --from to --to: funnel, sla, velocity, sources,
    sequences or deliverability. Each states its definitions above its figures
    (docs/reports.md)."""
    from nurture.reports.output import report_text

    try:
        request = parse_request(name, first, last, by, form, view, attribution, live)
    except ReportError as error:
        raise ReportUsageError(str(error)) from None
    runtime = ctx.obj["runtime"]
    now = datetime.now(UTC)
    with runtime.sessions() as session:
        text = report_text(session, request, runtime.settings, now)
    click.echo(text, nl=False)


@cli.command("summarize")
@click.option(
    "--days", type=click.IntRange(min=1), metavar="N",
    help="Only the last N closed days (default: every day).",
)  # fmt: skip
@click.pass_context
def summarize_command(ctx: click.Context, days: int | None) -> None:
    """Sum the closed days again into the reports' daily summary, and measure the SLA
    of the hand-offs (the worker does it every day, and the last days every hour)."""
    from nurture.reports.summary import summarize

    runtime = ctx.obj["runtime"]
    started = datetime.now(UTC)
    with runtime.sessions.begin() as session:
        done = summarize(session, started, days, runtime.settings)
    took = (datetime.now(UTC) - started).total_seconds()
    click.echo(f"{done} in {took:.1f} s")


@cli.group("split")
def split() -> None:
    """A/B splits of the sequences: their results per variant (docs/reports.md)."""


@split.command("results")
@click.argument("sequence_id", metavar="SEQUENCE")
@click.option(
    "--format", "form", type=click.Choice(["table", "csv", "json"]), default="table",
    help="table (default), csv or json.",
)  # fmt: skip
@click.pass_context
def split_results(ctx: click.Context, sequence_id: str, form: str) -> None:
    """Each split of SEQUENCE, variant by variant, since it began: leads, emails sent,
    human clicks, MQL and SQL reached, and the confidence of beating the control."""
    from nurture.core.tables import render
    from nurture.experiments import split_tables

    runtime = ctx.obj["runtime"]
    sequence = runtime.content.get(sequence_id)
    if sequence is None:
        raise click.ClickException(runtime.content.missing(sequence_id))
    if not sequence.splits():
        raise click.ClickException(f"{sequence_id} has no split step")
    with runtime.sessions() as session:
        tables = split_tables(session, runtime.settings, sequence_id)
    click.echo("\n".join(render(t, form) for t in tables), nl=False)
