"""`nurture demo`: a newcomer's database, months of activity made by the real engine."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

import click

from nurture.cli import _now, _prepare, _runtime, cli
from nurture.runtime import Runtime


@cli.command()
@click.option(
    "--leads",
    default=2000,
    show_default=True,
    type=click.IntRange(1, 50_000),
    help="How many made-up people arrive.",
)
@click.option(
    "--months",
    default=6,
    show_default=True,
    type=click.IntRange(1, 24),
    help="Over how many months, up to now.",
)
@click.option(
    "--seed",
    default=42,
    show_default=True,
    type=int,
    help="The same seed makes the same people and the same counts.",
)
@click.pass_context
def demo(ctx: click.Context, leads: int, months: int, seed: int) -> None:  # fmt: skip
    """Fill an EMPTY database with made-up leads and months of activity: the real API,
    forms, tracking routes and engine under a simulated clock (docs/demo.md)."""
    from nurture.demo import DemoFailed, DemoRefused, populate

    runtime = _runtime(ctx)
    _prepare(runtime)
    settings = runtime.settings
    sink = "the SMTP relay of NURTURE_SMTP_URL" if settings.smtp_url else settings.outbox_dir
    click.echo(f"nurture demo: {leads:,} made-up leads over {months} months, seed {seed};"
               f" emails to {sink}")  # fmt: skip
    # The alarms the demo raises (sales late on the SLA) are in the database and in
    # /metrics; a warning line per alarm would only interleave with the progress.
    alarms = logging.getLogger("nurture.alarms")
    level, alarms.level = alarms.level, max(alarms.level, logging.ERROR)
    try:
        summary = populate(runtime, leads=leads, months=months, end=_now(), seed=seed,
                           progress=lambda line: click.echo(f"  {line}"))  # fmt: skip
    except DemoRefused as error:
        raise click.ClickException(str(error)) from None
    except DemoFailed as error:
        raise click.ClickException(f"the demo stopped: {error}") from None
    finally:
        alarms.setLevel(level)
    s = summary
    first, last = f"{s.start:%Y-%m-%d}", f"{s.end:%Y-%m-%d}"
    money = f"{s.won_amount:,.0f} {settings.currency}"
    click.echo(
        f"\nDone in {s.seconds:.0f} s, {first} to {last} (UTC):\n"
        f"  leads        {s.leads:,} ({s.french:,} in French, {s.english:,} in English)\n"
        f"  emails sent  {s.emails_sent:,}\n"
        f"  opens        {s.opens_human:,} by people, {s.opens_machine:,} by machines"
        f" (Apple Mail Privacy Protection, gateways), {s.hits_unknown:,} hits unknown\n"
        f"  clicks       {s.clicks_human:,} by people, {s.clicks_scanner:,} by link scanners\n"
        f"  left         {s.unsubscribed:,} unsubscribed, {s.bounced:,} bounced,"
        f" {s.complained:,} complained\n"
        f"  sales        {s.promotions:,} promoted and pushed to the CRM"
        f" ({s.crm_pushes:,} pushes), {s.answered:,} answered, {s.won:,} won ({money})\n"
        "\nTry:\n"
        f"  nurture report funnel --from {first} --to {last}\n"
        f"  nurture report sources --from {first} --to {last}\n"
        f"  nurture report sla --from {first} --to {last} --by rep\n"
        + (f"  nurture leads why {s.example}\n" if s.example else "")
        + "  nurture run      # the engine goes on from here, in real time"
    )
    click.echo(_console_user(runtime, s.end))


DEMO_USER = "admin@demo.example"


def _console_user(runtime: Runtime, now: datetime) -> str:
    """An admin for the demo's console, with a password made here and shown once (a
    newcomer opens the console without reading about users first)."""
    from nurture.console.users import UserError, create_user, find

    url = f"{runtime.settings.base_url}/console/"
    with runtime.sessions.begin() as session:
        if find(session, DEMO_USER) is not None:
            return f"\nThe console: {url}, as {DEMO_USER} (its password is unchanged)."
        for _ in range(5):  # a drawn password the rules refuse is drawn again
            password = secrets.token_urlsafe(15)
            try:
                create_user(session, DEMO_USER, "admin", password, now)
            except UserError:
                continue
            return (
                f"\nThe console, once `nurture run` serves it: {url}\n"
                f"  sign in as {DEMO_USER} with the password {password}\n"
                "  (made for this demo database and shown once: `nurture users password"
                f" {DEMO_USER}` sets another)"
            )
    return f"\nThe console: {url}; make yourself a user with `nurture users create`."
