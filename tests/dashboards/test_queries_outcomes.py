"""Outcome trajectories by arm and wave on the small study with the answers of
outcomes_quality_answers.py; every mean, SD and interval worked out by hand, with Student's t
quantiles from a printed table (t(0.975; 1) = 12.7062, t(0.975; 2) = 4.3027)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboards.queries import Filters
from dashboards.queries.outcomes import (
    outcome_columns,
    outcome_data,
    study_waves,
    trajectories,
)

from .outcomes_quality_answers import study_with_answers

T_975_1 = 12.7062
T_975_2 = 4.3027


@pytest.fixture
def small(session):
    return study_with_answers(session)


def rows(frame):
    return {(row["arm"], row["wave"]): row for row in frame.to_dict("records")}


def test_who5_percentage_by_arm_and_wave(session, small):
    table = rows(trajectories(outcome_data(session, small.study_id), "who5_percentage"))
    # Control answered nothing complete; C001's partial response is never scored.
    assert sorted(table) == [("instruct", 1), ("reflective", 1), ("reflective", 2)]
    alone = table[("instruct", 1)]
    assert (alone["n"], alone["mean"]) == (1, 60.0)
    assert math.isnan(alone["sd"]) and math.isnan(alone["ci_low"]) and math.isnan(alone["ci_high"])
    first = table[("reflective", 1)]  # 40 and 60: sd = 20 / sqrt(2), se = 10
    assert (first["n"], first["mean"]) == (2, 50.0)
    assert first["sd"] == pytest.approx(14.142136, abs=1e-6)
    assert first["ci_low"] == pytest.approx(50 - T_975_1 * 10, abs=1e-3)
    assert first["ci_high"] == pytest.approx(50 + T_975_1 * 10, abs=1e-3)
    second = table[("reflective", 2)]  # 80 and 80
    assert (second["n"], second["mean"], second["sd"]) == (2, 80.0, 0.0)
    assert (second["ci_low"], second["ci_high"]) == (80.0, 80.0)


def test_raw_score_interval(session, small):
    first = rows(trajectories(outcome_data(session, small.study_id), "who5_raw"))[("reflective", 1)]
    assert first["mean"] == 12.5  # raw 10 and 15
    assert first["ci_low"] == pytest.approx(12.5 - T_975_1 * 2.5, abs=1e-3)


def test_filters_narrow_participants_and_waves(session, small):
    low = Filters(strata=frozenset({"wellbeing=low"}))  # A001, B002, C001
    table = rows(trajectories(outcome_data(session, small.study_id, low), "who5_percentage"))
    assert {key: row["mean"] for key, row in table.items()} == {
        ("instruct", 1): 60.0,
        ("reflective", 1): 60.0,
        ("reflective", 2): 80.0,
    }
    assert {row["n"] for row in table.values()} == {1}
    second = Filters(waves=frozenset({2}), arms=frozenset({"reflective"}))
    data = outcome_data(session, small.study_id, second)
    assert set(data["wave"]) == {2} and set(data["participant"]) == {"P-B001", "P-B002"}


def test_interval_uses_t_with_n_minus_one_degrees_of_freedom():
    data = pd.DataFrame({"arm": ["a"] * 3, "wave": [1] * 3, "score": [1.0, 2.0, 3.0]})
    [row] = trajectories(data, "score").to_dict("records")
    half = T_975_2 * 1 / math.sqrt(3)  # sd 1
    assert (row["n"], row["mean"], row["sd"]) == (3, 2.0, 1.0)
    assert row["ci_low"] == pytest.approx(2 - half, abs=1e-3)
    assert row["ci_high"] == pytest.approx(2 + half, abs=1e-3)


def test_unknown_outcome_is_an_error_and_no_scores_an_empty_table(session, small):
    data = outcome_data(session, small.study_id)
    with pytest.raises(KeyError, match="no_such_score"):
        trajectories(data, "no_such_score")
    assert trajectories(data[data["arm"] == "control"], "who5_percentage").empty


def test_outcome_columns_and_waves_come_from_the_protocol(session, small):
    columns = outcome_columns(session, small.study_id)
    assert columns[:2] == ["who5_raw", "who5_percentage"]
    assert set(columns) <= set(outcome_data(session, small.study_id).columns)
    assert study_waves(session, small.study_id) == [1, 2]  # the EMA prompt is no wave
