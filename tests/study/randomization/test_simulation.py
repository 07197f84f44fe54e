"""Balance over 10,000 simulated enrollments, the ratio honoured, and reproducibility.

The simulation runs the real schemes (the same `Randomiser` that allocation uses), so these are
the balance specifications of the schemes themselves.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import pytest

from study.randomization import AllocationError, counts_csv, parse_stratum_key, simulate
from study.randomization.simulation import simulate_sequence

N = 10_000


def by_stratum(assignments):
    strata = defaultdict(list)
    for assignment in assignments:
        strata[assignment.stratum].append(assignment)
    return strata


@pytest.mark.parametrize("protocol_name", ["example", "blocks_2_1_1"])
def test_permuted_blocks_balance_every_complete_block(request, protocol_name):
    protocol = request.getfixturevalue(protocol_name)
    ratio = protocol.model.allocation.ratio
    total = sum(ratio.values())
    largest = max(protocol.model.allocation.block_sizes)
    assignments = list(simulate_sequence(protocol, N, "balance"))
    strata = by_stratum(assignments)
    assert len(strata) == 4
    for stratum, members in strata.items():
        blocks = defaultdict(list)
        for position, assignment in enumerate(members):
            assert assignment.position_in_stratum == position
            blocks[assignment.block_start].append(assignment)
        for start, block in blocks.items():
            size = block[0].block_size
            if len(block) == size:
                expected = {arm: weight * size // total for arm, weight in ratio.items()}
                assert Counter(a.arm for a in block) == expected, (stratum, start)
            else:
                assert start == max(blocks), "only a stratum's last block may be incomplete"
        counts = Counter(a.arm for a in members)
        for arm, weight in ratio.items():
            assert abs(counts[arm] - len(members) * weight / total) <= largest


def test_permuted_blocks_at_2_1_1_give_twice_as_many_to_the_double_arm(blocks_2_1_1):
    counts = Counter()
    for (_, arm), count in simulate(blocks_2_1_1, N, "ratio").items():
        counts[arm] += count
    assert sum(counts.values()) == N
    # 4 strata, each at most one block of 8 from the exact ratio.
    assert abs(counts["reflective"] - N / 2) <= 4 * 8
    assert abs(counts["instruct"] - N / 4) <= 4 * 8
    assert abs(counts["control"] - N / 4) <= 4 * 8


@pytest.mark.parametrize("protocol_name", ["minimisation", "minimisation_2_1_1"])
def test_minimisation_keeps_every_factor_level_balanced(request, protocol_name):
    protocol = request.getfixturevalue(protocol_name)
    ratio = protocol.model.allocation.ratio
    marginals = defaultdict(Counter)
    for assignment in simulate_sequence(protocol, N, "minimise"):
        for factor, level in assignment.levels.items():
            marginals[factor, level][assignment.arm] += 1
    assert len(marginals) == 4
    for (factor, level), counts in marginals.items():
        weighted = [counts[arm] / weight for arm, weight in ratio.items()]
        assert max(weighted) - min(weighted) <= 3, (factor, level, counts)


def test_minimisation_at_2_1_1_honours_the_ratio_overall(minimisation_2_1_1):
    counts = Counter()
    for (_, arm), count in simulate(minimisation_2_1_1, N, "ratio").items():
        counts[arm] += count
    assert abs(counts["reflective"] - N / 2) <= 6
    assert abs(counts["instruct"] - N / 4) <= 6


def test_simple_randomisation_at_2_1_1_approaches_the_ratio(simple_2_1_1):
    counts = simulate(simple_2_1_1, N, "simple")
    assert set(counts) == {("", "instruct"), ("", "reflective"), ("", "control")}
    # Binomial sd for the double arm is 50; 4 sd.
    assert abs(counts["", "reflective"] - N / 2) < 200
    assert abs(counts["", "instruct"] - N / 4) < 175


def test_the_same_seed_gives_the_same_allocations_and_another_seed_does_not(example):
    first = [a.arm for a in simulate_sequence(example, 500, "seed-one")]
    again = [a.arm for a in simulate_sequence(example, 500, "seed-one")]
    other = [
        a.arm
        for a in simulate_sequence(
            example, 500, "seed-two", rng_for_strata=random.Random("strata:seed-one")
        )
    ]
    assert first == again
    assert first != other


def test_each_stratum_has_its_own_sequence(example):
    strata = by_stratum(simulate_sequence(example, 2000, "strata"))
    sequences = {stratum: [a.arm for a in members[:60]] for stratum, members in strata.items()}
    assert len(set(map(tuple, sequences.values()))) == len(sequences) == 4


def test_strata_are_drawn_uniformly_unless_proportions_are_given(example):
    uniform = Counter()
    for (stratum, _), count in simulate(example, N, "uniform").items():
        uniform[parse_stratum_key(stratum)["wellbeing"]] += count
    assert abs(uniform["low"] - N / 2) < 250
    skewed = Counter()
    given = {"wellbeing": {"low": 0.2, "high": 0.8}}
    for (stratum, _), count in simulate(example, N, "skewed", proportions=given).items():
        skewed[parse_stratum_key(stratum)["wellbeing"]] += count
    assert abs(skewed["low"] - N / 5) < 200


def test_proportions_must_name_real_factors_and_levels(example):
    with pytest.raises(AllocationError, match="no stratification factor sex"):
        simulate(example, 10, "s", proportions={"sex": {"f": 1}})
    with pytest.raises(AllocationError, match="'medium' is not a level of 'wellbeing'"):
        simulate(example, 10, "s", proportions={"wellbeing": {"medium": 1}})
    with pytest.raises(AllocationError, match="non-negative"):
        simulate(example, 10, "s", proportions={"wellbeing": {"low": 0, "high": 0}})


def test_counts_csv_has_a_header_and_sorted_rows_summing_to_n(example, simple_2_1_1):
    text = counts_csv(simulate(example, 90, "csv"))
    lines = text.splitlines()
    assert lines[0] == "stratum,arm,count"
    rows = [line.rsplit(",", 2) for line in lines[1:]]
    assert rows == sorted(rows, key=lambda row: (row[0], row[1]))
    assert sum(int(count) for _, _, count in rows) == 90
    assert len(rows) == 4 * 3
    unstratified = counts_csv(simulate(simple_2_1_1, 10, "csv")).splitlines()
    assert {line.split(",")[0] for line in unstratified[1:]} == {"all"}
