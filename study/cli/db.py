"""`flourish db`: schema migrations, and backing up and restoring a SQLite database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import click

from .. import migrate
from ..backup import BackupError, backup_sqlite, restore_sqlite, sqlite_path
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


@db_group.command("backup")
@click.argument("target", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_cli
def backup(cli: CliContext, target: Path | None) -> None:
    """Copy the SQLite database to TARGET while it is in use (SQLite's online backup API).

    Safe while web servers and schedulers are writing. TARGET defaults to
    backups/flourish-<UTC time>.sqlite3 under the instance folder; an existing file is never
    replaced. PostgreSQL databases are backed up with pg_dump (deploy/backup.sh).
    """
    try:
        source = sqlite_path(cli.engine)
        if target is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
            target = cli.settings.instance_path / "backups" / f"flourish-{stamp}.sqlite3"
        info = backup_sqlite(source, target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"backed up {source} to {info.path} ({info.size_bytes} bytes, revision "
        f"{info.revision or 'none'}, integrity {info.integrity})"
    )


@db_group.command("restore")
@click.argument("backup_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_cli
def restore(cli: CliContext, backup_file: Path, yes: bool) -> None:
    """Replace the SQLite database with BACKUP_FILE (made by `flourish db backup`).

    Stop every web server and scheduler first. The backup's integrity is checked before
    anything is overwritten. Afterwards run `flourish db upgrade` if the backup is from an
    older release, and `flourish audit verify`.
    """
    try:
        target = sqlite_path(cli.engine)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    if not yes:
        click.confirm(f"Replace {target} with {backup_file}?", abort=True)
    try:
        info = restore_sqlite(backup_file, target)
    except BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    head = migrate.head_revision()
    state = "up to date" if info.revision == head else f"run `flourish db upgrade` (newest {head})"
    click.echo(f"restored {target} from {backup_file}: revision {info.revision}, {state}")


COMMANDS = [db_group]
