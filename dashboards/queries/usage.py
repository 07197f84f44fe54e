"""Use of the assistant by arm and week, and heavy-use alerts, from the weekly usage table
(`study.assistant.usage.usage_by_participant_week`; its docstring defines sessions, turns,
active minutes and night share).

By arm and week, every allocated participant followed up in that week counts, users or not
(no use is data): `participants`, `users` (at least one session), and per participant the
mean `sessions`, `turns` and `active_minutes`; `night_share` is pooled, the arm's night turns
over all its turns that week (NaN without turns), so a participant who wrote once does not
weigh as much as one who wrote a hundred times.

A participant-week is a **heavy-use alert** when active time exceeds `HEAVY_ACTIVE_HOURS`
(3 hours in a week), or when more than `HEAVY_NIGHT_SHARE` (half) of at least
`NIGHT_MIN_TURNS` (5) turns were written at night (00:00-05:59 local time). Both thresholds
can be changed on the page; alerts list participant codes only.
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd
from sqlmodel import Session

from study.assistant.usage import usage_by_participant_week

from .common import NO_FILTERS, Filters, participants_frame

HEAVY_ACTIVE_HOURS = 3.0
HEAVY_NIGHT_SHARE = 0.5
NIGHT_MIN_TURNS = 5
BY_ARM_COLUMNS = [
    "arm",
    "week",
    "participants",
    "users",
    "sessions",
    "turns",
    "active_minutes",
    "night_share",
]
ALERT_COLUMNS = ["participant", "arm", "week", "turns", "active_minutes", "night_share", "reason"]


def weekly_usage(
    session: Session, study_id: int, filters: Filters = NO_FILTERS, *, now: datetime
) -> pd.DataFrame:
    """The weekly usage table of allocated participants matching the arm and stratum filters,
    up to the week containing `now`."""
    weekly = usage_by_participant_week(session, study_id, now=now)
    people = filters.select_participants(participants_frame(session, study_id))
    keep = weekly["participant"].isin(people["participant"]) & (weekly["arm"].fillna("") != "")
    return weekly[keep].reset_index(drop=True)


def usage_by_arm(weekly: pd.DataFrame) -> pd.DataFrame:
    """Per arm and week since enrolment: participants, users, mean sessions, turns and active
    minutes per participant, pooled night share (see the module docstring)."""
    if weekly.empty:
        return pd.DataFrame(columns=BY_ARM_COLUMNS)
    frame = weekly.assign(
        user=weekly["sessions"] > 0,
        night_turns=weekly["night_share"].fillna(0) * weekly["turns"],
    )
    table = (
        frame.groupby(["arm", "week"])
        .agg(
            participants=("participant", "size"),
            users=("user", "sum"),
            sessions=("sessions", "mean"),
            turns=("turns", "mean"),
            active_minutes=("active_minutes", "mean"),
            night_turns=("night_turns", "sum"),
            all_turns=("turns", "sum"),
        )
        .reset_index()
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        table["night_share"] = (table["night_turns"] / table["all_turns"]).where(
            table["all_turns"] > 0
        )
    table["users"] = table["users"].astype("int64")
    return table[BY_ARM_COLUMNS]


def heavy_use(
    weekly: pd.DataFrame,
    *,
    active_hours: float = HEAVY_ACTIVE_HOURS,
    night_share: float = HEAVY_NIGHT_SHARE,
    night_min_turns: int = NIGHT_MIN_TURNS,
) -> pd.DataFrame:
    """The participant-weeks above either threshold, with the reason; codes only."""
    long = weekly["active_minutes"] > active_hours * 60
    night = (weekly["night_share"] > night_share) & (weekly["turns"] >= night_min_turns)
    reasons = np.select(
        [long & night, long, night],
        [
            f"over {active_hours:g} h active, and at night",
            f"over {active_hours:g} h active",
            f"over {night_share:.0%} of turns at night",
        ],
        default="",
    )
    alerts = weekly.assign(reason=reasons)[long | night]
    return alerts.sort_values(["participant", "week"])[ALERT_COLUMNS].reset_index(drop=True)
