"""The `flourish` command. Each concern's commands live in their own module of this package."""

from __future__ import annotations

import getpass
import importlib
from dataclasses import dataclass, field
from functools import cached_property

import click
from sqlalchemy.engine import Engine

from ..config import ConfigError, Settings
from ..db import make_engine


@dataclass
class CliContext:
    """Settings and engine, built on first use so `flourish protocol validate` needs no database."""

    overrides: dict = field(default_factory=dict)

    @cached_property
    def settings(self) -> Settings:
        try:
            return Settings.from_env(**self.overrides)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from exc

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.database_url)

    @property
    def actor(self) -> str:
        """Who the audit log names for a CLI action: the operating-system user."""
        return f"cli:{getpass.getuser()}"


pass_cli = click.make_pass_decorator(CliContext, ensure=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--database-url",
    envvar="FLOURISH_DATABASE_URL",
    default=None,
    help="Database URL (default: SQLite file under instance/).",
)
@click.version_option(package_name="flourish")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Flourish: run longitudinal studies of AI assistants and human flourishing."""
    overrides = {"database_url": database_url} if database_url else {}
    ctx.obj = CliContext(overrides=overrides)


# Each module holds one concern's commands and lists them in `COMMANDS`. Modules that extend
# another's group (instruments_score, instruments_redcap) attach themselves when imported.
_COMMAND_MODULES = (
    "analysis",
    "apikeys",
    "audit",
    "compliance",
    "db",
    "doctor",
    "export",
    "instruments",
    "instruments_redcap",
    "instruments_score",
    "invitations",
    "participants",
    "prereg",
    "protocol",
    "randomization",
    "rehearse",
    "report",
    "schedule",
    "server",
    "simulate",
    "users",
)


def _register() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for command in module.COMMANDS:
            main.add_command(command)


_register()
