"""Authoring commands: check the files, preview an email, simulate a journey."""

from __future__ import annotations

import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click

from nurture.cli import _now, _runtime, cli
from nurture.runtime import Runtime


@cli.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.pass_context
def validate(ctx: click.Context, path: Path | None) -> None:
    """Check sequences and templates; exit 1 with file:line errors."""
    from nurture.content import Content
    from nurture.validation import check

    settings = _runtime(ctx).settings
    sequences_dir = settings.sequences_dir
    if path is not None:
        folder = path if path.is_dir() else path.parent
        # A broadcast file or folder is checked beside the sequences it may not clash with.
        if folder.resolve() != settings.broadcasts_dir.resolve():
            sequences_dir = folder
            if settings.broadcasts_dir == settings.sequences_dir / "broadcasts":
                settings = replace(settings, broadcasts_dir=folder / "broadcasts")
    content = Content(
        sequences_dir,
        settings.templates_dir,
        scoring_file=settings.scoring_file,
        routing_file=settings.routing_file,
        qualification_file=settings.qualification_file,
    )
    checked = check(content, settings)
    problems = list(checked.problems)
    lines = list(checked.lines)
    if path is not None and path.is_file():
        # One file asked for: its problems and the templates', its own `ok` line.
        problems = [p for p in problems if Path(p.path).name == path.name or "templates" in p.path]
        others = tuple(f"ok  {s.path}:" for s in content.live() if Path(s.path).name != path.name)
        lines = [line for line in lines if not line.startswith(others)]
    for line in lines:
        click.echo(line)
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
@click.option("--variant", help="A split step: render this variant's email.")
@click.pass_context
def preview(
    ctx: click.Context,
    sequence_id: str,
    step_id: str,
    email: str | None,
    locale: str | None,
    part: str,
    variant: str | None,
) -> None:
    """Render one email of a sequence (HTML and text) for a sample or real lead."""
    from nurture.composing import sender_of
    from nurture.core.rendering import EmailContext, RenderError

    runtime = _runtime(ctx)
    sequence = runtime.content.get(sequence_id)
    if sequence is None:
        raise click.ClickException(runtime.content.missing(sequence_id))
    step = sequence.email(step_id, variant)  # an email step's, or a split's
    if step is None and variant is not None:
        from nurture.core.sequences import SplitStep

        split = sequence.step(step_id)
        names = (
            [v.name for v in split.variants if v.goto is None and split.email]
            if isinstance(split, SplitStep)
            else []
        )
        raise click.ClickException(
            f"{step_id!r} has no variant {variant!r} with an email"
            + (f"; its email variants: {names}" if names else ": not a split with an email")
        )
    if step is None:
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
    standing = None
    if email:
        # A real lead as it is: mailable or not, admitted or not, inside already or not.
        from nurture.core.simulation import kept_out
        from nurture.leads import find_lead
        from nurture.standing import standing_of

        with runtime.sessions() as session:
            lead = find_lead(session, email.strip().lower())
            assert lead is not None  # _lead_profile found it
            standing = standing_of(
                session, lead.id, profile, sequence, runtime.settings.consent_required
            )
        refused = kept_out(sequence, profile, standing, entered)
        if refused is not None:
            click.echo(f"Nothing from {sequence.id} for this lead: {refused}.")
            return
    click.echo(
        f"Assuming: clicks {sorted(clicks) or 'none'}, events {list(events) or 'none'}, "
        f"score {profile.score}; only this sequence counts toward the cap"
    )
    timeline = run_simulation(sequence, profile, entered, days, assumptions, standing)
    for entry in timeline:
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
