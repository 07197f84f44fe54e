"""`flourish apikeys`: per-study API keys for assistants that send their turns to the ingest API."""

from __future__ import annotations

from datetime import UTC, datetime

import click
from sqlmodel import Session, select

from ..assistant import apikeys
from ..db import unit_of_work
from ..models import Study
from . import CliContext, pass_cli


@click.group("apikeys")
def apikeys_group() -> None:
    """API keys: each belongs to one study and carries scopes."""


def _study(session: Session, slug: str) -> Study:
    study = session.exec(select(Study).where(Study.slug == slug)).first()
    if study is None:
        raise click.ClickException(f"no study {slug!r}; load its protocol first")
    return study


@apikeys_group.command("create")
@click.argument("slug")
@click.option("--name", required=True, help="Who or what uses the key (e.g. 'lab assistant').")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    default=("interactions:write",),
    show_default=True,
    type=click.Choice(sorted(apikeys.SCOPES)),
    help="What the key may do; repeat for several.",
)
@pass_cli
def create(cli: CliContext, slug: str, name: str, scopes: tuple[str, ...]) -> None:
    """Print a new key for study SLUG (shown only now: only its hash is stored)."""
    with unit_of_work(cli.engine) as session:
        try:
            key, secret = apikeys.create_api_key(
                session,
                study_id=_study(session, slug).id,
                name=name,
                scopes=scopes,
                actor=cli.actor,
                now=datetime.now(UTC),
            )
        except apikeys.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from exc
        prefix = key.prefix
    click.echo(secret)
    click.echo(
        f"API key {prefix} for {slug} ({', '.join(sorted(scopes))}); keep it now, it cannot be "
        "shown again. Send it as 'Authorization: Bearer <key>'.",
        err=True,
    )


@apikeys_group.command("list")
@click.argument("slug")
@pass_cli
def list_keys(cli: CliContext, slug: str) -> None:
    """List the keys of study SLUG, revoked ones included (never their secrets)."""
    with unit_of_work(cli.engine) as session:
        keys = apikeys.list_api_keys(session, _study(session, slug).id)
    click.echo("prefix\tname\tscopes\tcreated_utc\tcreated_by\tlast_used_utc\tstatus")
    for key in keys:
        status = f"revoked {_iso(key.revoked_at)}" if key.revoked_at else "active"
        fields = (
            key.prefix,
            key.name,
            " ".join(key.scopes),
            _iso(key.created_at),
            key.created_by,
            _iso(key.last_used_at),
            status,
        )
        click.echo("\t".join(fields))


@apikeys_group.command("revoke")
@click.argument("slug")
@click.argument("prefix")
@pass_cli
def revoke(cli: CliContext, slug: str, prefix: str) -> None:
    """Revoke the key of study SLUG with PREFIX (the 12 characters after `flk_`)."""
    with unit_of_work(cli.engine) as session:
        try:
            key = apikeys.get_api_key(session, _study(session, slug).id, prefix)
            apikeys.revoke_api_key(session, key, actor=cli.actor, now=datetime.now(UTC))
        except apikeys.ApiKeyError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"API key {prefix} of {slug} revoked", err=True)


def _iso(instant: datetime | None) -> str:
    return instant.astimezone(UTC).isoformat(timespec="seconds") if instant else ""


COMMANDS = [apikeys_group]
