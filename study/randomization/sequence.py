"""The randomised sequence of a study: what has been allocated (`Ledger`) and the next step.

`Randomiser.assign` applies the protocol's scheme to one participant given the ledger of
everyone randomised before them. The service builds the ledger from the `Allocation` table
inside its lock; simulation and verification build it in memory. Both run this same code.

Draw streams are keyed by `(namespace, study, stratum, what, position)`. The namespace keeps
simulations (`simulation`) apart from real allocation (`allocation`), so a simulation never
reproduces the real sequence, even if someone runs it with the real seed.

This module is internal to the package: it computes the allocation at a position, which is
exactly what concealment forbids offering to anyone before the participant is enrolled.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from .design import AllocationDesign, stratum_key
from .draws import Draws
from .schemes import BlockSequence, minimisation_arm, simple_arm

ALLOCATION = "allocation"
SIMULATION = "simulation"


@dataclass(frozen=True)
class Assignment:
    """The outcome for one participant, before it is written anywhere."""

    arm: str
    stratum: str
    levels: Mapping[str, str]
    scheme: str
    sequence_number: int  # 1-based, study-wide, over randomised allocations
    position_in_stratum: int  # 0-based, within the stratum (what permuted blocks use)
    block_start: int | None = None  # permuted blocks: where this participant's block starts
    block_size: int | None = None


class Ledger:
    """Counts of the randomised allocations so far: per stratum, per factor level, in total."""

    def __init__(self) -> None:
        self._in_stratum: Counter[tuple[str, str]] = Counter()  # (scheme, stratum)
        self._marginals: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
        self._last_sequence_number = 0

    def add(
        self,
        *,
        stratum: str,
        levels: Mapping[str, str],
        arm: str,
        scheme: str,
        sequence_number: int,
    ) -> None:
        self._in_stratum[scheme, stratum] += 1
        for factor, level in levels.items():
            self._marginals[factor, level][arm] += 1
        self._last_sequence_number = max(self._last_sequence_number, sequence_number)

    def position_in(self, scheme: str, stratum: str) -> int:
        """How many were randomised in `stratum` under `scheme` (the next 0-based position)."""
        return self._in_stratum[scheme, stratum]

    def marginal(self, factor: str, level: str) -> Mapping[str, int]:
        """The arms' counts among those randomised with `level` of `factor`."""
        return self._marginals.get((factor, level), Counter())

    @property
    def next_sequence_number(self) -> int:
        return self._last_sequence_number + 1


class Randomiser:
    """Applies a design's scheme with a seed. Keeps each stratum's blocks once drawn."""

    def __init__(self, design: AllocationDesign, seed: str, namespace: str = ALLOCATION) -> None:
        if not seed:
            raise ValueError("an allocation seed must not be empty")
        self.design = design
        self._seed = seed
        self._namespace = namespace
        self._blocks: dict[str, BlockSequence] = {}

    def _draws(self, stratum: str, what: str, position: int) -> Draws:
        return Draws(self._seed, self._namespace, self.design.slug, stratum, what, position)

    def blocks(self, stratum: str) -> BlockSequence:
        """The permuted-block sequence of `stratum`."""
        if stratum not in self._blocks:
            self._blocks[stratum] = BlockSequence(
                self.design.ratio,
                self.design.block_sizes,
                lambda start: self._draws(stratum, "block", start),
            )
        return self._blocks[stratum]

    def assign(self, levels: Mapping[str, str], ledger: Ledger) -> Assignment:
        """The arm for the next participant with `levels` (checked levels, protocol order)."""
        design = self.design
        scheme = design.scheme
        stratum = stratum_key(levels)
        number = ledger.next_sequence_number
        position = ledger.position_in(scheme, stratum)
        if scheme == "permuted_blocks":
            block = self.blocks(stratum).block_at(position)
            arm = block.arms[position - block.start]
            return Assignment(
                arm, stratum, levels, scheme, number, position, block.start, block.size
            )
        if scheme == "minimisation":
            draws = self._draws(stratum, "minimisation", number)
            arm = minimisation_arm(design.ratio, levels, ledger.marginal, design.probability, draws)
        elif scheme == "simple":
            arm = simple_arm(design.ratio, self._draws(stratum, "simple", number))
        else:
            raise ValueError(f"unknown allocation scheme {scheme!r}")
        return Assignment(arm, stratum, levels, scheme, number, position)

    def record(self, assignment: Assignment, ledger: Ledger) -> None:
        """Add `assignment` to `ledger` (for in-memory sequences)."""
        ledger.add(
            stratum=assignment.stratum,
            levels=assignment.levels,
            arm=assignment.arm,
            scheme=assignment.scheme,
            sequence_number=assignment.sequence_number,
        )
