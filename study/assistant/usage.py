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

Everything is computed with two queries (participants, interactions) and vectorised numpy and
pandas; instants are handled as integer microseconds since 1970 (UTC) until the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy import BigInteger, Integer, cast, extract, func, select
from sqlmodel import Session, col

from study.models import Allocation, Arm, Interaction, Participant

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MINUTE = 60_000_000  # microseconds
SESSION_GAP = 30 * MINUTE
GAP_CAP = 5 * MINUTE
WEEK = 7 * 24 * 60 * MINUTE
DAY = 24 * 60 * MINUTE
NIGHT_END_HOUR = 6  # night is 00:00 to 05:59 local time
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
MEASURES = ["sessions", "turns", "active_minutes", "night_share", "mean_session_minutes"]
_DTYPES = {"participant": "object", "arm": "object", "week": "int64", "sessions": "int64"}
_DTYPES |= {"turns": "int64", "active_minutes": "float64", "night_share": "float64"}
_DTYPES |= {"mean_session_minutes": "float64", "days_observed": "float64"}


@dataclass(frozen=True)
class UsageEvents:
    """The log reduced to what the measures need; instants in microseconds since 1970 (UTC).

    `participants` (indexed by position 0..n-1): participant_id, participant (code), arm,
    timezone, start (enrollment), end (`now` or withdrawal, whichever is earlier).
    `turns`: the participants' own turns: pos, t, night (bool).
    `sessions`: pos, t (the session's first turn), active_minutes.
    """

    participants: pd.DataFrame
    turns: pd.DataFrame
    sessions: pd.DataFrame


