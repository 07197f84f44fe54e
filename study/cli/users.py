"""`flourish user`: create and manage researcher accounts from the server's shell.

The first admin account can only be created here; after that the same commands remain the way
to reset a forgotten password or lock someone out. Every change is audited as `cli:<os user>`.
"""

from __future__ import annotations

import sys

import click

from .. import accounts
from ..db import unit_of_work
from ..models import Researcher
from . import CliContext, pass_cli

email_option = click.option("--email", required=True, help="The researcher's email address.")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        # One line, without its line ending, so `printf '%s\n' "$PW" | ...` works as expected.
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


def _describe(researcher: Researcher) -> str:
    status = "active" if researcher.is_active else "inactive"
    name = f" ({researcher.name})" if researcher.name else ""
    return f"#{researcher.id} {researcher.email}{name}: {researcher.role}, {status}"


@click.group("user")
def user_group() -> None:
    """Researcher accounts: roles, passwords, deactivation."""


@user_group.command("create")
@email_option
@click.option(
    "--role",
    required=True,
    type=click.Choice(accounts.ROLES),
    help="What the researcher may do (see docs/accounts.md).",
)
@click.option("--name", default="", help="The researcher's name, as shown in the pages.")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@pass_cli
def create(cli: CliContext, email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create a researcher account."""
    password = _read_password(password_stdin)
    try:
        with unit_of_work(cli.engine) as session:
            researcher = accounts.create_researcher(
                session, email=email, password=password, role=role, name=name, actor=cli.actor
            )
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"created {_describe(researcher)}")


@user_group.command("list")
@pass_cli
def list_(cli: CliContext) -> None:
    """List every researcher account with its role, status and last sign-in."""
    with unit_of_work(cli.engine) as session:
        researchers = accounts.list_researchers(session)
    if not researchers:
        click.echo("no researcher accounts; create one with `flourish user create`")
        return
    rows = [("id", "email", "name", "role", "status", "last sign-in (UTC)")]
    for r in researchers:
        last = r.last_login_at.strftime("%Y-%m-%d %H:%M") if r.last_login_at else "never"
        status = "active" if r.is_active else "inactive"
        rows.append((str(r.id), r.email, r.name, r.role, status, last))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


@user_group.command("set-role")
@email_option
@click.option("--role", required=True, type=click.Choice(accounts.ROLES), help="The new role.")
@pass_cli
def set_role(cli: CliContext, email: str, role: str) -> None:
    """Give a researcher another role."""
    _change(cli, email, lambda s, r: accounts.set_role(s, r, role, actor=cli.actor), "role set")


@user_group.command("set-password")
@email_option
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of standard input instead of prompting.",
)
@pass_cli
def set_password(cli: CliContext, email: str, password_stdin: bool) -> None:
    """Set a new password; the researcher's open sessions end."""
    password = _read_password(password_stdin)
    _change(
        cli,
        email,
        lambda s, r: accounts.set_password(s, r, password, actor=cli.actor),
        "password set",
    )


@user_group.command("deactivate")
@email_option
@pass_cli
def deactivate(cli: CliContext, email: str) -> None:
    """Stop a researcher from signing in; their open sessions end. Nothing is deleted."""
    _change(cli, email, lambda s, r: accounts.deactivate(s, r, actor=cli.actor), "deactivated")


@user_group.command("reactivate")
@email_option
@pass_cli
def reactivate(cli: CliContext, email: str) -> None:
    """Let a deactivated researcher sign in again."""
    _change(cli, email, lambda s, r: accounts.reactivate(s, r, actor=cli.actor), "reactivated")


def _change(cli: CliContext, email: str, change, done: str) -> None:
    try:
        with unit_of_work(cli.engine) as session:
            researcher = accounts.get_researcher(session, email)
            change(session, researcher)
    except accounts.AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{done}: {_describe(researcher)}")


COMMANDS = [user_group]
