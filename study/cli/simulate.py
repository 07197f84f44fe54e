"""`flourish simulate` and `flourish power`: synthetic studies with known effects, and power.

Both read a protocol and an effects file (docs/simulation.md) and touch no database. Problems in
either file are printed one per line as `FILE:LINE: field: message`, exit status 1.
"""

from __future__ import annotations

import json
import sys

import click

from ..protocol import Protocol, ProtocolError, load_protocol


def _load(protocol_file: str, effects_file: str):
    from analysis.simulate_effects import load_effects
    from instruments.datafile import DataFileError

    try:
        protocol: Protocol = load_protocol(protocol_file)
        return protocol, load_effects(effects_file, protocol)
    except (ProtocolError, DataFileError) as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None


@click.command("simulate")
@click.argument("protocol_file", metavar="PROTOCOL", type=click.Path(dir_okay=False))
@click.option("--participants", "-n", type=click.IntRange(min=1), required=True)
@click.option("--effects", "effects_file", type=click.Path(dir_okay=False), required=True)
@click.option("--seed", type=click.IntRange(min=0), required=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True)
def simulate(protocol_file: str, participants: int, effects_file: str, seed: int, out_dir: str):
    """Write a synthetic study of PROTOCOL: dataset.csv, truth.json and README.txt in --out.

    The same protocol, effects, size and seed always give byte-identical files.
    """
    from analysis.simulate import simulate_study, write_study

    protocol, effects = _load(protocol_file, effects_file)
    study = simulate_study(protocol, effects, participants=participants, seed=seed)
    for path in write_study(study, out_dir):
        click.echo(str(path))


@click.command("power")
@click.argument("protocol_file", metavar="PROTOCOL", type=click.Path(dir_okay=False))
@click.option("--effects", "effects_file", type=click.Path(dir_okay=False), required=True)
@click.option(
    "--participants",
    "-n",
    required=True,
    help="Total sample size(s), comma-separated: 300,450,600.",
)
@click.option("--reps", type=click.IntRange(min=1), default=200, show_default=True)
@click.option("--seed", type=click.IntRange(min=0), required=True)
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05)
@click.option("--outcome", default=None, help="Outcome column (default: the effects' primary).")
@click.option(
    "--contrast",
    default=None,
    help="ARM or ARM-ARM: slope difference tested (default: each arm vs the control arm).",
)
@click.option(
    "--prereg",
    "prereg_file",
    type=click.Path(dir_okay=False, exists=True),
    help="Test this preregistration's confirmatory family as run_plan runs it (its alpha, "
    "one-sided tests and multiplicity correction) instead of one contrast.",
)
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--engine", type=click.Choice(["fast", "statsmodels"]), default="fast")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def power(
    protocol_file: str,
    effects_file: str,
    participants: str,
    reps: int,
    seed: int,
    alpha: float,
    outcome: str | None,
    contrast: str | None,
    prereg_file: str | None,
    workers: int,
    engine: str,
    as_json: bool,
):
    """Power of PROTOCOL's arm x week slope contrast(s) by simulation from --effects.

    Each replicate simulates a study and fits outcome ~ arm * week + (1 + week | participant)
    (REML); power is the share of replicates with p < alpha, given with its Monte-Carlo SE.
    With --prereg, each replicate runs the preregistration's confirmatory family instead.
    """
    from analysis.power import PowerSettings, run_power

    try:
        sizes = [int(part) for part in participants.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter("give whole numbers, e.g. 300,450", param_hint="-n") from None
    if not sizes or min(sizes) < 2:
        raise click.BadParameter("each size must be at least 2", param_hint="-n")
    protocol, effects = _load(protocol_file, effects_file)
    prereg = None
    if prereg_file is not None:
        from analysis.preregistration import PreregistrationError, load_preregistration

        try:
            prereg = load_preregistration(prereg_file)
        except PreregistrationError as exc:
            raise click.ClickException(str(exc)) from exc
    settings = PowerSettings(
        sizes=tuple(sizes),
        reps=reps,
        seed=seed,
        alpha=alpha,
        outcome=outcome,
        contrast=contrast,
        workers=workers,
        engine=engine,
    )
    total = len(sizes) * reps
    with click.progressbar(
        length=total, label="simulating and fitting", file=sys.stderr, show_pos=True
    ) as bar:
        try:
            result = run_power(protocol, effects, settings, progress=bar.update, prereg=prereg)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(result.table())


COMMANDS = [simulate, power]
