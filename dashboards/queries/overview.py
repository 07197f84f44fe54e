"""The study overview: enrolment against target over time, and the CONSORT flow by arm.

CONSORT stages, as counted here:

| stage | who |
|---|---|
| screened | eligible people (a participant row each) + people screened out (only an audit count) |
| eligible | participant rows |
| consented | participants who signed a consent (any version, withdrawn later or not) |
| randomised | participants with an allocation, per arm |
| active | allocated and `enrolled` (neither withdrawn nor completed) |
| withdrawn | allocated and `withdrawn` |
| completed final wave | allocated, the study's last wave (highest non-EMA `wave`) completed |

Arm and stratum filters narrow every stage from `consented` on (strata are known from
allocation); `screened` and `eligible` are study totals and say so by having no arm columns.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import func
from sqlmodel import Session, col, select

from study.enrollment import ineligible_count
from study.models import Consent, Occasion, Participant, Study
from study.protocol import ProtocolError
from study.protocol.registry import current_version, load_version

from .common import NO_FILTERS, Filters, as_utc, participants_frame

ALL = "all"
STAGES = (
    "screened",
    "eligible",
    "consented",
    "randomised",
    "active",
    "withdrawn",
    "completed final wave",
)


def enrollment_target(session: Session, study_id: int) -> int | None:
    """`study.target_enrollment` of the protocol in force (None without a readable one)."""
    version = current_version(session, study_id)
    if version is None:
        return None
    try:
        return load_version(version).model.study.target_enrollment
    except ProtocolError:
        return None


def enrollment_over_time(
    session: Session, study_id: int, filters: Filters = NO_FILTERS
) -> pd.DataFrame:
    """Per calendar day (UTC) with an enrolment: `date`, `enrolled` that day, `cumulative`
    and `target` (the protocol's target enrolment, the same on every row)."""
    people = filters.select_participants(participants_frame(session, study_id))
    instants = as_utc(people["enrolled_at"])
    instants = instants[instants.notna() & filters.in_dates(instants)]
    days = instants.dt.strftime("%Y-%m-%d")
    daily = days.value_counts().sort_index()
    frame = pd.DataFrame({"date": daily.index, "enrolled": daily.to_numpy(dtype=int)})
    frame["cumulative"] = frame["enrolled"].cumsum()
    frame["target"] = enrollment_target(session, study_id)
    return frame


def consort_flow(session: Session, study_id: int, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """One row per CONSORT stage: `stage`, `all`, then a column per arm key (empty for the
    stages before allocation)."""
    everyone = participants_frame(session, study_id)
    people = filters.select_participants(everyone)
    consented = set(
        session.exec(
            select(Consent.participant_id)
            .join(Participant, col(Participant.id) == Consent.participant_id)
            .where(Participant.study_id == study_id)
            .distinct()
        )
    )
    finished = _completed_final_wave(session, study_id)
    arms = sorted(key for key in people["arm"].dropna().unique())
    allocated = people[people["arm"].notna()]
    stage_members = {
        "consented": people[people["participant_id"].isin(consented)],
        "randomised": allocated,
        "active": allocated[allocated["status"] == "enrolled"],
        "withdrawn": allocated[allocated["status"] == "withdrawn"],
        "completed final wave": allocated[allocated["participant_id"].isin(finished)],
    }
    study = session.get(Study, study_id)
    screened_out = ineligible_count(session, study) if study is not None else 0
    rows = [
        {"stage": "screened", ALL: len(everyone) + screened_out},
        {"stage": "eligible", ALL: len(everyone)},
    ]
    for stage, members in stage_members.items():
        row = {"stage": stage, ALL: len(members)}
        counts = members["arm"].value_counts()
        for arm in arms:
            row[arm] = int(counts.get(arm, 0)) if stage != "consented" else None
        rows.append(row)
    frame = pd.DataFrame(rows, columns=["stage", ALL, *arms])
    for arm in arms:
        frame[arm] = frame[arm].astype("Int64")
    return frame


def _completed_final_wave(session: Session, study_id: int) -> set[int]:
    """Participants whose occasion(s) of the study's highest non-EMA wave are completed."""
    in_study = (Participant.study_id == study_id) & (Occasion.kind != "ema")
    last_wave = session.exec(
        select(func.max(Occasion.wave))
        .join(Participant, col(Participant.id) == Occasion.participant_id)
        .where(in_study)
    ).one()
    if last_wave is None:
        return set()
    return set(
        session.exec(
            select(Occasion.participant_id)
            .join(Participant, col(Participant.id) == Occasion.participant_id)
            .where(in_study, Occasion.wave == last_wave, Occasion.status == "completed")
            .distinct()
        )
    )
