"""Simulated enrollments: the protocol's scheme run in memory, to check balance before a trial.

Each simulated participant's level of each factor is drawn independently: uniformly over the
factor's levels, or with the given `proportions` (e.g. `{"wellbeing": {"low": 0.3, "high":
0.7}}`). The allocations come from the same `Randomiser` as real ones, in the `simulation`
namespace, so a simulation never reproduces the real sequence even when given the real seed.
Preference designs are ignored: only the randomised sequence is simulated.
"""

from __future__ import annotations

import csv
import io
import random
from collections import Counter
from collections.abc import Iterator, Mapping

from ..protocol import Protocol
from .design import AllocationDesign, AllocationError
from .sequence import SIMULATION, Assignment, Ledger, Randomiser

Counts = dict[tuple[str, str], int]
Proportions = Mapping[str, Mapping[str, float]]


def simulate_sequence(
    protocol: Protocol,
    n: int,
    seed: str,
    *,
    rng_for_strata: random.Random | None = None,
    proportions: Proportions | None = None,
) -> Iterator[Assignment]:
    """`n` simulated enrollments, one `Assignment` each, in order.

    Levels are drawn with `rng_for_strata` (default: `random.Random` seeded from `seed`, so the
    same arguments give the same output).
    """
    if n < 0:
        raise AllocationError("the number of simulated enrollments cannot be negative")
    design = AllocationDesign.from_protocol(protocol)
    rng = rng_for_strata or random.Random(f"strata:{seed}")
    weights = _weights(design, proportions or {})
    randomiser = Randomiser(design, seed, namespace=SIMULATION)
    ledger = Ledger()
    for _ in range(n):
        levels = {
            factor.name: rng.choices(factor.levels, weights[factor.name])[0]
            for factor in design.factors
        }
        assignment = randomiser.assign(levels, ledger)
        randomiser.record(assignment, ledger)
        yield assignment


def simulate(
    protocol: Protocol,
    n: int,
    seed: str,
    *,
    rng_for_strata: random.Random | None = None,
    proportions: Proportions | None = None,
) -> Counts:
    """How many of `n` simulated enrollments went to each `(stratum, arm)`.

    Every arm appears for every stratum that occurred, with 0 where none was allocated.
    """
    design = AllocationDesign.from_protocol(protocol)
    tally: Counter[tuple[str, str]] = Counter()
    strata: set[str] = set()
    for assignment in simulate_sequence(
        protocol, n, seed, rng_for_strata=rng_for_strata, proportions=proportions
    ):
        tally[assignment.stratum, assignment.arm] += 1
        strata.add(assignment.stratum)
    return {(stratum, arm): tally[stratum, arm] for stratum in strata for arm in design.arms}


def counts_csv(counts: Counts) -> str:
    """`stratum,arm,count` with a header, sorted by stratum then arm (`all` when unstratified)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["stratum", "arm", "count"])
    for (stratum, arm), count in sorted(counts.items()):
        writer.writerow([stratum or "all", arm, count])
    return buffer.getvalue()


def _weights(design: AllocationDesign, proportions: Proportions) -> dict[str, list[float]]:
    names = {factor.name for factor in design.factors}
    unknown = sorted(set(proportions) - names)
    if unknown:
        raise AllocationError(
            f"no stratification factor {', '.join(unknown)} "
            f"(factors: {', '.join(sorted(names)) or 'none'})"
        )
    weights: dict[str, list[float]] = {}
    for factor in design.factors:
        given = proportions.get(factor.name)
        if given is None:
            weights[factor.name] = [1.0] * len(factor.levels)
            continue
        wrong = sorted(set(given) - set(factor.levels))
        if wrong:
            raise AllocationError(
                f"'{', '.join(wrong)}' is not a level of '{factor.name}' "
                f"(levels: {', '.join(factor.levels)})"
            )
        values = [float(given.get(level, 0.0)) for level in factor.levels]
        if any(value < 0 for value in values) or sum(values) <= 0:
            raise AllocationError(
                f"proportions for '{factor.name}' must be non-negative and not all zero"
            )
        weights[factor.name] = values
    return weights
