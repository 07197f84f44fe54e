"""Usage of the assistant, from the interaction log: per participant-week, and before occasions.

Definitions (the same in docs/assistant-ingest.md):

- A **turn** is one message the participant wrote (`role == "user"`). Assistant, system and tool
  turns are not counted as turns, but they do extend sessions and active time, because reading
  a reply is using the assistant.
- A **session** is a run of turns (any role) of one participant with the same `session_id`, in
  which no two consecutive turns are more than SESSION_GAP (30 minutes) apart; a longer pause
  starts a new session under the same id. Sessions without any participant turn (a greeting
  nobody answered) are not counted. A session belongs to the week (or window) in which it
  starts.
- **Active minutes** of a session: the sum of the gaps between its consecutive turns, each gap
  capped at GAP_CAP (5 minutes), so that a chat left open does not count as use. A session of
  a single turn has 0 active minutes. A week's active minutes are those of its sessions.
- **Mean session minutes**: active minutes / sessions (NaN when there were no sessions).
- **Night share**: the share of the participant's turns written between 00:00 and 05:59 local
  time in the participant's own time zone (`Participant.timezone`); NaN when there were none.
- **Week** `w` (0-based) is `[enrolled_at + 7w days, enrolled_at + 7(w+1) days)`. Every
  participant with an enrollment time has a row for each week from 0 up to the week containing
  `now` (or their withdrawal), with zeros when they did not use the assistant: no use is data,
  not a gap. `days_observed` says how much of the week lies within follow-up (7 except for the
  current or the withdrawal week).

Everything is computed with two queries (participants, interactions) and vectorised pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session, col

from study.models import Allocation, Arm, Interaction, Participant

SESSION_GAP = pd.Timedelta(minutes=30)
GAP_CAP = pd.Timedelta(minutes=5)
NIGHT_END_HOUR = 6  # night is 00:00 to 05:59 local time
WEEK = pd.Timedelta(days=7)
WEEK_COLUMNS = [
    "participant",
    "arm",
    "week",
    "sessions",
    "turns",
    "active_minutes",
    "night_share",
    "mean_session_minutes",
    "days_observed",
]
_DTYPES = {"participant": "object", "arm": "object", "week": "int64", "sessions": "int64"}
_DTYPES |= {"turns": "int64", "active_minutes": "float64", "night_share": "float64"}
_DTYPES |= {"mean_session_minutes": "float64", "days_observed": "float64"}
MEASURES = ["sessions", "turns", "active_minutes", "night_share", "mean_session_minutes"]


@dataclass(frozen=True)
class UsageEvents:
    """The log reduced to what the measures need.

    `participants`: participant_id (index), participant (code), arm, enrolled_at, end_at.
    `turns`: the participants' own turns: participant_id, at (UTC), night (bool).
    `sessions`: participant_id, start (UTC), active_minutes.
    """

    participants: pd.DataFrame
    turns: pd.DataFrame
    sessions: pd.DataFrame


def usage_by_participant_week(
    session: Session, study_id: int, *, now: datetime | None = None
) -> pd.DataFrame:
    """One row per enrolled participant and week since enrollment, with the usage measures.

    Columns: WEEK_COLUMNS (see the module docstring for each definition). Weeks run from 0 to
    the week containing `now` (default: the current time) or the participant's withdrawal,
    whichever is earlier; weeks without use are rows of zeros (NaN for the two ratios).
    """
    events = load_usage_events(session, study_id, now=now)
    people = events.participants
    if people.empty:
        return pd.DataFrame({name: pd.Series(dtype=_DTYPES[name]) for name in WEEK_COLUMNS})
    last_week = ((people["end_at"] - people["enrolled_at"]) // WEEK).clip(lower=-1)
    grid = pd.DataFrame(
        {
            "participant_id": np.repeat(people.index.to_numpy(), last_week.to_numpy() + 1),
            "week": np.concatenate([np.arange(n + 1) for n in last_week.to_numpy()] or [[]]),
        }
    ).astype({"participant_id": "int64", "week": "int64"})

    enrolled = people["enrolled_at"]
    turns = events.turns.assign(week=_weeks(events.turns, "at", enrolled))
    by_turns = turns.groupby(["participant_id", "week"]).agg(
        turns=("night", "size"), night=("night", "sum")
    )
    sessions = events.sessions.assign(week=_weeks(events.sessions, "start", enrolled))
    by_sessions = sessions.groupby(["participant_id", "week"]).agg(
        sessions=("active_minutes", "size"), active_minutes=("active_minutes", "sum")
    )
    # Exactly the weeks of follow-up: use in a later week (after `now`) is not counted yet.
    keys = pd.MultiIndex.from_frame(grid)
    table = pd.concat([by_turns.reindex(keys), by_sessions.reindex(keys)], axis=1).fillna(0)
    table = table.reset_index()

    week_start = table["participant_id"].map(enrolled) + table["week"] * WEEK
    observed = table["participant_id"].map(people["end_at"]) - week_start
    table["days_observed"] = observed.clip(lower=pd.Timedelta(0), upper=WEEK) / pd.Timedelta(days=1)
    table["participant"] = table["participant_id"].map(people["participant"])
    table["arm"] = table["participant_id"].map(people["arm"])
    _ratios(table)
    table = table.astype({"week": "int64", "sessions": "int64", "turns": "int64"})
    return table.sort_values(["participant", "week"])[WEEK_COLUMNS].reset_index(drop=True)


def usage_before(
    session: Session,
    study_id: int,
    occasions: pd.DataFrame,
    *,
    window_days: float = 7.0,
) -> pd.DataFrame:
    """`occasions` with the usage in the `window_days` before each occasion added as columns
    `usage_sessions`, `usage_turns`, `usage_active_minutes`, `usage_night_share` and
    `usage_mean_session_minutes` (the time-varying covariates of the analysis dataset).

    `occasions` needs the analysis contract's columns `participant` (code) and `days` (days from
    enrollment to the occasion's due time). The window is `[due - window_days, due)`; sessions
    count when they start in it. Participants unknown to the study, or rows without `days`, get
    NaN throughout. Other columns and the row order are kept.
    """
    events = load_usage_events(session, study_id)
    people = events.participants
    codes = pd.Series(people.index.to_numpy(), index=people["participant"].to_numpy())
    pid = occasions["participant"].map(codes)
    due = pid.map(people["enrolled_at"]) + pd.to_timedelta(occasions["days"], unit="D")
    known = pid.notna() & due.notna()
    # Keys use each participant's position, not their database id, to stay small.
    position = pd.Series(np.arange(len(people)), index=people.index)
    place = pid[known].map(position)
    ends = _instant_keys(place, due[known])
    starts = _instant_keys(place, due[known] - pd.Timedelta(days=window_days))

    turns = _sorted_keys(events.turns, "at", position)
    night = np.concatenate([[0], np.cumsum(events.turns["night"].to_numpy()[turns[1]])])
    turn_count = _count(turns[0], starts, ends)
    night_count = night[np.searchsorted(turns[0], ends)] - night[np.searchsorted(turns[0], starts)]
    sessions = _sorted_keys(events.sessions, "start", position)
    minutes = events.sessions["active_minutes"].to_numpy()[sessions[1]]
    active = np.concatenate([[0.0], np.cumsum(minutes)])
    session_count = _count(sessions[0], starts, ends)
    active_minutes = (
        active[np.searchsorted(sessions[0], ends)] - active[np.searchsorted(sessions[0], starts)]
    )

    window = pd.DataFrame(
        {
            "sessions": session_count,
            "turns": turn_count,
            "active_minutes": active_minutes,
            "night": night_count,
        },
        index=occasions.index[known.to_numpy()],
    )
    _ratios(window)
    result = occasions.copy()
    for name in MEASURES:
        result[f"usage_{name}"] = window[name].reindex(occasions.index).astype("float64")
    return result


def load_usage_events(
    session: Session, study_id: int, *, now: datetime | None = None
) -> UsageEvents:
    """Read the study's enrolled participants and their turns, and cut the turns into sessions."""
    now = now or datetime.now(UTC)
    people = pd.DataFrame(
        session.execute(
            select(
                Participant.id,
                Participant.code,
                Arm.key,
                Participant.timezone,
                Participant.enrolled_at,
                Participant.withdrawn_at,
            )
            .join(Allocation, col(Allocation.participant_id) == Participant.id, isouter=True)
            .join(Arm, col(Arm.id) == Allocation.arm_id, isouter=True)
            .where(Participant.study_id == study_id, col(Participant.enrolled_at).isnot(None))
        ).all(),
        columns=["participant_id", "participant", "arm", "timezone", "enrolled_at", "withdrawn"],
    ).set_index("participant_id")
    for name in ("enrolled_at", "withdrawn"):
        people[name] = _utc(people[name])
    people["arm"] = people["arm"].fillna("")
    until = pd.Timestamp(now).tz_convert("UTC").as_unit("us")
    end = people["withdrawn"].fillna(until).clip(upper=until)
    people["end_at"] = end

    log = pd.DataFrame(
        session.execute(
            select(
                Interaction.participant_id,
                Interaction.session_id,
                Interaction.role == "user",
                Interaction.occurred_at,
            ).where(Interaction.study_id == study_id)
        ).all(),
        columns=["participant_id", "session_id", "is_user", "at"],
    )
    log["at"] = _utc(log["at"])
    log = log[log["participant_id"].isin(people.index)]
    log["is_user"] = log["is_user"].astype(bool)
    log["session_code"] = pd.factorize(log["session_id"])[0]
    log = log.sort_values(["participant_id", "session_code", "at"], kind="stable")
    turns = log.loc[log["is_user"], ["participant_id", "at"]].reset_index(drop=True)
    turns["night"] = _night(turns, people["timezone"])
    return UsageEvents(people.drop(columns=["withdrawn"]), turns, _sessions(log))


