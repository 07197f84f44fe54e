"""The schemes as pure functions: block composition, minimisation's choice, simple ratios."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction

import pytest

from study.randomization.draws import Draws
from study.randomization.schemes import (
    BlockSequence,
    imbalance,
    imbalance_scores,
    make_block,
    minimisation_arm,
    simple_arm,
)

RATIO_2_1_1 = {"instruct": 1, "reflective": 2, "control": 1}


def test_a_block_holds_each_arm_in_proportion_to_the_ratio():
    for start in range(200):
        block = make_block(RATIO_2_1_1, (4, 8), start, Draws("s", "t", start))
        counts = Counter(block.arms)
        assert block.size in (4, 8)
        k = block.size // 4
        assert counts == {"reflective": 2 * k, "instruct": k, "control": k}


def test_block_sizes_vary_at_random_between_the_protocol_sizes():
    sequence = BlockSequence(RATIO_2_1_1, (4, 8), lambda start: Draws("s", "vary", start))
    blocks = {sequence.block_at(p).start: sequence.block_at(p).size for p in range(4000)}
    assert set(blocks.values()) == {4, 8}
    assert 0.4 < Counter(blocks.values())[4] / len(blocks) < 0.6


def test_blocks_tile_the_stratum_without_gaps():
    sequence = BlockSequence(RATIO_2_1_1, (4, 8), lambda start: Draws("s", "tile", start))
    position = 0
    while position < 1000:
        block = sequence.block_at(position)
        assert block.start == position
        position += block.size


def test_a_block_size_that_is_not_a_multiple_of_the_ratio_sum_is_refused():
    with pytest.raises(ValueError, match="not a multiple of the ratio sum 4"):
        make_block(RATIO_2_1_1, (6,), 0, Draws("s", "t"))


def test_imbalance_by_range_and_by_variance():
    counts = [Fraction(4), Fraction(2), Fraction(3)]
    assert imbalance(counts, "range") == 2
    assert imbalance(counts, "variance") == Fraction(2, 3)
    with pytest.raises(ValueError, match="unknown imbalance measure"):
        imbalance(counts, "entropy")


def test_imbalance_scores_weigh_counts_by_the_ratio():
    # Among people with wellbeing=low: 4 reflective, 2 instruct, 2 control is balanced at 2:1:1.
    marginals = {("wellbeing", "low"): {"reflective": 4, "instruct": 2, "control": 2}}
    scores = imbalance_scores(
        RATIO_2_1_1, {"wellbeing": "low"}, lambda f, lvl: marginals.get((f, lvl), {})
    )
    # Adding one reflective gives 5/2 vs 2 vs 2 (range 1/2); one instruct 2 vs 3 vs 2 (range 1).
    assert scores == {"instruct": 1, "reflective": Fraction(1, 2), "control": 1}


def test_minimisation_picks_the_least_imbalancing_arm_with_the_given_probability():
    marginals = {
        ("wellbeing", "low"): {"instruct": 5, "reflective": 5, "control": 3},
        ("age_band", "under_35"): {"instruct": 4, "reflective": 4, "control": 3},
    }
    levels = {"wellbeing": "low", "age_band": "under_35"}
    ratio = {"instruct": 1, "reflective": 1, "control": 1}
    chosen = Counter(
        minimisation_arm(
            ratio, levels, lambda f, lvl: marginals[f, lvl], 0.8, Draws("m", "p", position)
        )
        for position in range(10_000)
    )
    assert abs(chosen["control"] / 10_000 - 0.8) < 0.02
    # The others share the remaining 20% equally (ratio 1:1).
    assert abs(chosen["instruct"] - chosen["reflective"]) < 300


def test_minimisation_with_probability_one_is_deterministic_except_for_ties():
    ratio = {"a": 1, "b": 1}
    arms = {
        minimisation_arm(ratio, {"f": "x"}, lambda f, lvl: {"a": 2, "b": 1}, 1.0, Draws("d", i))
        for i in range(200)
    }
    assert arms == {"b"}
    tied = Counter(
        minimisation_arm(ratio, {"f": "x"}, lambda f, lvl: {"a": 1, "b": 1}, 1.0, Draws("t", i))
        for i in range(2000)
    )
    assert 850 < tied["a"] < 1150


def test_simple_randomisation_follows_the_ratio():
    counts = Counter(simple_arm(RATIO_2_1_1, Draws("simple", i)) for i in range(20_000))
    assert abs(counts["reflective"] / 20_000 - 0.5) < 0.015
    assert abs(counts["instruct"] / 20_000 - 0.25) < 0.015
