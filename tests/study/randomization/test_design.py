"""Stratification: each factor's level from a screening answer or a baseline score."""

from __future__ import annotations

import pytest

from study.randomization import (
    AllocationError,
    factor_levels,
    parse_stratum_key,
    stratum_key,
    stratum_levels,
)
from study.randomization.design import AllocationDesign

from .conftest import EXAMPLE_ALLOCATION, edit, example_variant, parse


def levels(protocol, age=40, who5=15.0, **answers):
    scores = {} if who5 is None else {("who5", "raw"): who5}
    return stratum_levels(protocol, answers={"age": age, **answers}, scores=scores)


def test_the_example_stratifies_by_who5_and_age_band(example):
    assert levels(example, age=22, who5=9) == {"wellbeing": "low", "age_band": "under_35"}
    assert levels(example, age=61, who5=20) == {"wellbeing": "high", "age_band": "age_35_plus"}


def test_a_value_at_a_cut_point_belongs_to_the_upper_level(example):
    assert levels(example, age=35, who5=13) == {"wellbeing": "high", "age_band": "age_35_plus"}
    assert levels(example, age=34.9, who5=12.99) == {"wellbeing": "low", "age_band": "under_35"}


def test_numbers_typed_into_a_form_are_read(example):
    assert levels(example, age="34")["age_band"] == "under_35"


def test_a_missing_score_names_the_factor(example):
    with pytest.raises(
        AllocationError, match=r"factor 'wellbeing' needs the baseline score who5\.raw"
    ):
        levels(example, who5=None)


def test_a_missing_answer_names_the_factor(example):
    with pytest.raises(AllocationError, match="factor 'age_band' needs the answer to 'age'"):
        stratum_levels(example, answers={}, scores={("who5", "raw"): 10})


@pytest.mark.parametrize("age", ["old", True, float("nan")])
def test_an_unusable_answer_is_refused(example, age):
    with pytest.raises(AllocationError, match="age_band"):
        levels(example, age=age)


def test_unlabelled_cut_points_make_range_levels():
    text = edit(
        example_variant(),
        "      cut_points: [35]\n      labels: [under_35, age_35_plus]\n",
        "      cut_points: [35, 50.5]\n",
    )
    protocol = parse(text)
    assert factor_levels(protocol, protocol.model.allocation.strata[1]) == (
        "<35",
        "35..<50.5",
        ">=50.5",
    )
    assert levels(protocol, age=40)["age_band"] == "35..<50.5"
    assert levels(protocol, age=50.5)["age_band"] == ">=50.5"


def test_yes_no_and_choice_answers_are_their_own_levels():
    allocation = EXAMPLE_ALLOCATION + (
        "    - name: phone\n      question: owns_mobile\n"
        "    - name: leaning\n      question: preferred_assistant\n"
        "  preference_arm: {question: preferred_assistant, randomise_value: no_preference}\n"
    )
    protocol = parse(example_variant(allocation, preference=True))
    found = levels(protocol, owns_mobile=True, preferred_assistant="reflective")
    assert found["phone"] == "yes"
    assert found["leaning"] == "reflective"
    assert levels(protocol, owns_mobile="no", preferred_assistant="instruct")["phone"] == "no"
    with pytest.raises(AllocationError, match="'maybe' is not an option of 'preferred_assistant'"):
        levels(protocol, owns_mobile=True, preferred_assistant="maybe")
    with pytest.raises(AllocationError, match=r"factor 'phone'.*not yes or no"):
        levels(protocol, owns_mobile="perhaps", preferred_assistant="instruct")


def test_stratum_keys_sort_factors_and_survive_separators_in_levels():
    assert stratum_key({"wellbeing": "low", "age_band": "under_35"}) == (
        "age_band=under_35|wellbeing=low"
    )
    odd = {"site": "A|B=C%", "age_band": "<35"}
    assert parse_stratum_key(stratum_key(odd)) == odd
    assert stratum_key({}) == "" and parse_stratum_key("") == {}
    with pytest.raises(AllocationError, match="longer than 200"):
        stratum_key({"f": "x" * 200})


def test_levels_given_to_allocation_are_checked(example):
    design = AllocationDesign.from_protocol(example)
    assert list(design.checked_levels({"age_band": "under_35", "wellbeing": "low"})) == [
        "wellbeing",
        "age_band",
    ]
    with pytest.raises(
        AllocationError, match="no level given for stratification factor 'age_band'"
    ):
        design.checked_levels({"wellbeing": "low"})
    with pytest.raises(AllocationError, match=r"'medium' is not a level of .*'wellbeing'"):
        design.checked_levels({"wellbeing": "medium", "age_band": "under_35"})
    with pytest.raises(AllocationError, match="unknown stratification factor"):
        design.checked_levels({"wellbeing": "low", "age_band": "under_35", "sex": "f"})


def test_minimisation_without_a_probability_uses_0_8(minimisation):
    text = edit(minimisation.source_text, "  probability: 0.8\n", "")
    assert AllocationDesign.from_protocol(parse(text)).probability == 0.8
