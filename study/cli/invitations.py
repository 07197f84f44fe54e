"""`flourish invitations`: single-use invitation codes for studies that recruit by invitation."""

from __future__ import annotations

import click
from sqlmodel import select

from .. import enrollment
from ..db import unit_of_work
from ..models import Study
from . import CliContext, pass_cli


@click.group("invitations")
def invitations_group() -> None:
    """Invitation codes: each opens the study's screener once."""


@invitations_group.command("create")
@click.argument("slug")
@click.option("--count", "-n", default=1, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--label", default="", help="A note kept with the codes (e.g. the clinic or batch).")
@pass_cli
def create(cli: CliContext, slug: str, count: int, label: str) -> None:
    """Print COUNT new codes and the links that carry them, one per line (shown only now).

    Only a hash of each code is stored, so keep the output: lost codes cannot be shown again.
    """
    with unit_of_work(cli.engine) as session:
        study = session.exec(select(Study).where(Study.slug == slug)).first()
        if study is None:
            raise click.ClickException(f"no study {slug!r}; load its protocol first")
        codes = enrollment.issue_invitations(session, study, count, actor=cli.actor, label=label)
    base = f"{cli.settings.public_url}/join/{slug}?code="
    click.echo("code,link")
    for code in codes:
        click.echo(f"{code},{base}{code}")
    click.echo(
        f"{count} invitation code(s) for {slug}; they are not stored in readable form", err=True
    )


COMMANDS = [invitations_group]
