"""The `nurture` command. Each command reads the clock once and passes `now` down."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

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
    for problem in runtime.content.problems:
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
    import os

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
    """Process everything due now, once, and exit (SIGTERM/SIGINT: stop gracefully)."""
    from nurture.scheduler import work
    from nurture.shutdown import stop_on_signals

    runtime = _runtime(ctx)
    _prepare(runtime)
    stop_on_signals(runtime, lambda name: click.echo(f"nurture tick: {name}: stopping"))
    for line in work(runtime, _now()):
        click.echo(line)


# --- authoring -------------------------------------------------------------------


def _confirmation_problems(settings: Any) -> list[Any]:
    """The double opt-in email must load and render in every language it is sent in."""
    from datetime import UTC, datetime

    from nurture.confirmation import load_template
    from nurture.core.confirmation import ConfirmationEmail, TemplateError, compose
    from nurture.core.problems import Problem
    from nurture.dispatch import sender_of

    found: list[Any] = []
    for locale in ("en", "fr"):
        try:
            template = load_template(settings.templates_dir, locale)
            sample = ConfirmationEmail(
                message_id="check@nurture.invalid", to_email="someone@example.com",
                first_name="Camille", form="newsletter",
                confirm_url=f"{settings.base_url}/forms/confirm/x", days=7,
                sender=sender_of(settings), reply_to=None,
                date=datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
            )  # fmt: skip
            compose(template, sample)
        except (FileNotFoundError, TemplateError) as error:
            where = str(settings.templates_dir / "forms" / "form_confirmation" / locale)
            found.append(Problem(where, 1, f"double opt-in email: {error}"))
    return found


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, path: Path | None) -> None:
    """Check sequences and templates; exit 1 with file:line errors."""
    from nurture.content import Content
    from nurture.core.problems import Problem

    settings = _runtime(ctx).settings
    sequences_dir = settings.sequences_dir
    if path is not None:
        sequences_dir = path if path.is_dir() else path.parent
    content = Content(
        sequences_dir,
        settings.templates_dir,
        scoring_file=settings.scoring_file,
        routing_file=settings.routing_file,
        qualification_file=settings.qualification_file,
    )
    problems = (
        list(content.problems)
        + list(content.templates.validate_all())
        + list(content.rule_problems)
    )
    if path is not None and path.is_file():
        problems = [p for p in problems if Path(p.path).name == path.name or "templates" in p.path]
    for sequence in sorted(content.live(), key=lambda s: s.id):
        if path is None or not path.is_file() or Path(sequence.path).name == path.name:
            click.echo(
                f"ok  {sequence.path}: {sequence.id} v{sequence.version}, "
                f"{len(sequence.steps)} steps"
            )
    for name, path, model in (
        ("scoring", settings.scoring_file, content.scoring),
        ("routing", settings.routing_file, content.routing),
        ("qualification", settings.qualification_file, content.qualification),
    ):
        if model is not None:
            click.echo(f"ok  {path}: {name}")
        elif not path.exists():
            variable = f"NURTURE_{name.upper()}_FILE"
            if os.environ.get(variable):  # asked for by name: a typo, not a choice
                problems.append(
                    Problem(str(path), 1, f"no such file ({variable}): {name} would be off")
                )
            else:
                click.echo(f"off {path}: {name} (no such file; set {variable} to use one)")
    for check in content.templates.inlining_report():
        click.echo(f"css {check}")
    if settings.double_opt_in_forms:
        problems += _confirmation_problems(settings)
    for problem in sorted(set(problems)):
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)


def _lead_profile(runtime: Runtime, email: str | None, locale: str | None) -> Any:
    from dataclasses import replace

    from nurture.core.profile import SAMPLE_LEAD
    from nurture.leads import find_lead, profile_of

    profile = SAMPLE_LEAD
    if email:
        with runtime.sessions() as session:
            lead = find_lead(session, email.strip().lower())
            if lead is None:
                raise click.ClickException(f"no lead with email {email}")
            profile = profile_of(lead)
    if locale:
        profile = replace(profile, locale=locale)
    return profile


@cli.command()
@click.argument("sequence_id")
@click.argument("step_id")
@click.option("--lead", "email", help="Render for this real lead instead of the sample.")
@click.option("--locale", help="Force a locale (e.g. en, fr).")
@click.option("--part", type=click.Choice(["both", "html", "text"]), default="both")
@click.pass_context
def preview(
    ctx: click.Context,
    sequence_id: str,
    step_id: str,
    email: str | None,
    locale: str | None,
    part: str,
) -> None:
    """Render one email of a sequence (HTML and text) for a sample or real lead."""
    from nurture.core.rendering import EmailContext, RenderError
    from nurture.core.sequences import EmailStep
    from nurture.dispatch import sender_of

    runtime = _runtime(ctx)
    sequence = runtime.content.get(sequence_id)
    if sequence is None:
        raise click.ClickException(
            f"unknown sequence {sequence_id!r}; "
            f"known: {sorted(s.id for s in runtime.content.live())}"
        )
    step = sequence.step(step_id)
    if not isinstance(step, EmailStep):
        emails = [s.id for s in sequence.email_steps()]
        raise click.ClickException(
            f"{step_id!r} is not an email step of {sequence_id}; emails: {emails}"
        )
    settings = runtime.settings
    profile = _lead_profile(runtime, email, locale)
    context = EmailContext(
        lead=profile,
        rep=profile.rep,
        sender=sender_of(settings),
        unsubscribe_url=f"{settings.base_url}/u/preview",
        sequence=sequence.id,
        step=step.id,
        subject_override=step.subject,
    )
    try:
        rendered = runtime.content.templates.render(step.template, profile.locale, context)
    except RenderError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Subject: {rendered.subject}")
    click.echo(f"Template: {step.template} ({rendered.locale}), kind {step.kind}")
    if part in ("both", "text"):
        click.echo("\n--- text ---\n" + rendered.text)
    if part in ("both", "html"):
        click.echo("\n--- html ---\n" + rendered.html)


@cli.command()
@click.argument("sequence_id")
@click.option("--lead", "email", help="Simulate this real lead instead of the sample.")
@click.option("--days", type=int, default=60, show_default=True)
@click.option("--start", help="Entry time, ISO 8601 with offset (default: now).")
@click.option("--click", "clicks", multiple=True, help="Assume the lead clicks this email step.")
@click.option("--open", "opens", multiple=True, help="Assume the lead opens this email step.")
@click.option(
    "--event",
    "events",
    multiple=True,
    help="Assume an event: NAME@+3d or NAME@+36h after entry (e.g. demo_requested@+10d).",
)
@click.option("--score", type=int, help="Assume this score.")
@click.option("--timezone", help="Assume this lead timezone.")
@click.pass_context
def simulate(
    ctx: click.Context,
    sequence_id: str,
    email: str | None,
    days: int,
    start: str | None,
    clicks: tuple[str, ...],
    opens: tuple[str, ...],
    events: tuple[str, ...],
    score: int | None,
    timezone: str | None,
) -> None:
    """Print a lead's journey as a timeline; nothing is sent, nothing is written."""
    from dataclasses import replace

    from nurture.core.journey import EventFact
    from nurture.core.simulation import Assumptions
    from nurture.core.simulation import simulate as run_simulation

    runtime = _runtime(ctx)
    sequence = runtime.content.get(sequence_id)
    if sequence is None:
        raise click.ClickException(f"unknown sequence {sequence_id!r}")
    entered = _parse_time(start) if start else _now()
    profile = _lead_profile(runtime, email, None)
    if score is not None:
        profile = replace(profile, score=score)
    if timezone:
        profile = replace(profile, timezone=timezone)
    assumed = []
    for spec in events:
        name, _, offset = spec.partition("@")
        assumed.append(EventFact(name, entered + _parse_offset(offset or "+0h")))
    cap = runtime.settings.frequency_cap
    from nurture.core.timing import window_holidays

    years = range(entered.year, (entered + timedelta(days=days)).year + 2)
    assumptions = Assumptions(
        holidays=window_holidays(sequence.window, profile.country, years),
        clicks=frozenset(clicks),
        opens=frozenset(opens),
        events=tuple(assumed),
        cap_emails=cap.emails,
        cap_days=cap.days,
    )
    click.echo(f"Lead: {profile.email} ({profile.country or '?'}, {profile.locale or '?'})")
    click.echo(
        f"Assuming: clicks {sorted(clicks) or 'none'}, events {list(events) or 'none'}, "
        f"score {profile.score}; only this sequence counts toward the cap"
    )
    for entry in run_simulation(sequence, profile, entered, days, assumptions):
        click.echo(f"{entry.local:<28} {entry.what}")


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(f"expected ISO 8601 with offset, got {text!r}") from None
    if moment.tzinfo is None:
        raise click.BadParameter("the time needs an offset, e.g. 2026-03-02T09:00+01:00")
    return moment.astimezone(UTC)


