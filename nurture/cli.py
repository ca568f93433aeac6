"""The `nurture` command. Each command reads the clock once and passes `now` down."""

from __future__ import annotations

import logging
import os
import re
import sys
from datetime import UTC, datetime

import click

from nurture import redaction
from nurture.config import ConfigError, load_settings
from nurture.runtime import Runtime


def _now() -> datetime:
    return datetime.now(UTC)


def _runtime(ctx: click.Context) -> Runtime:
    runtime: Runtime = ctx.obj["runtime"]
    return runtime


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log every tick and decision.")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """nurture: declarative nurture sequences, timed personalised emails."""
    redaction.install_logging()  # no log line carries a secret or an email address
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # What the engine sends, one line per batch, is shown without --verbose.
    logging.getLogger("nurture.activity").setLevel(logging.INFO)
    try:
        settings = load_settings()
    except ConfigError as error:
        raise click.ClickException(f"configuration: {error}") from None
    ctx.obj = {"runtime": Runtime(settings)}
    ctx.call_on_close(ctx.obj["runtime"].close)


def main() -> None:
    from sqlalchemy.exc import InterfaceError, OperationalError

    try:
        cli()
    except (OperationalError, InterfaceError) as error:
        # A database that is missing or away is an operator's fix, not a traceback.
        click.echo(f"Error: {database_problem(error)}", err=True)
        sys.exit(1)


def database_problem(error: Exception) -> str:
    """One line saying what is wrong with the database and what to do."""
    cause = getattr(error, "orig", None) or error
    first = redaction.text(str(cause).strip().splitlines()[0] if str(cause).strip() else "")
    missing = re.search(r'database "([^"]+)" does not exist', first)
    if missing:
        return (
            f"{first}: create it (`createdb {missing.group(1)}`, or CREATE DATABASE) or"
            " correct NURTURE_DATABASE_URL, then run `nurture db upgrade`"
        )
    if "Connection refused" in first or "could not connect" in first:
        return f"{first}: is PostgreSQL running there? (NURTURE_DATABASE_URL)"
    if "no such table" in first or re.search(r'relation "[^"]+" does not exist', first):
        return f"{first}: the database is not up to date: run `nurture db upgrade`"
    if "unable to open database file" in first:
        return f"{first}: the folder of the SQLite file must exist and be writable"
    return f"the database: {first} (NURTURE_DATABASE_URL)"


# --- database --------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or migrate the schema to the latest version."""
    from nurture.db import upgrade

    upgrade(_runtime(ctx).settings.database_url)
    click.echo("database is up to date")


def _prepare(runtime: Runtime) -> None:
    from nurture.db import upgrade

    upgrade(runtime.settings.database_url)
    for problem in [*runtime.content.problems, *runtime.settings.notices()]:
        click.echo(f"warning: {problem}", err=True)


# --- running ---------------------------------------------------------------------


@cli.command()
@click.option("--host", default=None, help="Address to listen on (NURTURE_HOST).")
@click.option("--port", type=int, default=None, help="Port (NURTURE_PORT).")
@click.pass_context
def run(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Web app and scheduler in one process (small deployments, demos)."""
    from werkzeug.serving import run_simple

    from nurture.app import create_app
    from nurture.scheduler import make_scheduler

    runtime = _runtime(ctx)
    _prepare(runtime)
    settings = runtime.settings
    scheduler = make_scheduler(runtime, blocking=False)
    scheduler.start()
    app = create_app(runtime=runtime)
    sink = redaction.url(settings.smtp_url) if settings.smtp_url else None
    sink = sink or f"outbox folder {settings.outbox_dir}"
    click.echo(
        f"nurture: {len(runtime.content.live())} sequences, emails to {sink}, "
        f"listening on http://{host or settings.host}:{port or settings.port}"
    )
    try:
        run_simple(host or settings.host, port or settings.port, app, threaded=True)
    finally:
        scheduler.shutdown(wait=True)


@cli.command()
@click.pass_context
def worker(ctx: click.Context) -> None:
    """Scheduler and dispatcher only; run as many as you like on PostgreSQL.

    SIGTERM or SIGINT stops it gracefully (see NURTURE_SHUTDOWN_GRACE_SECONDS).
    """

    from nurture.scheduler import HITS_SECONDS, make_scheduler
    from nurture.shutdown import finish, stop_on_signals

    runtime = _runtime(ctx)
    _prepare(runtime)
    grace = runtime.settings.shutdown_grace_seconds
    click.echo(
        f"nurture worker: ticking every {runtime.settings.tick_seconds:g}s,"
        f" tracking hits every {HITS_SECONDS:g}s"
    )
    stopping = stop_on_signals(
        runtime,
        lambda name: click.echo(f"nurture worker: {name}: stopping (grace {grace:g}s)"),
    )
    scheduler = make_scheduler(runtime, blocking=False)
    scheduler.start()
    while not stopping.wait(1.0):
        pass
    if not finish(lambda: scheduler.shutdown(wait=True), grace):
        click.echo(f"nurture worker: still busy after {grace:g}s; leaving (see the journal)")
        logging.shutdown()
        os._exit(1)  # the stuck SMTP thread would hold the interpreter's exit
    click.echo("nurture worker: stopped")  # the runtime closes with the command


@cli.command()
@click.pass_context
def tick(ctx: click.Context) -> None:
    """Process everything due now, the inactivity and date triggers included, once, and
    exit (SIGTERM/SIGINT: stop gracefully)."""
    from nurture.scheduler import work
    from nurture.shutdown import stop_on_signals

    runtime = _runtime(ctx)
    _prepare(runtime)
    stop_on_signals(runtime, lambda name: click.echo(f"nurture tick: {name}: stopping"))
    for line in work(runtime, _now(), triggers=True):
        click.echo(line)


# Each module adds its commands to `cli` when imported.
import nurture.commands.accounts  # noqa: E402
import nurture.commands.authoring  # noqa: E402
import nurture.commands.broadcasts  # noqa: E402
import nurture.commands.costs  # noqa: E402
import nurture.commands.demo  # noqa: E402
import nurture.commands.deploying  # noqa: E402
import nurture.commands.leads  # noqa: E402
import nurture.commands.operations  # noqa: E402
import nurture.commands.privacy  # noqa: E402
import nurture.commands.reports  # noqa: E402
import nurture.commands.testing  # noqa: E402
import nurture.commands.users  # noqa: E402, F401