def usage_by_participant_week(
    session: Session,
    study_id: int,
    *,
    now: datetime | None = None,
    events: UsageEvents | None = None,
) -> pd.DataFrame:
    """One row per enrolled participant and week since enrollment, with the usage measures.

    Columns: WEEK_COLUMNS (see the module docstring for each definition). Weeks run from 0 to
    the week containing `now` (default: the current time) or the participant's withdrawal,
    whichever is earlier; weeks without use are rows of zeros (NaN for the two ratios). Use
    stamped in a later week than that (after `now`) is not counted yet. `events` (from
    `load_usage_events`) saves reading the log again when it was read for `usage_before`.
    """
    if events is None:
        events = load_usage_events(session, study_id, now=now)
    people = events.participants
    weeks = np.maximum((people["end"].to_numpy() - people["start"].to_numpy()) // WEEK + 1, 0)
    first_row = np.concatenate([[0], np.cumsum(weeks)])
    total = int(first_row[-1])
    pos = np.repeat(np.arange(len(people)), weeks)
    week = np.arange(total) - first_row[pos]

    def rows_of(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each event's row in the table, and which events fall in the table at all."""
        at = frame["pos"].to_numpy()
        week_of = (frame["t"].to_numpy() - people["start"].to_numpy()[at]) // WEEK
        inside = (week_of >= 0) & (week_of < weeks[at])
        return (first_row[at] + week_of)[inside], inside

    turn_rows, turn_inside = rows_of(events.turns)
    session_rows, session_inside = rows_of(events.sessions)
    night = events.turns["night"].to_numpy()[turn_inside]
    minutes = events.sessions["active_minutes"].to_numpy()[session_inside]
    start = people["start"].to_numpy()[pos] + week * WEEK
    table = pd.DataFrame(
        {
            "participant": people["participant"].to_numpy()[pos],
            "arm": people["arm"].to_numpy()[pos],
            "week": week,
            "sessions": np.bincount(session_rows, minlength=total),
            "turns": np.bincount(turn_rows, minlength=total),
            "active_minutes": np.bincount(session_rows, weights=minutes, minlength=total),
            "night": np.bincount(turn_rows, weights=night, minlength=total),
            "days_observed": np.clip(people["end"].to_numpy()[pos] - start, 0, WEEK) / DAY,
        }
    )
    _ratios(table)
    table = table.astype({name: _DTYPES[name] for name in WEEK_COLUMNS})
    return table.sort_values(["participant", "week"])[WEEK_COLUMNS].reset_index(drop=True)


def usage_before(
    session: Session,
    study_id: int,
    occasions: pd.DataFrame,
    *,
    window_days: float = 7.0,
    events: UsageEvents | None = None,
) -> pd.DataFrame:
    """`occasions` with the usage in the `window_days` before each occasion added as columns
    `usage_sessions`, `usage_turns`, `usage_active_minutes`, `usage_night_share` and
    `usage_mean_session_minutes` (the time-varying covariates of the analysis dataset).

    `occasions` needs the analysis contract's columns `participant` (code) and `days` (days from
    enrollment to the occasion's due time). The window is `[due - window_days, due)`; sessions
    count when they start in it. Participants unknown to the study, or rows without `days`, get
    NaN throughout. Other columns and the row order are kept. `events` as for
    `usage_by_participant_week`.
    """
    if events is None:
        events = load_usage_events(session, study_id)
    people = events.participants
    positions = pd.Series(people.index.to_numpy(), index=people["participant"].to_numpy())
    pos = occasions["participant"].map(positions)
    days = pd.to_numeric(occasions["days"], errors="coerce")
    known = (pos.notna() & days.notna()).to_numpy()
    pos = pos[known].astype("int64").to_numpy()
    due = people["start"].to_numpy()[pos] + np.round(days[known].to_numpy() * DAY).astype("int64")
    since = due - round(window_days * DAY)

    turns = _cumulative(events.turns, {"turns": None, "night": "night"})
    sessions = _cumulative(events.sessions, {"sessions": None, "active_minutes": "active_minutes"})
    window = pd.concat(
        [_between(turns, pos, since, due), _between(sessions, pos, since, due)], axis=1
    )
    window.index = occasions.index[known]
    _ratios(window)
    result = occasions.copy()
    for name in MEASURES:
        result[f"usage_{name}"] = window[name].reindex(occasions.index).astype("float64")
    return result


def load_usage_events(
    session: Session, study_id: int, *, now: datetime | None = None
) -> UsageEvents:
    """Read the study's enrolled participants and their turns, and cut the turns into sessions."""
    until = _microseconds(now or datetime.now(UTC))
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
            .order_by(Participant.id)
        ).all(),
        columns=["participant_id", "participant", "arm", "timezone", "enrolled", "withdrawn"],
    )
    people["arm"] = people["arm"].fillna("")
    people["start"] = np.array([_microseconds(at) for at in people["enrolled"]], dtype="int64")
    withdrawn = [
        until if at is None or pd.isna(at) else _microseconds(at) for at in people["withdrawn"]
    ]
    people["end"] = np.minimum(np.array(withdrawn, dtype="int64"), until)
    people = people.drop(columns=["enrolled", "withdrawn"])

    rows = session.execute(
        select(
            Interaction.participant_id,
            Interaction.session_id,
            cast(Interaction.role == "user", Integer),
            _epoch_microseconds(session, Interaction.occurred_at),
        ).where(Interaction.study_id == study_id)
    ).all()
    # Column by column: a DataFrame built from a million Row objects inspects each of them.
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    participant_id, session_id, is_user, t = columns
    pos = pd.Index(people["participant_id"]).get_indexer(list(participant_id))
    enrolled = pos >= 0
    log = {
        "pos": pos[enrolled],
        "session": pd.factorize(np.array(session_id, dtype=object))[0][enrolled],
        "is_user": np.array(is_user, dtype=bool)[enrolled],
        "t": np.array(t, dtype="int64")[enrolled],
    }
    order = np.lexsort((log["t"], log["session"], log["pos"]))
    log = {name: values[order] for name, values in log.items()}
    turns = pd.DataFrame({"pos": log["pos"][log["is_user"]], "t": log["t"][log["is_user"]]})
    turns["night"] = _night(turns, people["timezone"])
    return UsageEvents(people, turns, _sessions(log))


