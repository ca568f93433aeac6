"""Authoring commands: check the files, preview an email, simulate a journey."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from nurture.cli import _now, _runtime, cli
from nurture.runtime import Runtime


def _confirmation_problems(settings: Any) -> list[Any]:
    """The double opt-in email must load and render in every language it is sent in."""
    from datetime import UTC, datetime

    from nurture.composing import sender_of
    from nurture.confirmation import load_template
    from nurture.core.confirmation import ConfirmationEmail, TemplateError, compose
    from nurture.core.problems import Problem

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
    problems += _recycle_problems(settings.recycle_sequence, content, settings.sequences_dir)
    for check in content.templates.inlining_report():
        click.echo(f"css {check}")
    if settings.double_opt_in_forms:
        problems += _confirmation_problems(settings)
    for problem in sorted(set(problems)):
        click.echo(str(problem), err=True)
    if problems:
        click.echo(f"{len(problems)} problem(s)", err=True)
        sys.exit(1)


def _recycle_problems(recycle: str | None, content: Any, folder: Path) -> list[Any]:
    """Where leads rejected by sales go back to: said, and refused when it cannot work
    (no such live sequence, or one a lead that was in it may never enter again)."""
    from nurture.core.problems import Problem

    if recycle is None:
        click.echo("off NURTURE_RECYCLE_SEQUENCE: leads sales reject are nurtured in no"
                   " sequence unless the CRM's answer names one")  # fmt: skip
        return []
    sequence = content.get(recycle)
    if sequence is None:
        why = f"NURTURE_RECYCLE_SEQUENCE={recycle}: no such live sequence; rejected leads"
        return [Problem(str(folder), 0, why + " would be put back in none")]
    if not sequence.reentry.allowed:
        why = (f"NURTURE_RECYCLE_SEQUENCE names {recycle}, which a lead never enters twice"
               " (no reentry): a lead that was in it once could not be recycled into it;"
               " give it `reentry: {after: ...}`")  # fmt: skip
        return [Problem(sequence.path, 1, why)]
    click.echo(f"ok  NURTURE_RECYCLE_SEQUENCE: {recycle}, re-entered after"
               f" {sequence.reentry.cooldown or 'leaving'}")  # fmt: skip
    return []


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
    from nurture.composing import sender_of
    from nurture.core.rendering import EmailContext, RenderError
    from nurture.core.sequences import EmailStep

    runtime = _runtime(ctx)
    sequence = runtime.content.get(sequence_id)
    if sequence is None:
        raise click.ClickException(runtime.content.missing(sequence_id))
    step = sequence.step(step_id)
    if not isinstance(step, EmailStep):
        emails = [s.id for s in sequence.email_steps()]
        raise click.ClickException(
            f"{step_id!r} is not an email step of {sequence_id}; emails: {emails}"
        )
    settings = runtime.settings
    if locale is not None:
        versions = runtime.content.templates.locales(step.template)
        if locale not in versions:
            raise click.BadParameter(
                f"{locale!r}: template {step.template} has no such version (it has"
                f" {', '.join(versions) or 'none'})",
                param_hint="--locale",
            )
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
        raise click.ClickException(runtime.content.missing(sequence_id))
    emails = [step.id for step in sequence.email_steps()]
    for option, steps in (("--click", clicks), ("--open", opens)):
        unknown = [step for step in steps if step not in emails]
        if unknown:
            raise click.BadParameter(
                f"{', '.join(map(repr, unknown))}: not an email step of {sequence.id}"
                f" (its emails: {', '.join(emails)})",
                param_hint=option,
            )
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
