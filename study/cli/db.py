"""`flourish db`: schema migrations."""

from __future__ import annotations

import click

from .. import migrate
from . import CliContext, pass_cli


@click.group("db")
def db_group() -> None:
    """Create and migrate the database schema."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True, help="Target revision.")
@pass_cli
def upgrade(cli: CliContext, revision: str) -> None:
    """Apply migrations up to REVISION (creating the database if needed)."""
    before = migrate.current_revision(cli.engine)
    migrate.upgrade(cli.engine, revision)
    after = migrate.current_revision(cli.engine)
    url = cli.engine.url.render_as_string(hide_password=True)
    if before == after:
        click.echo(f"database {url} is at {after}; nothing to do")
    else:
        click.echo(f"database {url} upgraded from {before or 'empty'} to {after}")


@db_group.command("current")
@pass_cli
def current(cli: CliContext) -> None:
    """Print the database's revision and whether it is the newest."""
    revision = migrate.current_revision(cli.engine)
    head = migrate.head_revision()
    state = "up to date" if revision == head else f"behind (newest is {head})"
    click.echo(f"{revision or 'empty'}: {state}")


COMMANDS = [db_group]
