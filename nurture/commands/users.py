"""Console users from the command line: create, list, disable, enable, set a password.

Passwords are typed at a hidden prompt (twice), or read from the first line of
standard input with `--password-stdin` (scripts); never taken as an argument, which
would land in the shell's history and the process list.
"""

from __future__ import annotations

import sys

import click

from nurture.cli import _now, _prepare, _runtime, cli
from nurture.core.access import ROLES


@cli.group()
def users() -> None:
    """Who may sign in to the web console (/console), with which role."""


def _password(from_stdin: bool) -> str:
    if from_stdin:
        line = sys.stdin.readline()
        return line.removesuffix("\n").removesuffix("\r")
    password: str = click.prompt(
        "Password", hide_input=True, confirmation_prompt="Repeat the password"
    )
    return password


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the user may do.")
@click.option("--rep", help="Sales users: the rep whose leads they see (default: EMAIL).")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_create(
    ctx: click.Context, email: str, role: str, rep: str | None, password_stdin: bool
) -> None:
    """Create a console user. Roles: viewer reads; marketer also edits; admin does
    everything; sales sees the leads of one rep only."""
    from nurture.console.users import UserError, check_new_user, create_user

    runtime = _runtime(ctx)
    _prepare(runtime)
    try:
        with runtime.sessions() as session:
            check_new_user(session, email, role, rep)  # before asking for a password
        password = _password(password_stdin)
        with runtime.sessions.begin() as session:
            user = create_user(session, email, role, password, _now(), rep)
            said = f"created {user.email} ({user.role}"
            said += f", rep {user.rep_email})" if user.rep_email else ")"
    except UserError as error:
        raise click.ClickException(str(error)) from None
    click.echo(said)


@users.command("list")
@click.pass_context
def users_list(ctx: click.Context) -> None:
    """Every console user: role, rep, whether enabled, last sign-in."""
    from nurture.console.users import listed
    from nurture.core.tables import render, table

    runtime = _runtime(ctx)
    _prepare(runtime)
    with runtime.sessions() as session:
        rows = [
            (u.email, u.role, u.rep_email, "disabled" if u.disabled_at else "enabled",
             u.signed_in_at.isoformat(timespec="minutes") if u.signed_in_at else None)
            for u in listed(session)
        ]  # fmt: skip
    columns = ("email", "role", "rep", "status", "last sign-in (UTC)")
    click.echo(render(table("Console users", columns, rows), "table"), nl=False)


def _set_disabled(ctx: click.Context, email: str, disable: bool) -> None:
    from nurture.console.users import UserError, set_disabled

    runtime = _runtime(ctx)
    _prepare(runtime)
    try:
        with runtime.sessions.begin() as session:
            user = set_disabled(session, email, _now() if disable else None)
            said = f"{user.email} is {'disabled' if disable else 'enabled'}"
    except UserError as error:
        raise click.ClickException(str(error)) from None
    click.echo(said)


@users.command("disable")
@click.argument("email")
@click.pass_context
def users_disable(ctx: click.Context, email: str) -> None:
    """Stop EMAIL signing in; their open sessions end at their next request."""
    _set_disabled(ctx, email, disable=True)


@users.command("enable")
@click.argument("email")
@click.pass_context
def users_enable(ctx: click.Context, email: str) -> None:
    """Let a disabled user sign in again (with the password they had)."""
    _set_disabled(ctx, email, disable=False)


@users.command("password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@click.pass_context
def users_password(ctx: click.Context, email: str, password_stdin: bool) -> None:
    """Set a new password for EMAIL; their sessions elsewhere end."""
    from nurture.console.users import UserError, find, set_password

    runtime = _runtime(ctx)
    _prepare(runtime)
    try:
        with runtime.sessions() as session:
            if find(session, email) is None:
                raise UserError(f"no console user {email.strip().lower()}")
        password = _password(password_stdin)
        with runtime.sessions.begin() as session:
            user = set_password(session, email, password, _now())
            said = f"new password set for {user.email}"
    except UserError as error:
        raise click.ClickException(str(error)) from None
    click.echo(said)
