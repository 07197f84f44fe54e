"""`flourish protocol`: validate protocol files, register them as study versions, list versions.

`validate` needs no database. `load` registers a protocol (new study, amendment or no change)
and is audited as `cli:<os user>`.
"""

from __future__ import annotations

import click
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlmodel import select

from ..db import unit_of_work
from ..models import Study
from ..protocol import ProtocolError, load_protocol
from ..protocol.registry import RegistrationError, list_versions, register_protocol
from . import CliContext, pass_cli

HASH_PREFIX = 12


@click.group("protocol")
def protocol_group() -> None:
    """Study protocols: validate, load (register or amend) and list versions."""


@protocol_group.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
def validate(files: tuple[str, ...]) -> None:
    """Check protocol FILES; print `FILE: ok (hash)` or every problem as FILE:LINE: field: msg."""
    failed = False
    for name in files:
        try:
            protocol = load_protocol(name)
        except ProtocolError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(str(problem))
            continue
        click.echo(f"{name}: ok ({protocol.content_hash[:HASH_PREFIX]})")
    if failed:
        raise SystemExit(1)


@protocol_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False))
@pass_cli
def load(cli: CliContext, file: str) -> None:
    """Register FILE: a new study, an amendment (next version) or, if unchanged, nothing."""
    try:
        protocol = load_protocol(file)
    except ProtocolError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        raise SystemExit(1) from None
    try:
        with unit_of_work(cli.engine) as session:
            registration = register_protocol(session, protocol, cli.actor)
            number = registration.version.number
    except RegistrationError as exc:
        raise click.ClickException(str(exc)) from exc
    except (OperationalError, ProgrammingError) as exc:
        raise click.ClickException(
            f"the database is not ready ({exc.orig}); run `flourish db upgrade` first"
        ) from exc
    described = {
        "new": "new study",
        "amended": "amended",
        "unchanged": "unchanged",
    }[registration.outcome]
    click.echo(
        f"{protocol.slug}: version {number} ({described}; {protocol.content_hash[:HASH_PREFIX]})"
    )


@protocol_group.command("versions")
@click.argument("slug")
@pass_cli
def versions(cli: CliContext, slug: str) -> None:
    """List the protocol versions of study SLUG with their hash, date and who loaded them."""
    with unit_of_work(cli.engine) as session:
        study = session.exec(select(Study).where(Study.slug == slug)).first()
        if study is None:
            raise click.ClickException(f"there is no study '{slug}'")
        rows = list_versions(session, study.id)
    click.echo(f"{study.slug}: {study.title}")
    for index, version in enumerate(rows):
        marker = "  (current)" if index == len(rows) - 1 else ""
        loaded = version.loaded_at.strftime("%Y-%m-%d %H:%M UTC")
        click.echo(
            f"  v{version.number}  {version.content_hash[:HASH_PREFIX]}  {loaded}  "
            f"{version.loaded_by}  {version.source_name}{marker}"
        )


COMMANDS = [protocol_group]
