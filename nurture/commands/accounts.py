"""Accounts from the command line: the list, one account, and rebuilding who belongs
where (docs/accounts.md)."""

from __future__ import annotations

import json
from typing import Any

import click

from nurture.cli import _now, _prepare, _runtime, cli


@cli.group()
def accounts() -> None:
    """Accounts: leads grouped into companies, with their fit and engagement."""


def _stages(by_stage: dict[str, int]) -> str:
    return ", ".join(f"{count} {stage}" for stage, count in by_stage.items())


@accounts.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
@click.option("--engaged", is_flag=True, help="Only accounts with a contact engaged lately.")
@click.option("--format", "form", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def accounts_list(ctx: click.Context, limit: int, engaged: bool, form: str) -> None:
    """Accounts, the most engaged first: contacts, best grade, engaged contacts within
    the account rule's window (human clicks), account score."""
    from nurture.accounts import listing, shown

    runtime = _runtime(ctx)
    _prepare(runtime)
    with runtime.sessions() as session:
        found = listing(session, runtime.content, _now(), limit, engaged_only=engaged)
    rows = [shown(a.id, a.key, a.figures) for a in found]
    if form == "json":
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    if not rows:
        click.echo("no account yet (`nurture accounts rebuild` groups the leads already stored)")
        return
    click.echo(f"{'id':>6}  {'account':<32} {'name':<24} contacts engaged score grade  stages")
    for row in rows:
        said = row["domain"] or f"id {row['company_id']}"
        click.echo(
            f"{row['id']:>6}  {said[:32]:<32} {(row['name'] or '')[:24]:<24}"
            f" {row['contacts']:>8} {row['engaged_contacts']:>7} {row['score']:>5}"
            f" {row['best_grade'] or '-':>5}  {_stages(row['by_stage'])}"
        )
    window = rows[0]["engaged_within"]
    click.echo(f"engaged: distinct contacts who engaged within {window}")


@accounts.command("show")
@click.argument("account")
@click.option("--format", "form", type=click.Choice(["text", "json"]), default="text")
@click.pass_context
def accounts_show(ctx: click.Context, account: str, form: str) -> None:
    """One account (its number, domain or company id): figures, contacts, promotions."""
    from nurture.accounts import details, find

    runtime = _runtime(ctx)
    _prepare(runtime)
    with runtime.sessions() as session:
        found = find(session, account)
        if found is None:
            raise click.ClickException(
                f"no account {account!r}: give its number, its domain or its company id"
                " (`nurture accounts list`)"
            )
        shown: dict[str, Any] = details(session, runtime.content, found, _now())
    if form == "json":
        click.echo(json.dumps(shown, indent=2, ensure_ascii=False))
        return
    said = shown["domain"] or f"company id {shown['company_id']}"
    click.echo(f"account {shown['id']}: {said}" + (f" ({shown['name']})" if shown["name"] else ""))
    click.echo(
        f"  {shown['contacts']} contacts ({_stages(shown['by_stage'])}), best grade"
        f" {shown['best_grade'] or '-'}; {shown['engaged_contacts']} engaged within"
        f" {shown['engaged_within']}; account score {shown['score']}"
    )
    for person in shown["people"]:
        engaged = f", engaged {person['engaged_at'][:10]}" if person["engaged_at"] else ""
        click.echo(
            f"  {person['email']}  {person['stage']}, grade {person['grade'] or '-'},"
            f" score {person['score']}{engaged}"
        )
    for promotion in shown["promotions"]:
        click.echo(f"  promoted {promotion['at'][:10]} (cycle {promotion['cycle']}): "
                   f"{promotion['reason']}")  # fmt: skip


@accounts.command("rebuild")
@click.pass_context
def accounts_rebuild(ctx: click.Context) -> None:
    """Put every stored lead in its account again (after an upgrade, or after the
    free-mail list changed); accounts left with no contact are removed."""
    from nurture.accounts import rebuild

    runtime = _runtime(ctx)
    _prepare(runtime)
    click.echo(str(rebuild(runtime.sessions, runtime.content, _now())))
