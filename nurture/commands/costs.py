"""Costs per source and month, for cost per lead and ROI (docs/reports.md)."""

from __future__ import annotations

import click

from nurture.cli import _now, _prepare, _runtime, cli


@cli.group()
def costs() -> None:
    """What each source and campaign cost, per month (for cost per lead and ROI)."""


@costs.command("set")
@click.argument("source")
@click.option("--campaign", help="One campaign of the source (default: the source as a whole).")
@click.option("--month", required=True, help="The month, as YYYY-MM.")
@click.option("--amount", required=True, help="What it cost that month.")
@click.option("--currency", help="The amount's currency (default: NURTURE_CURRENCY).")
@click.option("--rate", help="Converts --currency to NURTURE_CURRENCY (needed when they differ).")
@click.pass_context
def costs_set(
    ctx: click.Context,
    source: str,
    campaign: str | None,
    month: str,
    amount: str,
    currency: str | None,
    rate: str | None,
) -> None:
    """Record what SOURCE (or one campaign of it) cost in a month; again replaces it."""
    from nurture.costs import CostError, record

    runtime = _runtime(ctx)
    _prepare(runtime)
    kept_in = runtime.settings.currency
    try:
        with runtime.sessions.begin() as session:
            done = record(session, kept_in, source, month, amount, _now(), campaign,
                          currency, rate)  # fmt: skip
            cost = done.cost
            said = f"{cost.source}" + (f" / {cost.campaign}" if cost.campaign else "")
            line = f"{said} {cost.month}: {cost.amount} {kept_in}"
    except CostError as error:
        raise click.BadParameter(str(error)) from None
    if done.replaced is not None:
        line += f" (was {done.replaced} {kept_in})"
    click.echo(line)


@costs.command("list")
@click.option("--from", "start", help="First month, YYYY-MM.")
@click.option("--to", "end", help="Last month, YYYY-MM.")
@click.option("--format", "form", type=click.Choice(["table", "csv", "json"]), default="table")
@click.pass_context
def costs_list(ctx: click.Context, start: str | None, end: str | None, form: str) -> None:
    """The costs recorded, month by month."""
    from nurture.core.tables import render
    from nurture.costs import CostError
    from nurture.reports.output import cost_table

    runtime = _runtime(ctx)
    try:
        with runtime.sessions() as session:
            data = cost_table(session, runtime.settings.currency, start, end)
    except CostError as error:
        raise click.BadParameter(str(error)) from None
    click.echo(render(data, form), nl=False)