def _parse_offset(text: str) -> timedelta:
    text = text.strip().lstrip("+")
    units = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise click.BadParameter(f"expected an offset like +3d, +36h or +90m, got {text!r}")
    return timedelta(**{units[text[-1]]: int(text[:-1])})


# --- keys, leads, deliveries -----------------------------------------------------------


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
    from nurture.apikeys import DEFAULT_SCOPES, create_key

    runtime = _runtime(ctx)
    _prepare(runtime)
    with runtime.sessions.begin() as session:
        key = create_key(session, name, _now(), scopes or DEFAULT_SCOPES)
    click.echo(key)


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
def leads() -> None:
    """Leads: import, show."""


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
    from nurture.core.tables import render, table
    from nurture.costs import CostError, listed

    runtime = _runtime(ctx)
    try:
        with runtime.sessions() as session:
            rows = [
                (c.month, c.source, c.campaign or None, c.amount,
                 f"{c.original_amount} {c.original_currency} at {c.rate}" if c.rate else None)
                for c in listed(session, start, end)
            ]  # fmt: skip
    except CostError as error:
        raise click.BadParameter(str(error)) from None
    currency = runtime.settings.currency
    columns = ("month", "source", "campaign", f"amount ({currency})", "entered as")
    click.echo(render(table(f"Costs ({currency})", columns, rows), form), nl=False)


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
    from nurture.deliveries import ATTENTION, ResolveError, listed, resolve

    if action is None:
        raise click.UsageError("choose --resend, --mark-sent or --skip")
    if not delivery_ids and status is None:
        raise click.UsageError("give delivery ids, or --uncertain / --failed with filters")
    filters = _delivery_filters(status or "attention", since, sequence, transient, delivery_ids)
    runtime = _runtime(ctx)
    now = _now()
    with runtime.sessions.begin() as session:
        rows = listed(session, **filters)
        missing = sorted(set(delivery_ids) - {row.id for row in rows})
        if missing:
            statuses = ", ".join(ATTENTION)
            raise click.ClickException(
                f"no {statuses} delivery with id {', '.join(map(str, missing))}"
            )
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


