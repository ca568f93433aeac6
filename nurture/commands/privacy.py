"""Personal data rights: export, erase, retention (docs/privacy.md)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from nurture.cli import _now, _prepare, _runtime, cli


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
