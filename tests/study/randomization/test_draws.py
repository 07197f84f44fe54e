"""Deterministic draws: the same seed and place give the same numbers; anything else does not."""

from __future__ import annotations

from collections import Counter

import pytest

from study.randomization.draws import Draws


def test_same_seed_and_context_give_the_same_stream():
    first = Draws("seed", "allocation", "trial", "age=young", "block", 0)
    second = Draws("seed", "allocation", "trial", "age=young", "block", 0)
    assert [first.below(1000) for _ in range(50)] == [second.below(1000) for _ in range(50)]


@pytest.mark.parametrize(
    "other",
    [
        ("other seed", "allocation", "trial", "age=young", "block", 0),
        ("seed", "simulation", "trial", "age=young", "block", 0),
        ("seed", "allocation", "other-trial", "age=young", "block", 0),
        ("seed", "allocation", "trial", "age=old", "block", 0),
        ("seed", "allocation", "trial", "age=young", "block", 3),
        # Parts are framed by length: moving a boundary changes the key.
        ("seed", "allocation", "tria", "lage=young", "block", 0),
    ],
)
def test_a_different_seed_or_place_gives_a_different_stream(other):
    reference = Draws("seed", "allocation", "trial", "age=young", "block", 0)
    changed = Draws(*other)
    assert [reference.below(1 << 30) for _ in range(8)] != [
        changed.below(1 << 30) for _ in range(8)
    ]


def test_an_empty_seed_is_refused():
    with pytest.raises(ValueError, match="empty"):
        Draws("", "x")


def test_below_is_uniform_over_its_range():
    draws = Draws("uniformity", "test")
    counts = Counter(draws.below(6) for _ in range(60_000))
    assert set(counts) == set(range(6))
    # Expected 10,000 each; the binomial sd is ~91, so 500 is over 5 sd.
    assert all(abs(count - 10_000) < 500 for count in counts.values()), counts


def test_random_lies_in_the_unit_interval_with_mean_one_half():
    draws = Draws("unit", "test")
    values = [draws.random() for _ in range(20_000)]
    assert all(0 <= value < 1 for value in values)
    assert abs(sum(values) / len(values) - 0.5) < 0.01


def test_weighted_choice_follows_the_weights():
    draws = Draws("weights", "test")
    counts = Counter(draws.weighted(["a", "b", "c"], [2, 1, 1]) for _ in range(40_000))
    assert abs(counts["a"] - 20_000) < 600
    assert abs(counts["b"] - 10_000) < 500
    assert abs(counts["c"] - 10_000) < 500


def test_shuffle_permutes_and_reaches_every_order():
    orders = Counter()
    for position in range(600):
        items = ["a", "b", "c"]
        Draws("shuffle", "test", position).shuffle(items)
        assert sorted(items) == ["a", "b", "c"]
        orders[tuple(items)] += 1
    assert len(orders) == 6
    assert min(orders.values()) > 60  # 100 expected for each of the 6 orders
