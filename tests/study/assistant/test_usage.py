"""Usage measures per participant-week and before occasions, against values worked out by hand.

The fixture's turns, with the arithmetic in the comments. Enrollment is Monday 2 March 2026
09:00 UTC; `now` is 20 days later, so weeks 0, 1 and 2 (6 days observed) exist.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from cryptography.fernet import Fernet

from study.assistant.usage import (
    WEEK_COLUMNS,
    load_usage_events,
    usage_before,
    usage_by_participant_week,
)
from study.models import Interaction, Participant
from study.pii import PiiVault

from .trial import ENROLLED_AT, make_trial

NOW = ENROLLED_AT + timedelta(days=20)
BEA_ENROLLED = datetime(2026, 3, 4, 15, 0, tzinfo=UTC)
BEA_WITHDRAWN = datetime(2026, 3, 13, 15, 0, tzinfo=UTC)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# (participant, session_id, role, UTC time)
TURNS = [
    # ADA (UTC). Week 0, session a1: gaps 30 s, 150 s, 20 s, 16 min 40 s (capped at 5 min),
    # 10 s = 510 s = 8.5 min; 3 turns of hers.
    ("P-ADA", "a1", "user", "2026-03-02T10:00:00"),
    ("P-ADA", "a1", "assistant", "2026-03-02T10:00:30"),
    ("P-ADA", "a1", "user", "2026-03-02T10:03:00"),
    ("P-ADA", "a1", "assistant", "2026-03-02T10:03:20"),
    ("P-ADA", "a1", "user", "2026-03-02T10:20:00"),
    ("P-ADA", "a1", "assistant", "2026-03-02T10:20:10"),
    # Same id, 39 min 50 s later: a new session of 1 min, 1 turn.
    ("P-ADA", "a1", "user", "2026-03-02T11:00:00"),
    ("P-ADA", "a1", "assistant", "2026-03-02T11:01:00"),
    # Session a2 at night: 2 min, 1 turn at 02:30.
    ("P-ADA", "a2", "user", "2026-03-03T02:30:00"),
    ("P-ADA", "a2", "assistant", "2026-03-03T02:32:00"),
    # Week 0: 3 sessions, 5 turns, 11.5 min, night 1/5, mean 11.5/3 min.
    # Week 1: nothing. Week 2 (from 16 March 09:00): a greeting nobody answered (no session),
    ("P-ADA", "a4", "assistant", "2026-03-19T12:00:00"),
    # and session a3 across midnight: gaps 8 min (capped at 5) and 4 min = 9 min; night 1/3.
    ("P-ADA", "a3", "user", "2026-03-20T23:50:00"),
    ("P-ADA", "a3", "user", "2026-03-20T23:58:00"),
    ("P-ADA", "a3", "user", "2026-03-21T00:02:00"),
    # BEA (America/New_York; DST starts 8 March 2026), enrolled 4 March 15:00 UTC, withdrawn
    # 13 March 15:00 UTC. Week 0: 06:00 UTC = 01:00 EST (night), 09:30 UTC = 04:30 EST (night),
    ("P-BEA", "b0", "user", "2026-03-05T06:00:00"),
    ("P-BEA", "b1", "user", "2026-03-05T09:30:00"),
    # 10:30 UTC = 06:30 EDT (not night; it would be 05:30 in EST), 1 min.
    ("P-BEA", "b2", "user", "2026-03-10T10:30:00"),
    ("P-BEA", "b2", "assistant", "2026-03-10T10:31:00"),
    # Week 1 (2 days observed): 04:00 UTC = 00:00 EDT (night).
    ("P-BEA", "b3", "user", "2026-03-12T04:00:00"),
]

EXPECTED_WEEKS = [
    # participant, arm, week, sessions, turns, active, night share, mean minutes, days observed
    ("P-ADA", "reflective", 0, 3, 5, 11.5, 0.2, 11.5 / 3, 7.0),
    ("P-ADA", "reflective", 1, 0, 0, 0.0, math.nan, math.nan, 7.0),
    ("P-ADA", "reflective", 2, 1, 3, 9.0, 1 / 3, 9.0, 6.0),
    ("P-BEA", "instruct", 0, 3, 3, 1.0, 2 / 3, 1 / 3, 7.0),
    ("P-BEA", "instruct", 1, 1, 1, 0.0, 1.0, 0.0, 2.0),
    ("P-CAL", "control", 0, 0, 0, 0.0, math.nan, math.nan, 7.0),
    ("P-CAL", "control", 1, 0, 0, 0.0, math.nan, math.nan, 7.0),
    ("P-CAL", "control", 2, 0, 0, 0.0, math.nan, math.nan, 6.0),
]


@pytest.fixture
def trial(session):
    trial = make_trial(session, PiiVault(Fernet.generate_key().decode()))
    people = {
        "P-ADA": trial.participant("P-ADA"),
        "P-BEA": trial.participant(
            "P-BEA",
            arm="instruct",
            status="withdrawn",
            timezone="America/New_York",
            enrolled_at=BEA_ENROLLED,
            withdrawn_at=BEA_WITHDRAWN,
        ),
        "P-CAL": trial.participant("P-CAL", arm="control", timezone="Asia/Tokyo"),
    }
    # Not enrolled: no rows at all. In another study: never counted here.
    session.add(Participant(study_id=trial.study.id, code="P-DEE", status="consented"))
    other = make_trial(session, trial.vault, slug="other")
    zoe = other.participant("P-ZOE")
    rows = [(people[code], trial.study.id, *rest) for code, *rest in TURNS]
    rows.append((zoe, other.study.id, "z1", "user", "2026-03-02T10:00:00"))
    for number, (person, study_id, session_id, role, at) in enumerate(rows):
        session.add(
            Interaction(
                study_id=study_id,
                participant_id=person.id,
                event_id=f"e{number}",
                session_id=session_id,
                role=role,
                occurred_at=utc(at),
            )
        )
    session.commit()
    return trial


def test_weekly_usage_matches_the_hand_computed_values(session, trial):
    table = usage_by_participant_week(session, trial.study.id, now=NOW)
    assert list(table.columns) == WEEK_COLUMNS
    expected = pd.DataFrame(EXPECTED_WEEKS, columns=WEEK_COLUMNS)
    pd.testing.assert_frame_equal(table, expected, check_dtype=False)
    assert table["week"].dtype == "int64"
    assert table["sessions"].dtype == "int64" and table["turns"].dtype == "int64"


def test_weeks_end_at_now(session, trial):
    early = usage_by_participant_week(session, trial.study.id, now=ENROLLED_AT + timedelta(days=8))
    ada = early[early["participant"] == "P-ADA"]
    assert list(ada["week"]) == [0, 1]
    assert list(ada["days_observed"]) == [7.0, 1.0]


def test_a_study_without_enrolled_participants_has_an_empty_table(session):
    empty = make_trial(session, PiiVault(Fernet.generate_key().decode()), slug="empty")
    table = usage_by_participant_week(session, empty.study.id, now=NOW)
    assert table.empty
    assert list(table.columns) == WEEK_COLUMNS


def test_usage_before_occasions_counts_the_preceding_window(session, trial):
    occasions = pd.DataFrame(
        {
            "participant": ["P-ADA", "P-ADA", "P-ADA", "P-BEA", "P-NOPE", "P-CAL"],
            "occasion": ["week1", "early", "late", "day1", "x", "week1"],
            # due: 9 Mar 09:00; 3 Mar 01:48; 21 Mar 00:00; 5 Mar 15:00; -; 9 Mar 09:00
            "days": [7.0, 0.7, 18.625, 1.0, 7.0, 7.0],
        },
        index=[10, 11, 12, 13, 14, 15],
    )
    result = usage_before(session, trial.study.id, occasions)
    assert list(result.index) == list(occasions.index)
    assert list(result["occasion"]) == list(occasions["occasion"])
    columns = [
        "usage_sessions",
        "usage_turns",
        "usage_active_minutes",
        "usage_night_share",
        "usage_mean_session_minutes",
    ]
    expected = pd.DataFrame(
        [
            # the week before 9 March is ADA's week 0
            (3, 5, 11.5, 0.2, 11.5 / 3),
            # before 01:48 on 3 March: session a1 in its two parts, not the night session a2
            (2, 4, 9.5, 0.0, 4.75),
            # session a3 starts in the window (all 9 min count), 2 of its turns fall inside
            (1, 2, 9.0, 0.0, 9.0),
            # BEA before 5 March 15:00: two night turns in single-turn sessions
            (2, 2, 0.0, 1.0, 0.0),
            (math.nan, math.nan, math.nan, math.nan, math.nan),
            (0, 0, 0.0, math.nan, math.nan),
        ],
        columns=columns,
        index=occasions.index,
        dtype="float64",
    )
    pd.testing.assert_frame_equal(result[columns], expected)


def test_usage_before_with_a_shorter_window(session, trial):
    occasions = pd.DataFrame({"participant": ["P-ADA"], "days": [0.7]})
    # 3 March 01:48 minus 1 hour: session a1 from 10:00 and its second part from 11:00 on
    # 2 March are both earlier, so nothing is in the window.
    result = usage_before(session, trial.study.id, occasions, window_days=1 / 24)
    assert result.loc[0, "usage_sessions"] == 0
    assert result.loc[0, "usage_turns"] == 0


def test_participants_who_never_used_the_assistant_have_zero_rows(session):
    quiet = make_trial(session, PiiVault(Fernet.generate_key().decode()), slug="quiet")
    quiet.participant("P-QUIET", arm="control")
    table = usage_by_participant_week(session, quiet.study.id, now=NOW)
    assert list(table["week"]) == [0, 1, 2]
    assert table[["sessions", "turns", "active_minutes"]].to_numpy().sum() == 0
    assert table["night_share"].isna().all()
    before = usage_before(
        session, quiet.study.id, pd.DataFrame({"participant": ["P-QUIET"], "days": [7.0]})
    )
    assert before.loc[0, "usage_sessions"] == 0


def test_the_log_read_once_serves_both_measures(session, trial):
    events = load_usage_events(session, trial.study.id, now=NOW)
    weekly = usage_by_participant_week(session, trial.study.id, now=NOW, events=events)
    pd.testing.assert_frame_equal(
        weekly, usage_by_participant_week(session, trial.study.id, now=NOW)
    )
    occasions = pd.DataFrame({"participant": ["P-ADA"], "days": [7.0]})
    before = usage_before(session, trial.study.id, occasions, events=events)
    assert before.loc[0, "usage_turns"] == 5