def _sessions(log: pd.DataFrame) -> pd.DataFrame:
    """Cut sorted turns into sessions: a new participant, session id or a long pause starts one."""
    gap = log["at"].diff()
    new = (
        log["participant_id"].ne(log["participant_id"].shift())
        | log["session_code"].ne(log["session_code"].shift())
        | (gap > SESSION_GAP)
    )
    capped = gap.where(~new, pd.Timedelta(0)).clip(upper=GAP_CAP)
    sessions = (
        pd.DataFrame(
            {
                "session": new.cumsum().to_numpy(),
                "participant_id": log["participant_id"].to_numpy(),
                "start": log["at"].to_numpy(),
                "minutes": (capped / pd.Timedelta(minutes=1)).to_numpy(),
                "is_user": log["is_user"].to_numpy(),
            }
        )
        .groupby("session", sort=False)
        .agg(
            participant_id=("participant_id", "first"),
            start=("start", "first"),
            active_minutes=("minutes", "sum"),
            has_user=("is_user", "any"),
        )
    )
    sessions = sessions[sessions["has_user"]].drop(columns="has_user").reset_index(drop=True)
    sessions["start"] = _utc(sessions["start"])
    return sessions


def _night(turns: pd.DataFrame, zones: pd.Series) -> np.ndarray:
    """Whether each turn was written between 00:00 and 05:59 in its writer's time zone."""
    night = np.zeros(len(turns), dtype=bool)
    zone_of_turn = turns["participant_id"].map(zones).to_numpy()
    for zone in pd.unique(zone_of_turn):
        mask = zone_of_turn == zone
        hours = turns["at"][mask].dt.tz_convert(zone).dt.hour.to_numpy()
        night[mask] = hours < NIGHT_END_HOUR
    return night