@cli.group()
def gdpr() -> None:
    """Personal data rights: export, erasure, retention."""


@gdpr.command("export")
@click.argument("email")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to a file.")
@click.pass_context
def gdpr_export(ctx: click.Context, email: str, out: Path | None) -> None:
    """Everything held on a person, as JSON (logged)."""
    from nurture.privacy import export

    runtime = _runtime(ctx)
    _prepare(runtime)
    from nurture.suppression import list_key

    with runtime.sessions.begin() as session:
        data = export(session, list_key(runtime.settings), email.strip().lower(), _now())
    if data is None:
        raise click.ClickException(f"no data held on {email}")
    text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    if out is None:
        click.echo(text)
    else:
        out.write_text(text, encoding="utf-8")
        click.echo(f"written to {out}")


@gdpr.command("erase")
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do it without asking.")
@click.pass_context
def gdpr_erase(ctx: click.Context, email: str, yes: bool) -> None:
    """Remove everything held on a person; only a keyed hash stays, to never mail them again."""
    from nurture.db import checkpoint
    from nurture.privacy import erase, forget_files
    from nurture.suppression import list_key

    if not yes:
        click.confirm(f"Erase everything held on {email}?", abort=True)
    runtime = _runtime(ctx)
    _prepare(runtime)
    with runtime.sessions.begin() as session:
        removed = erase(session, list_key(runtime.settings), email.strip().lower(), _now())
    if removed is None:
        click.echo("no data held; the address is suppressed anyway")
        return
    files = forget_files(runtime.settings.outbox_dir, removed)
    folded = checkpoint(runtime.engine)  # the WAL keeps old pages until then
    click.echo("erased" + (f" (and {files} outbox files)" if files else ""))
    if not folded:
        click.echo(
            "note: the database's write-ahead log is in use; its old pages go at the next"
            " checkpoint (run `nurture gdpr erase` again later to force it)"
        )


@gdpr.command("retention")
@click.option("--dry-run", is_flag=True, help="List who would be purged, change nothing.")
@click.pass_context
def gdpr_retention(ctx: click.Context, dry_run: bool) -> None:
    """Purge prospects with no click or reply for NURTURE_RETENTION_DAYS (opens don't count)."""
    from nurture.privacy import forget_files, purge
    from nurture.suppression import list_key

    runtime = _runtime(ctx)
    _prepare(runtime)
    total = 0
    while True:
        with runtime.sessions.begin() as session:
            key = list_key(runtime.settings)
            removed = purge(session, key, _now(), runtime.settings.retention_days, dry_run)
        total += len(removed.emails)
        for email in removed.emails if dry_run else ():
            click.echo(email)
        if dry_run or not removed.emails:
            break
        forget_files(runtime.settings.outbox_dir, removed)
    click.echo(f"{total} prospect(s) {'would be ' if dry_run else ''}purged")


from nurture.report_cli import report  # noqa: E402

cli.add_command(report)
