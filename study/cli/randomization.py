"""`flourish randomization`: simulate a protocol's allocation scheme; verify a study's allocations.

`simulate` needs no database: it reads the protocol file and prints `stratum,arm,count`.
`verify` re-derives every randomised allocation of a study from its seed and reports those that
differ; it prints neither the seed nor anything about allocations still to come.
"""

from __future__ import annotations

import os

import click
from sqlmodel import select

from ..db import unit_of_work
from ..models import Study
from ..protocol import ProtocolError, load_protocol
from ..protocol.registry import current_version, load_version
from ..randomization import (
    AllocationError,
    allocation_seed,
    counts_csv,
    simulate,
    verify_allocations,
)
from . import CliContext, pass_cli


@click.group("randomization")
def randomization_group() -> None:
    """Randomisation: simulate a scheme before the trial, verify allocations during it."""


def _parse_proportions(values: tuple[str, ...]) -> dict[str, dict[str, float]]:
    proportions: dict[str, dict[str, float]] = {}
    for value in values:
        factor, _, levels = value.partition("=")
        if not factor or not levels:
            raise click.BadParameter(f"{value!r}: write FACTOR=LEVEL:P,LEVEL:P", param_hint="-p")
        for item in levels.split(","):
            level, _, share = item.rpartition(":")
            try:
                proportions.setdefault(factor, {})[level] = float(share)
            except ValueError:
                raise click.BadParameter(
                    f"{item!r}: write LEVEL:P with P a number", param_hint="-p"
                ) from None
    return proportions


@randomization_group.command("simulate")
@click.argument("protocol_file", metavar="PROTOCOL", type=click.Path(dir_okay=False))
@click.option("--n", "n", type=click.IntRange(min=0), required=True, help="Enrollments.")
@click.option("--seed", required=True, help="Seed of the simulation (not the study's seed).")
@click.option(
    "--proportion",
    "-p",
    "proportions",
    multiple=True,
    metavar="FACTOR=LEVEL:P,...",
    help="Share of a factor's levels, e.g. wellbeing=low:0.3,high:0.7 (default: uniform).",
)
def simulate_command(protocol_file: str, n: int, seed: str, proportions: tuple[str, ...]) -> None:
    """Allocate N simulated participants with PROTOCOL's scheme; print CSV stratum,arm,count."""
    try:
        protocol = load_protocol(protocol_file)
    except ProtocolError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None
    try:
        counts = simulate(protocol, n, seed, proportions=_parse_proportions(proportions))
    except AllocationError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(counts_csv(counts), nl=False)


@randomization_group.command("verify")
@click.argument("slug")
@pass_cli
def verify_command(cli: CliContext, slug: str) -> None:
    """Re-derive every randomised allocation of study SLUG from its seed; exit 1 on mismatches."""
    with unit_of_work(cli.engine) as session:
        study = session.exec(select(Study).where(Study.slug == slug)).first()
        version = current_version(session, study.id) if study else None
        if version is None:
            raise click.ClickException(f"there is no study '{slug}'")
        protocol = load_version(version)
        try:
            seed = allocation_seed(protocol, os.environ, secret_key=cli.settings.secret_key)
            result = verify_allocations(session, protocol=protocol, seed=seed)
        except AllocationError as exc:
            raise click.ClickException(str(exc)) from exc
    for mismatch in result.mismatches:
        click.echo(
            f"mismatch: #{mismatch.sequence_number} {mismatch.participant} "
            f"[{mismatch.stratum or 'all'}]: recorded {mismatch.recorded}, "
            f"the seed gives {mismatch.expected}"
        )
    click.echo(
        f"{slug}: {result.checked} randomised allocation(s) re-derived from the seed, "
        f"{len(result.mismatches)} mismatch(es); {result.preference} chosen by preference "
        "(not randomised)"
    )
    if result.mismatches:
        raise SystemExit(1)


COMMANDS = [randomization_group]