def _weeks(frame: pd.DataFrame, column: str, enrolled: pd.Series) -> pd.Series:
    return ((frame[column] - frame["participant_id"].map(enrolled)) // WEEK).astype("int64")


def _ratios(table: pd.DataFrame) -> None:
    """Night share and mean session minutes from counts (NaN where the denominator is 0)."""
    table["night_share"] = table["night"] / table["turns"].where(table["turns"] > 0)
    table["mean_session_minutes"] = table["active_minutes"] / table["sessions"].where(
        table["sessions"] > 0
    )


# Windows are found by binary search over one sorted array of keys that order first by
# participant, then by instant: key = participant's position * 2**41 + milliseconds since 2000-01-01
# (2**41 ms is about 69 years; up to 2**22 participants fit in 63 bits).
_MS_BITS = 41
_EPOCH = pd.Timestamp("2000-01-01", tz="UTC")


def _instant_keys(participant_id: pd.Series, instant: pd.Series) -> np.ndarray:
    milliseconds = (pd.to_datetime(instant, utc=True) - _EPOCH) // pd.Timedelta(milliseconds=1)
    milliseconds = milliseconds.clip(0, 2**_MS_BITS - 1).astype("int64").to_numpy()
    return (participant_id.astype("int64").to_numpy() << _MS_BITS) + milliseconds


def _sorted_keys(
    frame: pd.DataFrame, column: str, position: pd.Series
) -> tuple[np.ndarray, np.ndarray]:
    keys = _instant_keys(frame["participant_id"].map(position), frame[column])
    order = np.argsort(keys, kind="stable")
    return keys[order], order


def _count(sorted_keys: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_keys, ends) - np.searchsorted(sorted_keys, starts)


def _utc(values) -> pd.Series:
    # One resolution throughout (pandas infers seconds or microseconds from the data otherwise).
    return pd.to_datetime(values, utc=True).dt.as_unit("us")
