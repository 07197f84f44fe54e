"""The dashboards' numbers on the small study of conftest.py, every expected value counted by
hand from its table; on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from cryptography.fernet import Fernet

from dashboards.queries import (
    Filters,
    arm_labels,
    compliance_frame,
    consort_flow,
    delivery_failures,
    enrollment_over_time,
    late_and_missed,
    message_queue,
    response_rates,
    status_matrix,
    timeline,
)
from study.pii import PiiVault

from .conftest import build_small_study


@pytest.fixture
def small(session):
    return build_small_study(session, PiiVault(Fernet.generate_key().decode()))


@pytest.fixture
def now(clock):
    return clock.now()


def by_stage(frame):
    return {row["stage"]: row for row in frame.to_dict("records")}


def test_consort_flow_counts_each_stage_and_arm(session, small):
    flow = by_stage(consort_flow(session, small.study_id))
    assert list(flow) == [
        "screened",
        "eligible",
        "consented",
        "randomised",
        "active",
        "withdrawn",
        "completed final wave",
    ]
    assert flow["screened"]["all"] == 9  # 7 participant rows + 2 screened out
    assert flow["eligible"]["all"] == 7
    assert flow["consented"]["all"] == 6  # everyone but P-S001
    assert [flow["randomised"][arm] for arm in ("control", "instruct", "reflective")] == [1, 2, 2]
    assert [flow["active"][arm] for arm in ("control", "instruct", "reflective")] == [1, 1, 1]
    assert [flow["withdrawn"][arm] for arm in ("control", "instruct", "reflective")] == [0, 1, 0]
    # The last wave is 2; B001 and B002 completed it.
    assert flow["completed final wave"]["reflective"] == 2
    assert flow["completed final wave"]["all"] == 2


def test_consort_flow_narrowed_to_a_stratum(session, small):
    flow = by_stage(consort_flow(session, small.study_id, Filters(strata={"wellbeing=low"})))
    # low: A001 (instruct), B002 (reflective), C001 (control)
    assert flow["randomised"]["all"] == 3
    assert flow["completed final wave"]["all"] == 1  # B002
    assert flow["screened"]["all"] == 9  # study totals are not narrowed


def test_enrollment_over_time_is_cumulative_against_the_protocols_target(session, small):
    frame = enrollment_over_time(session, small.study_id)
    assert frame["date"].tolist() == ["2026-02-02", "2026-02-03", "2026-02-04"]
    assert frame["enrolled"].tolist() == [2, 1, 2]
    assert frame["cumulative"].tolist() == [2, 3, 5]
    assert set(frame["target"]) == {450}  # study.target_enrollment of the example protocol
    narrowed = enrollment_over_time(
        session, small.study_id, Filters(arms={"reflective"}, date_to=date(2026, 2, 3))
    )
    assert narrowed["cumulative"].tolist() == [1]  # B001 on 3 February; B002 is after


def test_response_rates_count_only_what_is_due(session, small, now):
    occasions, _ = compliance_frame(session, small.study_id, now=now)
    assert len(occasions) == 10  # the EMA prompt is not a wave occasion
    rates = {(r["wave"], r["arm"]): r for r in response_rates(occasions).to_dict("records")}
    assert (rates[(1, "instruct")]["due"], rates[(1, "instruct")]["completed"]) == (2, 1)
    assert rates[(1, "instruct")]["response_rate"] == 0.5
    assert rates[(1, "reflective")]["response_rate"] == 1.0
    # C001's wave 1 was sent but its window closed unanswered: due, not completed.
    assert rates[(1, "control")]["response_rate"] == 0.0
    # Wave 2 of instruct: A001 still open, A002 cancelled; nothing is due yet.
    assert rates[(2, "instruct")]["due"] == 0
    assert pd.isna(rates[(2, "instruct")]["response_rate"])
    assert rates[(2, "reflective")]["response_rate"] == 1.0


def test_late_and_missed(session, small, now):
    occasions, _ = compliance_frame(session, small.study_id, now=now)
    table = {(r["wave"], r["arm"]): r for r in late_and_missed(occasions).to_dict("records")}
    assert table[(1, "reflective")]["late"] == 1  # B001 answered after its reminder
    assert table[(1, "instruct")]["missed"] == 1
    assert table[(1, "instruct")]["missed_partial"] == 1  # A002 had answered some of it
    assert table[(1, "control")]["missed"] == 1  # C001: closed before the sweep stored it
    assert table[(1, "control")]["missed_partial"] == 0
    assert table[(2, "instruct")]["cancelled"] == 1


def test_delivery_failures_by_channel(session, small, now):
    _, messages = compliance_frame(session, small.study_id, now=now)
    table = {r["channel"]: r for r in delivery_failures(messages).to_dict("records")}
    assert (table["email"]["messages"], table["email"]["failures"]) == (4, 0)
    assert (table["sms"]["messages"], table["sms"]["failed"], table["sms"]["undelivered"]) == (
        3,
        1,
        1,
    )
    assert table["sms"]["failure_rate"] == round(2 / 3, 4)


def test_heatmap_matrix_has_a_row_per_participant_and_a_column_per_occasion(session, small, now):
    occasions, _ = compliance_frame(session, small.study_id, now=now)
    matrix = status_matrix(occasions)
    assert list(matrix.columns) == ["week1", "week2"]
    assert list(matrix.index) == ["P-A001", "P-A002", "P-B001", "P-B002", "P-C001"]
    assert matrix.loc["P-C001"].tolist() == ["missed", "partial"]
    assert matrix.loc["P-A002"].tolist() == ["missed", "cancelled"]


def test_compliance_filters_by_wave_and_due_dates(session, small, now):
    occasions, messages = compliance_frame(
        session, small.study_id, now=now, filters=Filters(waves={2}, arms={"control"})
    )
    assert occasions[["participant", "status"]].values.tolist() == [["P-C001", "partial"]]
    assert messages["status"].tolist() == ["undelivered"]
    dated, _ = compliance_frame(
        session, small.study_id, now=now, filters=Filters(date_from=date(2026, 3, 1))
    )
    assert set(dated["wave"]) == {2}


def test_message_queue_lists_waiting_and_failed_messages(session, small):
    queue = message_queue(session, small.study_id)
    assert queue[["participant", "status", "channel"]].values.tolist() == [
        ["P-A002", "failed", "sms"],
        ["P-A001", "pending", "email"],
        ["P-C001", "undelivered", "sms"],
    ]
    assert queue.loc[0, "last_error"] == "carrier refused"
    assert message_queue(session, small.study_id, Filters(waves={1}))["participant"].tolist() == [
        "P-A002"
    ]


def test_timeline_interleaves_occasions_messages_and_turns(session, small):
    events = timeline(session, small.ids["P-A001"])
    assert events["type"].value_counts().to_dict() == {
        "occasion": 3,
        "message": 2,
        "interaction": 2,
    }
    assert events["at"].is_monotonic_increasing
    assert "ada@example.org" not in events.to_csv()


def test_blinded_arm_labels_are_letters_stable_and_not_the_protocol_order():
    keys = ["instruct", "reflective", "control"]
    labels = arm_labels(keys, study_id=1, secret="s" * 40, blind=True)
    assert sorted(labels.values()) == ["Arm A", "Arm B", "Arm C"]
    assert labels == arm_labels(reversed(keys), study_id=1, secret="s" * 40, blind=True)
    orders = {
        tuple(arm_labels(keys, study_id=1, secret=f"secret-{n}", blind=True)[k] for k in keys)
        for n in range(20)
    }
    assert len(orders) > 1  # the key decides the letters, not the order of the arms
    assert arm_labels(keys, study_id=1, secret="s", blind=False) == {k: k for k in keys}
