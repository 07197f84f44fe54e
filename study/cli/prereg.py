"""`flourish prereg`: validate, lock, check and show preregistrations.

`lock` records the file's content hash and time in the audit log (as `cli:<os user>`) and writes
FILE.lock.json beside it; locking changed content again needs `--amend REASON`. `check` says
whether the file still matches its lock and the audit log holds the lock's event, and with
`--data` whether the plan fits a dataset (every variable, arm, occasion and coefficient named).
"""

from __future__ import annotations

from pathlib import Path

import click
import pandas as pd
from sqlalchemy.exc import OperationalError, ProgrammingError

from analysis.codebook import score_descriptions
from analysis.exports import read_csv
from analysis.prereg_lock import LockError, audit_confirms, lock, read_lock, verify_lock
from analysis.prereg_text import aspredicted_text
from analysis.preregistration import (
    Preregistration,
    PreregistrationError,
    check_against,
    load_preregistration,
)

from ..db import unit_of_work
from ..protocol import ProtocolError, load_protocol
from . import CliContext, pass_cli

HASH_PREFIX = 12


def _load(file: str) -> Preregistration:
    try:
        return load_preregistration(file)
    except PreregistrationError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        raise SystemExit(1) from None


def read_dataset(path: Path) -> pd.DataFrame:
    """A dataset export: Parquet by its suffix, otherwise CSV (typed by its datapackage)."""
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    return read_csv(path)


data_option = click.option(
    "--data",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A dataset export (CSV or Parquet) to check the plan's variables against.",
)


protocol_option = click.option(
    "--protocol",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="The study's protocol, to describe each score (instrument, scoring, citation).",
)


def _labels(protocol: str | None) -> dict[str, str]:
    if protocol is None:
        return {}
    try:
        return score_descriptions(load_protocol(protocol))
    except ProtocolError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group("prereg")
def prereg_group() -> None:
    """Preregistrations: validate, lock (content hash in the audit log), check and show."""


@prereg_group.command("validate")
@click.argument("file", type=click.Path(dir_okay=False))
@data_option
def validate(file: str, data: Path | None) -> None:
    """Check FILE (and, with --data, that it fits the dataset); print every problem."""
    prereg = _load(file)
    if data is not None:
        problems = check_against(prereg, read_dataset(data))
        if problems:
            for problem in problems:
                click.echo(str(problem))
            raise SystemExit(1)
    click.echo(f"{file}: ok ({prereg.content_hash[:HASH_PREFIX]})")


@prereg_group.command("lock")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--amend", "reason", default=None, help="Lock changed content, saying why.")
@protocol_option
@pass_cli
def lock_command(cli: CliContext, file: str, reason: str | None, protocol: str | None) -> None:
    """Freeze FILE: its hash and the time go in the audit log and FILE.lock.json; then print
    the preregistration as AsPredicted-style text."""
    prereg = _load(file)
    try:
        with unit_of_work(cli.engine) as session:
            info, created = lock(session, file, cli.actor, reason=reason)
    except LockError as exc:
        raise click.ClickException(str(exc)) from exc
    if created:
        what = "amended and locked" if info.history else "locked"
        click.echo(f"{file}: {what} ({info.sha256}) at {info.locked_at.isoformat()}", err=True)
    else:
        click.echo(
            f"{file}: already locked ({info.sha256[:HASH_PREFIX]}) at "
            f"{info.locked_at.isoformat()} by {info.locked_by}",
            err=True,
        )
    click.echo(aspredicted_text(prereg, info, labels=_labels(protocol)))


@prereg_group.command("check")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@data_option
@pass_cli
def check(cli: CliContext, file: str, data: Path | None) -> None:
    """Verify FILE still matches its lock (exit status 1 if not, or never locked)."""
    prereg = _load(file)
    failed = False
    if data is not None:
        for problem in check_against(prereg, read_dataset(data)):
            click.echo(str(problem))
            failed = True
    result = verify_lock(file)
    if result.lock is None:
        click.echo(f"{file}: not locked (sha256 {result.current_hash})")
        raise SystemExit(1)
    info = result.lock
    if not result.ok:
        click.echo(
            f"{file}: CHANGED since it was locked at {info.locked_at.isoformat()} by "
            f"{info.locked_by} (locked {info.sha256[:HASH_PREFIX]}, now "
            f"{result.current_hash[:HASH_PREFIX]})"
        )
        failed = True
    else:
        click.echo(
            f"{file}: matches its lock ({info.sha256[:HASH_PREFIX]}) of "
            f"{info.locked_at.isoformat()} by {info.locked_by}"
        )
    try:
        with unit_of_work(cli.engine) as session:
            confirmed = audit_confirms(session, info)
    except (OperationalError, ProgrammingError):
        click.echo("note: the audit log could not be read; the lock is not confirmed", err=True)
    else:
        if not confirmed:
            click.echo(f"{file}: the audit log has no record of this lock")
            failed = True
    if failed:
        raise SystemExit(1)


@prereg_group.command("show")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@protocol_option
def show(file: str, protocol: str | None) -> None:
    """Print FILE as AsPredicted-style text (also for OSF), with its lock state."""
    prereg = _load(file)
    click.echo(aspredicted_text(prereg, read_lock(file), labels=_labels(protocol)))


COMMANDS = [prereg_group]
