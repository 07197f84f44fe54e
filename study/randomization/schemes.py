"""The allocation schemes as pure functions of the design, the history and the draws.

- **Permuted blocks**: within each stratum, consecutive blocks whose size is drawn at random
  from `block_sizes`; each block holds every arm in proportion to the ratio (sizes are
  multiples of the ratio sum, so at 2:1:1 a block of 8 holds 4, 2 and 2), in random order.
- **Minimisation** (Pocock and Simon, 1975): for each arm, the imbalance the study would have if
  the participant joined it: per factor, over the participant's own level, the *range*
  (max - min) of the arms' counts divided by their ratio weights, summed over factors with equal
  weight. The arm(s) with the least imbalance are preferred with `probability`, any other arm
  otherwise; ties and the "other arm" are chosen at random in proportion to the ratio.
- **Simple**: each participant independently, with probability proportional to the ratio.

Nothing here reads a database or a clock, so the same code serves allocation, simulation and
verification.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from .draws import Draws

Marginal = Callable[[str, str], Mapping[str, int]]


@dataclass(frozen=True)
class Block:
    """One permuted block of a stratum: where it starts (0-based position) and its arms."""

    start: int
    arms: tuple[str, ...]

    @property
    def size(self) -> int:
        return len(self.arms)


def make_block(
    ratio: Mapping[str, int], block_sizes: tuple[int, ...], start: int, draws: Draws
) -> Block:
    """A block beginning at `start`: a size drawn uniformly from `block_sizes`, then the arms
    (each `ratio[arm] * size / sum(ratio)` times) in a uniformly random order."""
    size = block_sizes[draws.below(len(block_sizes))]
    total = sum(ratio.values())
    if size % total:
        raise ValueError(f"block size {size} is not a multiple of the ratio sum {total}")
    arms = [arm for arm, weight in ratio.items() for _ in range(weight * size // total)]
    draws.shuffle(arms)
    return Block(start, tuple(arms))


class BlockSequence:
    """The blocks of one stratum, generated on demand and kept, so that position `k` is found
    without redrawing the blocks before it. Block `j` is drawn from the stream keyed by the
    position where it starts, so the whole sequence follows from the seed alone."""

    def __init__(
        self,
        ratio: Mapping[str, int],
        block_sizes: tuple[int, ...],
        draws_at: Callable[[int], Draws],
    ) -> None:
        if not block_sizes:
            raise ValueError("permuted blocks need at least one block size")
        self._ratio = ratio
        self._sizes = block_sizes
        self._draws_at = draws_at
        self._blocks: list[Block] = []

    def block_at(self, position: int) -> Block:
        """The block holding 0-based `position` of the stratum."""
        if position < 0:
            raise ValueError("positions start at 0")
        while not self._blocks or self._blocks[-1].start + self._blocks[-1].size <= position:
            start = self._blocks[-1].start + self._blocks[-1].size if self._blocks else 0
            self._blocks.append(make_block(self._ratio, self._sizes, start, self._draws_at(start)))
        index = bisect.bisect_right(self._blocks, position, key=lambda block: block.start) - 1
        return self._blocks[index]

    def arm_at(self, position: int) -> str:
        block = self.block_at(position)
        return block.arms[position - block.start]


# --- minimisation -------------------------------------------------------------------------------

IMBALANCE_MEASURES = ("range", "variance")


def imbalance(weighted_counts: list[Fraction], measure: str = "range") -> Fraction:
    """How unequal the arms' ratio-weighted counts are: their range or population variance."""
    if measure == "range":
        return max(weighted_counts) - min(weighted_counts)
    if measure == "variance":
        mean = sum(weighted_counts, Fraction(0)) / len(weighted_counts)
        return sum(((c - mean) ** 2 for c in weighted_counts), Fraction(0)) / len(weighted_counts)
    raise ValueError(f"unknown imbalance measure {measure!r}; use one of {IMBALANCE_MEASURES}")


def imbalance_scores(
    ratio: Mapping[str, int],
    levels: Mapping[str, str],
    marginal: Marginal,
    measure: str = "range",
) -> dict[str, Fraction]:
    """For each arm, the total imbalance over the participant's factor levels if they joined it.

    `marginal(factor, level)` gives the arms' counts among those already randomised with that
    level. Counts are divided by the ratio weights, so 2:1:1 is balanced at counts 4, 2, 2.
    Exact fractions keep ties exact.
    """
    scores: dict[str, Fraction] = {}
    for candidate in ratio:
        total = Fraction(0)
        for factor, level in levels.items():
            counts = marginal(factor, level)
            weighted = [
                Fraction(counts.get(arm, 0) + (arm == candidate), weight)
                for arm, weight in ratio.items()
            ]
            total += imbalance(weighted, measure)
        scores[candidate] = total
    return scores


def minimisation_arm(
    ratio: Mapping[str, int],
    levels: Mapping[str, str],
    marginal: Marginal,
    probability: float,
    draws: Draws,
    measure: str = "range",
) -> str:
    """Pocock-Simon minimisation with a random element (see the module docstring)."""
    scores = imbalance_scores(ratio, levels, marginal, measure)
    least = min(scores.values())
    best = [arm for arm in ratio if scores[arm] == least]
    others = [arm for arm in ratio if scores[arm] != least]
    # Draw first, whatever the outcome, so each position uses its stream the same way.
    take_best = draws.random() < probability
    chosen = best if take_best or not others else others
    return draws.weighted(chosen, [ratio[arm] for arm in chosen])


def simple_arm(ratio: Mapping[str, int], draws: Draws) -> str:
    """Simple randomisation: one arm with probability proportional to its ratio weight."""
    arms = list(ratio)
    return draws.weighted(arms, [ratio[arm] for arm in arms])
