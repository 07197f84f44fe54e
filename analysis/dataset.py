"""The analysis dataset: one row per participant x measurement occasion, in long format.

    data = assemble(session, study.id)
    data[["participant", "arm", "occasion", "week", "who5_percentage"]]

The columns are the analysis data contract (docs/exports.md lists them): participant code,
arm, one `stratum_<factor>` per stratification factor, occasion (schedule key), wave, `days`
and `week` from enrollment to the occasion's due time, consent version, occasion status and
`completed`, every score of every instrument the schedule administers as
`<instrument>_<score>`, and usage of the assistant in the 7 days before the occasion
(`study.assistant.usage.usage_before`).

Participants appear by code only: contact details are never read. Scores come from the
instrument scoring engine (`instruments.scoring.score_frame`) with the definitions of the
protocol version the occasion was planned under; only submitted (complete) responses are
scored, so a score is NaN when the instrument was not administered or not completed.
The whole study is read in eight queries (two of them the usage measures') and scored a
table per instrument and version.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlmodel import Session

from instruments.scoring import score_frame
from study.assistant.usage import usage_before
from study.models import (
    Allocation,
    Arm,
    Consent,
    ItemResponse,
    Occasion,
    Participant,
    ProtocolVersion,
    Response,
    Study,
)
from study.protocol import Protocol
from study.protocol.registry import load_version
from study.randomization.design import parse_stratum_key

BASE_COLUMNS = (
    "participant",
    "arm",
    # stratum_<factor> columns go here
    "occasion",
    "wave",
    "days",
    "week",
    "consent_version",
    "status",
    "completed",
    # beyond the contract: the occasion's kind (baseline, wave, followup) and whether the
    # participant has withdrawn
    "kind",
    "withdrawn",
)
USAGE_COLUMNS = (
    "usage_sessions",
    "usage_turns",
    "usage_active_minutes",
    "usage_night_share",
    "usage_mean_session_minutes",
)
SECONDS_PER_DAY = 86400.0


class DatasetError(LookupError):
    """The dataset cannot be assembled (no such study, a stored answer that cannot be scored)."""


def assemble(
    session: Session,
    study_id: int,
    *,
    include_withdrawn: bool = True,
    as_of: datetime | None = None,
) -> pd.DataFrame:
    """The long-format dataset of study `study_id` (see the module docstring for its columns).

    `include_withdrawn=False` leaves out participants who withdrew (all their rows); `as_of`
    leaves out occasions due after that instant (an interim look). Rows are ordered by
    participant code and due time.
    """
    study = session.get(Study, study_id)
    if study is None:
        raise DatasetError(f"there is no study with id {study_id}")
    protocols = _protocols(session, study_id)
    factors = _strata_factors(protocols.values())
    occasions = _occasions(session, study_id, as_of)
    if not include_withdrawn:
        occasions = occasions[~occasions["withdrawn"]]
    frame = occasions.assign(
        days=(occasions["due_at"] - occasions["enrolled_at"]).dt.total_seconds() / SECONDS_PER_DAY
    )
    frame["week"] = frame["days"] / 7
    strata = _strata(frame, factors)
    frame = pd.concat([frame, strata], axis=1)
    responses = _responses(session, study_id)
    frame["consent_version"] = _consent_versions(session, study_id, frame, responses)
    frame["completed"] = frame["status"] == "completed"
    scores = _scores(responses, protocols, frame)
    frame = frame.join(scores, on="occasion_id")
    # Usage in the 7 days before each occasion's due time, from the interaction log.
    frame = usage_before(session, study_id, frame, window_days=7.0)
    columns = [
        "participant",
        "arm",
        *strata.columns,
        *BASE_COLUMNS[2:],
        *scores.columns,
        *USAGE_COLUMNS,
    ]
    frame = frame.sort_values(["participant", "due_at", "occasion_id"], kind="stable")
    return frame[columns].reset_index(drop=True)


def _protocols(session: Session, study_id: int) -> dict[int, Protocol]:
    versions = session.exec(
        select(ProtocolVersion).where(ProtocolVersion.study_id == study_id)
    ).scalars()
    return {version.id: load_version(version) for version in versions}


def _strata_factors(protocols: Iterable[Protocol]) -> list[str]:
    names: dict[str, None] = {}
    for protocol in protocols:
        names.update((factor.name, None) for factor in protocol.model.allocation.strata)
    return list(names)


def _occasions(session: Session, study_id: int, as_of: datetime | None) -> pd.DataFrame:
    """Every non-EMA occasion with its participant's code, enrollment, status, strata and arm."""
    query = (
        select(
            Occasion.id.label("occasion_id"),
            Occasion.participant_id,
            Occasion.protocol_version_id,
            Occasion.schedule_key.label("occasion"),
            Occasion.wave,
            Occasion.kind,
            Occasion.due_at,
            Occasion.status,
        )
        .join(Participant, Participant.id == Occasion.participant_id)
        .where(Participant.study_id == study_id, Occasion.kind != "ema")
    )
    if as_of is not None:
        query = query.where(Occasion.due_at <= as_of)
    occasions = pd.DataFrame(
        _tuples(session.execute(query)), columns=list(query.selected_columns.keys())
    )
    # Participant-level fields (JSON strata among them) are read once per participant.
    people = (
        select(
            Participant.id.label("participant_id"),
            Participant.code.label("participant"),
            Participant.enrolled_at,
            Participant.status.label("participant_status"),
            Participant.strata.label("participant_strata"),
            Allocation.stratum.label("allocation_stratum"),
            Arm.key.label("arm"),
        )
        .join(Allocation, Allocation.participant_id == Participant.id, isouter=True)
        .join(Arm, Arm.id == Allocation.arm_id, isouter=True)
        .where(Participant.study_id == study_id)
    )
    participants = pd.DataFrame(
        _tuples(session.execute(people)), columns=list(people.selected_columns.keys())
    )
    frame = occasions.merge(participants, on="participant_id", how="left")
    for column in ("due_at", "enrolled_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["withdrawn"] = frame["participant_status"] == "withdrawn"
    frame["wave"] = frame["wave"].astype("int64")
    return frame


def _tuples(result) -> list[tuple]:
    # Plain tuples: pandas probes each SQLAlchemy Row for attributes it does not have.
    return [tuple(row) for row in result]


def _strata(frame: pd.DataFrame, factors: list[str]) -> pd.DataFrame:
    """A `stratum_<factor>` column per factor: the allocation's stratum, else the participant's."""
    people = frame.drop_duplicates("participant_id").set_index("participant_id")
    levels = {
        pid: parse_stratum_key(key) if key else dict(fallback or {})
        for pid, key, fallback in zip(
            people.index, people["allocation_stratum"], people["participant_strata"], strict=True
        )
    }
    by_participant = pd.DataFrame(
        {f"stratum_{name}": [levels[pid].get(name) for pid in people.index] for name in factors},
        index=people.index,
        dtype=object,
    )
    return by_participant.reindex(frame["participant_id"]).set_axis(frame.index)


def _responses(session: Session, study_id: int) -> pd.DataFrame:
    """Every item answer of every response to a non-EMA occasion, with the response's fields."""
    query = (
        select(
            Response.occasion_id,
            Response.instrument_id,
            Response.status.label("response_status"),
            Response.consent_version,
            ItemResponse.item_id,
            ItemResponse.value,
        )
        .join(Occasion, Occasion.id == Response.occasion_id)
        .join(Participant, Participant.id == Response.participant_id)
        .join(ItemResponse, ItemResponse.response_id == Response.id, isouter=True)
        .where(Participant.study_id == study_id, Occasion.kind != "ema")
    )
    # Item answers are the study's many rows, and none of these columns needs SQLAlchemy's
    # type processing: they are read from the driver's cursor as they come.
    result = session.connection().execute(query)
    try:
        rows = result.cursor.fetchall()
    finally:
        result.close()
    return pd.DataFrame(rows, columns=list(query.selected_columns.keys()))


def _consent_versions(
    session: Session, study_id: int, frame: pd.DataFrame, responses: pd.DataFrame
) -> pd.Series:
    """The consent version each occasion was answered under (recorded on its responses), else
    the version in force at its due time (the last one signed by then, else the first)."""
    recorded = (
        responses[responses["consent_version"].fillna("") != ""]
        .groupby("occasion_id")["consent_version"]
        .first()
    )
    consents = pd.DataFrame(
        session.execute(
            select(Consent.participant_id, Consent.document_version, Consent.signed_at)
            .join(Participant, Participant.id == Consent.participant_id)
            .where(Participant.study_id == study_id)
        ).all(),
        columns=["participant_id", "document_version", "signed_at"],
    )
    in_force = pd.Series(np.nan, index=frame.index, dtype=object)
    if not consents.empty and not frame.empty:
        consents["signed_at"] = pd.to_datetime(consents["signed_at"], utc=True)
        consents = consents.sort_values("signed_at")
        due = frame[["participant_id", "due_at"]].reset_index().sort_values("due_at")
        matched = pd.merge_asof(
            due, consents, left_on="due_at", right_on="signed_at", by="participant_id"
        ).set_index("index")["document_version"]
        first = consents.groupby("participant_id")["document_version"].first()
        in_force = matched.reindex(frame.index).fillna(frame["participant_id"].map(first))
    versions = frame["occasion_id"].map(recorded)
    return versions.where(versions.notna(), in_force).astype(object)


def _scores(
    responses: pd.DataFrame, protocols: dict[int, Protocol], frame: pd.DataFrame
) -> pd.DataFrame:
    """A column per score of every instrument the non-EMA schedule administers, by occasion id."""
    columns: dict[str, None] = {}
    for protocol in protocols.values():
        for entry in protocol.model.schedule.values():
            if entry.kind == "ema":
                continue
            for instrument_id in entry.instruments:
                instrument = protocol.instrument(instrument_id)
                columns.update((f"{instrument.id}_{s.id}", None) for s in instrument.scores)
    result = pd.DataFrame(index=pd.Index(frame["occasion_id"].unique(), name="occasion_id"))
    for name in columns:
        result[name] = np.nan
    complete = responses[responses["response_status"] == "complete"]
    if complete.empty:
        return result
    version_of = frame.set_index("occasion_id")["protocol_version_id"]
    complete = complete.assign(version=complete["occasion_id"].map(version_of)).dropna(
        subset=["version"]
    )
    for (version, instrument_id), answers in complete.groupby(["version", "instrument_id"]):
        instrument = protocols[int(version)].instrument(instrument_id)
        wide = answers.pivot_table(
            index="occasion_id", columns="item_id", values="value", aggfunc="first", dropna=False
        ).reindex(columns=list(instrument.item_ids))
        wide.columns.name = None
        try:
            scored = score_frame(instrument, wide)
        except ValueError as exc:
            raise DatasetError(
                f"stored answers to {instrument_id} cannot be scored: {exc}"
            ) from exc
        for score in instrument.scores:
            name = f"{instrument.id}_{score.id}"
            result.loc[scored.index, name] = scored[score.id].to_numpy(dtype=float)
    return result
