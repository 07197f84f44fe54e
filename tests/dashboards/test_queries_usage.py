"""Assistant usage by arm and week, and heavy-use alerts: on a weekly table written by hand,
and through the study's interaction log (conftest's small study: P-A001 wrote one turn on
10 February, answered a minute later)."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from cryptography.fernet import Fernet

from dashboards.queries import Filters
from dashboards.queries.usage import heavy_use, usage_by_arm, weekly_usage
from study.pii import PiiVault

from .conftest import build_small_study

COLUMNS = ["participant", "arm", "week", "sessions", "turns", "active_minutes", "night_share"]
WEEKLY = pd.DataFrame(
    [
        ("P1", "a", 0, 2, 10, 200.0, 0.6),  # over 3 h and 6 of 10 turns at night
        ("P2", "a", 0, 0, 0, 0.0, math.nan),  # no use is a row of zeros
        ("P3", "b", 0, 1, 4, 30.0, 1.0),  # all 4 turns at night, but fewer than 5 turns
        ("P4", "b", 0, 3, 6, 181.0, 0.5),  # just over 3 h; half at night is not over half
        ("P3", "b", 1, 1, 5, 20.0, 0.8),  # 4 of 5 turns at night
    ],
    columns=COLUMNS,
)


def test_usage_by_arm_averages_over_everyone_followed_up_and_pools_night_turns():
    table = usage_by_arm(WEEKLY).set_index(["arm", "week"])
    assert table.loc[("a", 0)].tolist() == [2, 1, 1.0, 5.0, 100.0, 0.6]
    # Night share of arm b in week 0: (4 x 1.0 + 6 x 0.5) / 10 turns.
    assert table.loc[("b", 0)].tolist() == [2, 2, 2.0, 5.0, 105.5, pytest.approx(0.7)]
    assert table.loc[("b", 1)].tolist() == [1, 1, 1.0, 5.0, 20.0, 0.8]
    assert math.isnan(usage_by_arm(WEEKLY[WEEKLY["participant"] == "P2"])["night_share"][0])


def test_heavy_use_alerts_with_the_documented_thresholds():
    alerts = heavy_use(WEEKLY)
    assert alerts[["participant", "week", "reason"]].values.tolist() == [
        ["P1", 0, "over 3 h active, and at night"],
        ["P3", 1, "over 50% of turns at night"],
        ["P4", 0, "over 3 h active"],
    ]
    assert list(alerts.columns) == [
        *COLUMNS[:3],
        "turns",
        "active_minutes",
        "night_share",
        "reason",
    ]


def test_heavy_use_thresholds_can_be_raised():
    alerts = heavy_use(WEEKLY, active_hours=4, night_share=0.7)
    assert alerts[["participant", "week"]].values.tolist() == [["P3", 1]]


@pytest.fixture
def small(session):
    return build_small_study(session, PiiVault(Fernet.generate_key().decode()))


def test_weekly_usage_reads_the_interaction_log_for_the_chosen_arms(session, small, clock):
    weekly = weekly_usage(
        session, small.study_id, Filters(arms=frozenset({"instruct"})), now=clock.now()
    )
    a001 = weekly[weekly["participant"] == "P-A001"]
    # Enrolled 2 February 10:00, now 2 March 09:00: weeks 0 to 3; the turn was in week 1.
    assert a001["week"].tolist() == [0, 1, 2, 3]
    assert a001["turns"].tolist() == [0, 1, 0, 0]
    assert a001["sessions"].tolist() == [0, 1, 0, 0]
    assert a001["active_minutes"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert set(weekly["participant"]) == {"P-A001", "P-A002"}
    everyone = weekly_usage(session, small.study_id, now=clock.now())
    assert set(everyone["participant"]) == {"P-A001", "P-A002", "P-B001", "P-B002", "P-C001"}
    by_arm = usage_by_arm(everyone).set_index(["arm", "week"])
    assert by_arm.loc[("instruct", 1), ["participants", "users", "turns"]].tolist() == [2, 1, 0.5]