def _epoch_microseconds(session: Session, column):
    """`column` (naive UTC, as UTCDateTime stores it) as integer microseconds since 1970, in
    SQL: converting a million datetimes in Python would take longer than everything else."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(extract("epoch", column) * 1_000_000, BigInteger)
    # SQLite stores "YYYY-MM-DD HH:MM:SS.ffffff": whole seconds, then the microseconds.
    seconds = cast(func.strftime("%s", column), BigInteger) * 1_000_000
    return seconds + cast(func.substr(column, 21, 6), Integer)


def _microseconds(instant: datetime) -> int:
    return (instant - _EPOCH) // timedelta(microseconds=1)


def _sessions(log: dict[str, np.ndarray]) -> pd.DataFrame:
    """Cut sorted turns into sessions: a new participant, session id or a long pause starts one."""
    pos, session, t = log["pos"], log["session"], log["t"]
    gap = np.diff(t, prepend=t[:1])
    new = np.ones(len(t), dtype=bool)
    new[1:] = (pos[1:] != pos[:-1]) | (session[1:] != session[:-1]) | (gap[1:] > SESSION_GAP)
    number = np.cumsum(new) - 1
    capped = np.where(new, 0, np.minimum(gap, GAP_CAP)) / MINUTE
    count = int(new.sum())
    active = np.bincount(number, weights=capped, minlength=count)
    has_user = np.bincount(number, weights=log["is_user"], minlength=count) > 0
    return pd.DataFrame(
        {"pos": pos[new][has_user], "t": t[new][has_user], "active_minutes": active[has_user]}
    )


def _night(turns: pd.DataFrame, zones: pd.Series) -> np.ndarray:
    """Whether each turn was written between 00:00 and 05:59 in its writer's time zone."""
    night = np.zeros(len(turns), dtype=bool)
    zone_of_turn = zones.to_numpy()[turns["pos"].to_numpy()]
    instants = pd.to_datetime(turns["t"].to_numpy(), unit="us", utc=True)
    for zone in pd.unique(zone_of_turn):
        mask = zone_of_turn == zone
        night[mask] = instants[mask].tz_convert(zone).hour < NIGHT_END_HOUR
    return night


def _ratios(table: pd.DataFrame) -> None:
    """Night share and mean session minutes from counts (NaN where the denominator is 0)."""
    table["night_share"] = table["night"] / table["turns"].where(table["turns"] > 0)
    table["mean_session_minutes"] = table["active_minutes"] / table["sessions"].where(
        table["sessions"] > 0
    )


def _cumulative(events: pd.DataFrame, sums: dict[str, str | None]) -> pd.DataFrame:
    """Per participant and in time order, the running count (for a None source) or running
    total of each measure up to and including each event."""
    ordered = events.sort_values(["t", "pos"], kind="stable")
    grouped = ordered.groupby("pos")
    running = {
        name: grouped.cumcount() + 1 if source is None else grouped[source].cumsum()
        for name, source in sums.items()
    }
    return pd.DataFrame({"pos": ordered["pos"], "t": ordered["t"], **running})


def _between(running: pd.DataFrame, pos: np.ndarray, since: np.ndarray, until: np.ndarray):
    """The measures of the events in `[since, until)` of each query's participant."""
    return _before(running, pos, until) - _before(running, pos, since)


def _before(running: pd.DataFrame, pos: np.ndarray, instant: np.ndarray) -> pd.DataFrame:
    """The running measures as they stood just before `instant`, for each query (0 if none)."""
    queries = pd.DataFrame({"pos": pos, "t": instant, "query": np.arange(len(pos))})
    found = pd.merge_asof(
        queries.sort_values("t"),
        running,
        on="t",
        by="pos",
        direction="backward",
        allow_exact_matches=False,
    )
    measures = [name for name in running.columns if name not in ("pos", "t")]
    return found.set_index("query").sort_index()[measures].fillna(0).astype("float64")
