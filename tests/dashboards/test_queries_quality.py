"""Data-quality checks on the small study with the answers of outcomes_quality_answers.py; each
expected row read off that module's table."""

from __future__ import annotations

from datetime import date

import pytest

from dashboards.queries import Filters
from dashboards.queries.quality import (
    duplicate_contacts,
    free_text_answers,
    out_of_window,
    responses_frame,
    speeding,
    straight_lining,
)

from .conftest import EMAIL
from .outcomes_quality_answers import SCRIPT, SHARED_PHONE, study_with_answers


@pytest.fixture
def small(session):
    return study_with_answers(session)


def identity(frame):
    return [
        (row["participant"], row["arm"], row["occasion"], row["instrument"])
        for row in frame.to_dict("records")
    ]


def test_straight_lining_flags_submitted_responses_with_one_answer_throughout(session, small):
    flagged = straight_lining(responses_frame(session, small.study_id))
    # C001's partial response has one answer and was never submitted: not flagged.
    assert identity(flagged) == [("P-A001", "instruct", "week1", "who5")]
    assert (flagged["values"][0], flagged["answer"][0]) == (5, 3.0)
    assert straight_lining(responses_frame(session, small.study_id), min_items=6).empty


def test_speeding_is_under_one_second_per_answered_item(session, small):
    fast = speeding(responses_frame(session, small.study_id))
    assert identity(fast) == [("P-A001", "instruct", "week1", "who5")]
    assert fast.loc[0, ["items", "seconds", "seconds_per_item"]].tolist() == [5, 4.0, 0.8]
    # B001's UCLA-3 took 20 s per item, B002's WHO-5 of wave 1 36 s per item.
    slower = speeding(responses_frame(session, small.study_id), seconds_per_item=30)
    assert identity(slower) == [
        ("P-A001", "instruct", "week1", "who5"),
        ("P-B001", "reflective", "week2", "ucla3"),
    ]


def test_out_of_window_names_the_side_and_the_minutes(session, small):
    outside = out_of_window(responses_frame(session, small.study_id))
    assert identity(outside) == [
        ("P-B001", "reflective", "week2", "ucla3"),
        ("P-B002", "reflective", "week2", "who5"),
    ]
    assert outside["problem"].tolist() == ["before due", "after close"]
    assert outside["minutes_outside"].tolist() == [30.0, 120.0]


def test_response_filters_by_wave_arm_and_submission_date(session, small):
    wave_one = responses_frame(session, small.study_id, Filters(waves=frozenset({1})))
    assert out_of_window(wave_one).empty
    assert identity(straight_lining(wave_one)) == [("P-A001", "instruct", "week1", "who5")]
    control = responses_frame(session, small.study_id, Filters(arms=frozenset({"control"})))
    assert set(control["participant"]) == {"P-C001"}
    # B002's late WHO-5 went in on 3 March; B001's early UCLA-3 on 1 March.
    march_3 = Filters(date_from=date(2026, 3, 3), date_to=date(2026, 3, 3))
    late = out_of_window(responses_frame(session, small.study_id, march_3))
    assert identity(late) == [("P-B002", "reflective", "week2", "who5")]


def test_duplicate_contacts_give_codes_and_counts_never_contacts(session, small):
    groups = duplicate_contacts(session, small.study_id)
    assert groups.to_dict("records") == [
        {"kind": "email", "participants": "P-A001, P-B002", "count": 2},
        {"kind": "sms", "participants": "P-A002, P-C001", "count": 2},
    ]
    shown = groups.to_csv()
    assert EMAIL not in shown and "7700" not in shown and SHARED_PHONE[0] not in shown
    # A group is listed when any of its members matches the filters, with all its members.
    control = duplicate_contacts(session, small.study_id, Filters(arms=frozenset({"control"})))
    assert control["participants"].tolist() == ["P-A002, P-C001"]
    low = Filters(strata=frozenset({"wellbeing=high"}))  # A002, B001
    assert duplicate_contacts(session, small.study_id, low)["kind"].tolist() == ["sms"]


def test_free_text_answers_are_returned_verbatim(session, small):
    texts = free_text_answers(session, small.study_id)
    assert texts.to_dict("records") == [
        {
            "participant": "P-C001",
            "arm": "control",
            "occasion": "week2",
            "wave": 2,
            "instrument": "who5",
            "item": "comment",
            "answered_at": texts["answered_at"][0],
            "text": SCRIPT,
        }
    ]
    assert free_text_answers(session, small.study_id, Filters(waves=frozenset({1}))).empty
