"""The scoring engine's rules, on small instruments built in each test.

Expected values are worked out by hand from the rule under test, never taken from the code.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from instruments.schema import Instrument
from instruments.scoring import (
    AnswerError,
    ScoringDefinitionError,
    score_frame,
    score_response,
    validate_answers,
)


def make_instrument(
    items: list[dict],
    scores: list[dict],
    scales: dict[str, dict] | None = None,
    short_name: str = "TEST",
) -> Instrument:
    """An instrument with only what scoring needs; every item on scale `s` unless it says."""
    return Instrument.model_validate(
        {
            "id": "test",
            "name": "Test instrument",
            "short_name": short_name,
            "version": "1",
            "citation": "Built in a test.",
            "licence": {"name": "none", "commercial_use": "unknown"},
            "wording": {"status": "local", "source": "test"},
            "languages": ["en"],
            "response_scales": scales or {"s": {"min": 1, "max": 5}},
            "items": [{"scale": "s", **item} for item in items],
            "scores": [{"label": {"en": score["id"]}, **score} for score in scores],
            "sms": {"suitable": False},
        }
    )


def items(*ids: str, **extra) -> list[dict]:
    return [{"id": item_id, **extra} for item_id in ids]


# --- validation ---------------------------------------------------------------------------------


WHO5_LIKE = make_instrument(
    items("who5_1", "who5_2", "who5_3", "who5_4", "who5_5"),
    [{"id": "raw", "items": ["who5_1", "who5_2", "who5_3", "who5_4", "who5_5"], "method": "sum"}],
    scales={"s": {"min": 0, "max": 5}},
    short_name="WHO-5",
)


def test_an_answer_off_the_scale_is_rejected_naming_item_value_and_range():
    problems = validate_answers(WHO5_LIKE, {"who5_1": 3, "who5_3": 7})
    assert [str(problem) for problem in problems] == [
        "who5_3: 7 is not an allowed answer; choose a whole number from 0 to 5"
    ]


def test_a_fraction_on_a_whole_number_scale_is_rejected():
    problems = validate_answers(WHO5_LIKE, {"who5_2": 2.5})
    assert [str(problem) for problem in problems] == [
        "who5_2: 2.5 is not an allowed answer; choose a whole number from 0 to 5"
    ]


def test_a_value_below_the_scale_is_rejected():
    [problem] = validate_answers(WHO5_LIKE, {"who5_4": -1})
    assert problem.item == "who5_4"
    assert problem.message.startswith("-1 is not an allowed answer")


def test_a_fractional_scale_names_its_step():
    instrument = make_instrument(
        items("a"),
        [{"id": "t", "items": ["a"], "method": "sum"}],
        scales={"s": {"min": 0, "max": 2, "step": 0.5}},
    )
    assert validate_answers(instrument, {"a": 1.5}) == []
    [problem] = validate_answers(instrument, {"a": 1.25})
    assert problem.message == (
        "1.25 is not an allowed answer; choose a value from 0 to 2 in steps of 0.5"
    )


def test_an_unknown_item_is_rejected():
    [problem] = validate_answers(WHO5_LIKE, {"who5_6": 1})
    assert problem.item == "who5_6"
    assert problem.message.startswith("not an item of WHO-5")


def test_text_that_is_not_a_number_is_rejected():
    [problem] = validate_answers(WHO5_LIKE, {"who5_1": "often"})
    assert str(problem) == "who5_1: 'often' is not a number"


def test_true_and_false_are_not_answers():
    [problem] = validate_answers(WHO5_LIKE, {"who5_1": True})
    assert problem.message == "True is not a number"


@pytest.mark.parametrize("missing", [None, float("nan"), "", "  ", np.nan])
def test_none_nan_and_blank_are_missing_answers_not_problems(missing):
    assert validate_answers(WHO5_LIKE, {"who5_1": missing}) == []


def test_numbers_given_as_text_are_accepted():
    assert validate_answers(WHO5_LIKE, {"who5_1": " 4 ", "who5_2": "0"}) == []
    assert score_response(WHO5_LIKE, dict.fromkeys(WHO5_LIKE.item_ids, "2")).scores == {"raw": 10}


def test_score_response_raises_with_every_problem():
    with pytest.raises(AnswerError) as caught:
        score_response(WHO5_LIKE, {"who5_1": 6, "who5_2": 1, "who5_3": 2.5, "bogus": 1})
    assert [problem.item for problem in caught.value.problems] == ["who5_1", "who5_3", "bogus"]
    assert "who5_1: 6 is not an allowed answer" in str(caught.value)


# --- reverse keys, methods ----------------------------------------------------------------------


def test_reverse_keyed_items_are_reversed_on_their_own_scale_before_summing():
    # 4-point scale 1..4: reversed value is 5 - x.
    instrument = make_instrument(
        [{"id": "a"}, {"id": "b", "reverse": True}, {"id": "c", "reverse": True}],
        [{"id": "total", "items": ["a", "b", "c"], "method": "sum"}],
        scales={"s": {"min": 1, "max": 4}},
    )
    result = score_response(instrument, {"a": 2, "b": 1, "c": 3})
    assert result.scores == {"total": 2 + 4 + 2}


def test_reverse_keying_on_a_scale_that_starts_at_zero():
    # 0..3: reversed value is 3 - x.
    instrument = make_instrument(
        [{"id": "a"}, {"id": "b", "reverse": True}],
        [{"id": "total", "items": ["a", "b"], "method": "sum"}],
        scales={"s": {"min": 0, "max": 3}},
    )
    assert score_response(instrument, {"a": 3, "b": 0}).scores["total"] == 6


def test_bpns21_style_reversal_is_eight_minus_the_answer_on_a_1_to_7_scale():
    # The CSDT rule for the 21-item BPNS: "subtract the item response from 8", then average.
    # Competence subscale: items 3R, 5, 10, 13, 15R, 19R.
    competence = ["bpns_3", "bpns_5", "bpns_10", "bpns_13", "bpns_15", "bpns_19"]
    reversed_items = {"bpns_3", "bpns_15", "bpns_19"}
    instrument = make_instrument(
        [{"id": item_id, "reverse": item_id in reversed_items} for item_id in competence],
        [{"id": "competence", "items": competence, "method": "mean"}],
        scales={"s": {"min": 1, "max": 7}},
    )
    answers = {"bpns_3": 2, "bpns_5": 6, "bpns_10": 5, "bpns_13": 7, "bpns_15": 1, "bpns_19": 3}
    # (8-2) + 6 + 5 + 7 + (8-1) + (8-3) = 6 + 6 + 5 + 7 + 7 + 5 = 36; 36 / 6 = 6.0
    assert score_response(instrument, answers).scores["competence"] == pytest.approx(6.0)


def test_mean_and_sum_of_the_same_items():
    instrument = make_instrument(
        items("a", "b", "c", "d"),
        [
            {"id": "total", "items": ["a", "b", "c", "d"], "method": "sum"},
            {"id": "average", "items": ["a", "b", "c", "d"], "method": "mean"},
        ],
    )
    result = score_response(instrument, {"a": 1, "b": 2, "c": 4, "d": 4})
    assert result.scores == {"total": 11, "average": 2.75}
    assert result.flags == {}
    assert result.answered == {"total": 4, "average": 4}


# --- missing items ------------------------------------------------------------------------------


EIGHT = [f"i{n}" for n in range(1, 9)]


def eight_item_instrument(**score_options) -> Instrument:
    return make_instrument(
        items(*EIGHT),
        [{"id": "total", "items": EIGHT, **score_options}],
        scales={"s": {"min": 1, "max": 4}},
    )


SEVEN_OF_EIGHT = {"i1": 1, "i2": 2, "i3": 3, "i4": 4, "i5": 1, "i6": 2, "i7": 3, "i8": None}


def test_complete_case_is_the_default_for_a_sum():
    result = score_response(eight_item_instrument(method="sum"), SEVEN_OF_EIGHT)
    assert result.scores == {"total": None}
    assert result.answered == {"total": 7}
    assert result.item_counts == {"total": 8}
    assert result.flags == {}


def test_complete_case_is_the_default_for_a_mean():
    result = score_response(eight_item_instrument(method="mean"), SEVEN_OF_EIGHT)
    assert result.scores == {"total": None}


def test_an_item_left_out_of_the_answers_is_missing():
    answers = {key: value for key, value in SEVEN_OF_EIGHT.items() if key != "i8"}
    assert score_response(eight_item_instrument(method="sum"), answers).scores == {"total": None}


def test_a_sum_with_min_answered_but_without_prorate_stays_complete_case():
    instrument = eight_item_instrument(method="sum", min_answered=6)
    assert score_response(instrument, SEVEN_OF_EIGHT).scores == {"total": None}


def test_a_prorated_sum_scales_the_answered_items_to_all_items_and_is_flagged():
    instrument = eight_item_instrument(method="sum", min_answered=6, prorate=True)
    result = score_response(instrument, SEVEN_OF_EIGHT)
    # answered sum 16 over 7 items, scaled to 8: 16 * 8 / 7
    assert result.scores["total"] == pytest.approx(16 * 8 / 7)
    assert result.flags == {"total": "prorated: 7 of 8 items"}
    assert result.answered == {"total": 7}


def test_a_prorated_sum_below_min_answered_is_missing():
    instrument = eight_item_instrument(method="sum", min_answered=7, prorate=True)
    answers = {**SEVEN_OF_EIGHT, "i7": None}
    result = score_response(instrument, answers)
    assert result.scores == {"total": None}
    assert result.flags == {}
    assert result.answered == {"total": 6}


def test_a_complete_prorated_sum_is_not_flagged():
    instrument = eight_item_instrument(method="sum", min_answered=6, prorate=True)
    result = score_response(instrument, {**SEVEN_OF_EIGHT, "i8": 4})
    assert result.scores == {"total": 20}
    assert result.flags == {}


def test_a_mean_with_min_answered_is_the_mean_of_the_answered_items_and_is_flagged():
    instrument = eight_item_instrument(method="mean", min_answered=6)
    result = score_response(instrument, SEVEN_OF_EIGHT)
    assert result.scores["total"] == pytest.approx(16 / 7)
    assert result.flags == {"total": "mean of answered items: 7 of 8 items"}


def test_no_answers_at_all_give_missing_scores_even_with_a_low_threshold():
    instrument = eight_item_instrument(method="mean", min_answered=1)
    assert score_response(instrument, {}).scores == {"total": None}


# --- composites and transforms ------------------------------------------------------------------


def composite_instrument() -> Instrument:
    return make_instrument(
        items("a1", "a2", "b1", "b2", "b3", "b4"),
        [
            {"id": "a", "items": ["a1", "a2"], "method": "mean"},
            {
                "id": "b",
                "items": ["b1", "b2", "b3", "b4"],
                "method": "sum",
                "min_answered": 3,
                "prorate": True,
            },
            {"id": "both", "kind": "total", "scores": ["a", "b"], "method": "sum"},
            {"id": "mean_ab", "kind": "total", "scores": ["a", "b"], "method": "mean"},
            {
                "id": "rescaled",
                "kind": "derived",
                "transform": {"of": "both", "multiply": 2, "add": -1},
            },
        ],
    )


def test_composites_and_transforms_of_complete_scores():
    result = score_response(
        composite_instrument(), {"a1": 2, "a2": 3, "b1": 1, "b2": 1, "b3": 2, "b4": 2}
    )
    # a = 2.5, b = 6, both = 8.5, mean = 4.25, rescaled = 8.5 * 2 - 1 = 16
    assert result.scores == {"a": 2.5, "b": 6, "both": 8.5, "mean_ab": 4.25, "rescaled": 16}
    assert result.answered["both"] == 6
    assert result.item_counts["both"] == 6


def test_a_composite_and_a_transform_of_a_missing_score_are_missing():
    result = score_response(composite_instrument(), {"a1": 2, "b1": 1, "b2": 1, "b3": 2, "b4": 2})
    assert result.scores == {"a": None, "b": 6, "both": None, "mean_ab": None, "rescaled": None}


def test_a_composite_built_on_a_prorated_score_carries_the_flag():
    result = score_response(composite_instrument(), {"a1": 2, "a2": 4, "b1": 1, "b2": 2, "b3": 3})
    # b prorated: 6 * 4 / 3 = 8; both = 3 + 8 = 11; rescaled = 21
    assert result.scores["b"] == pytest.approx(8)
    assert result.scores["both"] == pytest.approx(11)
    assert result.scores["rescaled"] == pytest.approx(21)
    assert result.flags == {
        "b": "prorated: 3 of 4 items",
        "both": "from b (prorated: 3 of 4 items)",
        "mean_ab": "from b (prorated: 3 of 4 items)",
        "rescaled": "from b (prorated: 3 of 4 items)",
    }
    assert result.answered["both"] == 5


def domains_instrument(**overall_options) -> Instrument:
    return make_instrument(
        items("a1", "a2", "b1", "b2", "c1", "c2"),
        [
            {"id": "a", "items": ["a1", "a2"], "method": "mean"},
            {"id": "b", "items": ["b1", "b2"], "method": "mean"},
            {"id": "c", "items": ["c1", "c2"], "method": "mean"},
            {"id": "overall", "kind": "total", "scores": ["a", "b", "c"], **overall_options},
        ],
    )


def test_a_composite_with_min_answered_is_the_mean_of_the_scores_present_and_is_flagged():
    instrument = domains_instrument(method="mean", min_answered=2)
    result = score_response(instrument, {"a1": 1, "a2": 2, "b1": 4, "b2": 4, "c1": 5})
    # a = 1.5, b = 4, c missing: (1.5 + 4) / 2 = 2.75
    assert result.scores["overall"] == pytest.approx(2.75)
    assert result.flags == {"overall": "mean of answered scores: 2 of 3 scores"}
    assert result.answered["overall"] == 5
    only_a = score_response(instrument, {"a1": 1, "a2": 2, "b1": 4})
    assert only_a.scores["overall"] is None


def test_a_prorated_composite_sum_scales_to_all_its_scores():
    instrument = domains_instrument(method="sum", min_answered=2, prorate=True)
    result = score_response(instrument, {"a1": 1, "a2": 2, "b1": 4, "b2": 4, "c2": 3})
    # (1.5 + 4) * 3 / 2 = 8.25
    assert result.scores["overall"] == pytest.approx(8.25)
    assert result.flags == {"overall": "prorated: 2 of 3 scores"}


def test_scores_may_refer_to_scores_defined_after_them():
    instrument = make_instrument(
        items("a", "b"),
        [
            {"id": "pct", "kind": "derived", "transform": {"of": "raw", "multiply": 10}},
            {"id": "raw", "items": ["a", "b"], "method": "sum"},
        ],
    )
    assert score_response(instrument, {"a": 1, "b": 2}).scores == {"pct": 30, "raw": 3}


def test_a_cycle_of_scores_is_a_definition_error():
    instrument = make_instrument(
        items("a"),
        [
            {"id": "x", "kind": "derived", "transform": {"of": "y"}},
            {"id": "y", "kind": "derived", "transform": {"of": "x"}},
        ],
    )
    with pytest.raises(ScoringDefinitionError, match="cycle: x -> y -> x"):
        score_response(instrument, {"a": 1})


def test_a_reference_to_an_unknown_score_is_a_definition_error():
    instrument = make_instrument(
        items("a"), [{"id": "x", "kind": "derived", "transform": {"of": "nope"}}]
    )
    with pytest.raises(ScoringDefinitionError, match="refers to nope"):
        score_response(instrument, {"a": 1})


# --- score_frame --------------------------------------------------------------------------------


def test_score_frame_adds_score_and_flag_columns_and_carries_other_columns():
    frame = pd.DataFrame(
        {
            "respondent": ["p01", "p02", "p03"],
            "wave": [1, 1, 2],
            "a1": [2, 1, None],
            "a2": [3, 1, 4],
            "b1": [1, 4, 4],
            "b2": [1, None, 4],
            "b3": [2, 4, 4],
            "b4": [2, 4, 4],
        }
    )
    scored = score_frame(composite_instrument(), frame)
    assert list(scored.columns) == [
        *frame.columns,
        "a",
        "b",
        "b_flag",
        "both",
        "both_flag",
        "mean_ab",
        "mean_ab_flag",
        "rescaled",
        "rescaled_flag",
    ]
    pd.testing.assert_frame_equal(scored[frame.columns], frame)
    assert scored["b"].tolist() == pytest.approx([6, 16, 16])
    assert scored["b_flag"].tolist() == [None, "prorated: 3 of 4 items", None]
    assert scored["both"].tolist()[:2] == pytest.approx([8.5, 17])
    assert math.isnan(scored["both"].iloc[2])
    assert scored["both_flag"].tolist() == [None, "from b (prorated: 3 of 4 items)", None]


def test_score_frame_leaves_out_flag_columns_when_nothing_was_flagged():
    frame = pd.DataFrame({f"who5_{n}": [1, 2] for n in range(1, 6)})
    scored = score_frame(WHO5_LIKE, frame)
    assert list(scored.columns) == [*frame.columns, "raw"]
    assert scored["raw"].tolist() == [5, 10]


def test_score_frame_matches_score_response_row_by_row():
    rng = np.random.default_rng(20240611)
    instrument = composite_instrument()
    answers = rng.integers(1, 6, size=(200, 6)).astype(float)
    answers[rng.random(answers.shape) < 0.15] = np.nan
    frame = pd.DataFrame(answers, columns=list(instrument.item_ids))
    frame.insert(0, "respondent", [f"p{n:03}" for n in range(200)])
    scored = score_frame(instrument, frame)
    for position, row in frame.iterrows():
        expected = score_response(instrument, row.drop("respondent").to_dict())
        for score_id, value in expected.scores.items():
            got = scored.at[position, score_id]
            assert (value is None and math.isnan(got)) or got == value, (position, score_id)
            flag_column = score_id + "_flag"
            got_flag = scored.at[position, flag_column] if flag_column in scored else None
            assert got_flag == expected.flags.get(score_id), (position, score_id)
    assert scored["b_flag"].notna().any()  # the sample exercises prorating


def test_score_frame_lists_every_offending_row_and_column():
    frame = pd.DataFrame(
        {
            "who5_1": [1, 6, 2, 9],
            "who5_2": [1, 1, 2.5, 1],
            "who5_3": ["1", "2", "x", "3"],
            "who5_4": [1, 1, 1, 1],
            "who5_5": [1, 1, 1, -1],
        },
        index=[10, 11, 12, 13],
    )
    with pytest.raises(AnswerError) as caught:
        score_frame(WHO5_LIKE, frame)
    assert [str(problem) for problem in caught.value.problems] == [
        "row 11: who5_1: 6 is not an allowed answer; choose a whole number from 0 to 5",
        "row 12: who5_2: 2.5 is not an allowed answer; choose a whole number from 0 to 5",
        "row 12: who5_3: 'x' is not a number",
        "row 13: who5_1: 9 is not an allowed answer; choose a whole number from 0 to 5",
        "row 13: who5_5: -1 is not an allowed answer; choose a whole number from 0 to 5",
    ]


def test_score_frame_reads_text_cells_and_blank_text_is_missing():
    frame = pd.DataFrame({f"who5_{n}": ["3", " 2", ""] for n in range(1, 6)}, dtype="object")
    scored = score_frame(WHO5_LIKE, frame)
    assert scored["raw"].tolist()[:2] == [15, 10]
    assert math.isnan(scored["raw"].iloc[2])


def test_score_frame_requires_every_item_column():
    frame = pd.DataFrame({"who5_1": [1], "who5_2": [1], "who5_4": [1], "who5_5": [1]})
    with pytest.raises(AnswerError) as caught:
        score_frame(WHO5_LIKE, frame)
    assert [str(problem) for problem in caught.value.problems] == ["who5_3: the column is missing"]


def test_score_frame_will_not_overwrite_an_existing_column():
    frame = pd.DataFrame({f"who5_{n}": [1] for n in range(1, 6)} | {"raw": [99]})
    with pytest.raises(AnswerError, match="raw: a column has the name of a score"):
        score_frame(WHO5_LIKE, frame)


def test_score_frame_of_an_empty_table_has_the_score_columns():
    frame = pd.DataFrame({f"who5_{n}": pd.Series([], dtype=float) for n in range(1, 6)})
    scored = score_frame(WHO5_LIKE, frame)
    assert list(scored.columns) == [*frame.columns, "raw"]
    assert len(scored) == 0


# --- every shipped instrument -------------------------------------------------------------------


def shipped() -> list[Instrument]:
    from instruments.catalogue import LIBRARY_DIR
    from instruments.loader import load_instrument

    return [load_instrument(path) for path in sorted(LIBRARY_DIR.glob("*.yaml"))]


@pytest.mark.parametrize("instrument", shipped(), ids=lambda instrument: instrument.id)
def test_every_shipped_instrument_scores_a_table_as_it_scores_each_response(instrument):
    rng = np.random.default_rng(7)
    columns = {}
    for item in instrument.items:
        scale = instrument.scale_of(item)
        points = np.arange(scale.min, scale.max + scale.step / 2, scale.step)
        values = rng.choice(points, size=60).astype(float)
        values[rng.random(60) < 0.05] = np.nan
        columns[item.id] = values
    frame = pd.DataFrame(columns)
    scored = score_frame(instrument, frame)
    for position in range(len(frame)):
        expected = score_response(instrument, frame.iloc[position].to_dict())
        for score_id, value in expected.scores.items():
            got = scored.at[position, score_id]
            assert (value is None and math.isnan(got)) or got == value, (position, score_id)
    unanswered = score_response(instrument, dict.fromkeys(instrument.item_ids, None))
    assert set(unanswered.scores.values()) == {None}
