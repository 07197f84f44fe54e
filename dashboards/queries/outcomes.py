"""Outcomes by arm: the mean of an outcome score per arm and wave, with its 95% confidence
interval, from the analysis dataset (`analysis.dataset.assemble`, the same rows the
preregistered models see).

Per arm and wave, over the participants whose score at that wave is known (submitted and
scored; missing answers are left out, not imputed): `n`, `mean`, `sd` (sample standard
deviation, n - 1), and the 95% interval `mean ± t(0.975, n - 1) · sd / √n` (Student's t, so
small groups get honest, wide intervals; none for n < 2). These are descriptive: they ignore
the repeated measures that the mixed models account for.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats
from sqlmodel import Session, col, select

from analysis.dataset import assemble
from study.models import Occasion, Participant, ProtocolVersion
from study.protocol.registry import load_version

from .common import NO_FILTERS, Filters, participants_frame

CONFIDENCE = 0.95
TRAJECTORY_COLUMNS = ["arm", "wave", "n", "mean", "sd", "ci_low", "ci_high"]


def outcome_columns(session: Session, study_id: int) -> list[str]:
    """The dataset's score columns (`<instrument>_<score>`) of every instrument the study's
    protocol versions schedule outside EMA, in protocol order."""
    names: dict[str, None] = {}
    versions = session.exec(
        select(ProtocolVersion)
        .where(ProtocolVersion.study_id == study_id)
        .order_by(col(ProtocolVersion.number))
    )
    for version in versions:
        protocol = load_version(version)
        for entry in protocol.model.schedule.values():
            if entry.kind == "ema":
                continue
            for instrument_id in entry.instruments:
                instrument = protocol.instrument(instrument_id)
                names.update((f"{instrument.id}_{score.id}", None) for score in instrument.scores)
    return list(names)


def study_waves(session: Session, study_id: int) -> list[int]:
    """The waves of the study's measurement occasions (EMA prompts are not waves), ascending."""
    return list(
        session.exec(
            select(Occasion.wave)
            .join(Participant, col(Participant.id) == Occasion.participant_id)
            .where(Participant.study_id == study_id, Occasion.kind != "ema")
            .distinct()
            .order_by(col(Occasion.wave))
        )
    )


def outcome_data(session: Session, study_id: int, filters: Filters = NO_FILTERS) -> pd.DataFrame:
    """The analysis dataset's rows of allocated participants matching the arm, stratum and
    wave filters."""
    data = assemble(session, study_id)
    people = filters.select_participants(participants_frame(session, study_id))
    keep = data["participant"].isin(people["participant"]) & data["arm"].notna()
    if filters.waves:
        keep &= data["wave"].isin(filters.waves)
    return data[keep].reset_index(drop=True)


def trajectories(data: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """Per arm and wave: n, mean, sd and the 95% CI of `outcome` (see the module docstring)."""
    if outcome not in data.columns:
        raise KeyError(f"the dataset has no outcome column {outcome!r}")
    known = data.dropna(subset=[outcome])
    if known.empty:
        return pd.DataFrame(columns=TRAJECTORY_COLUMNS)
    grouped = known.groupby(["arm", "wave"])[outcome]
    table = grouped.agg(n="count", mean="mean", sd="std").reset_index()
    n = table["n"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        half = stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1) * table["sd"] / np.sqrt(n)
    half = half.where(table["n"] >= 2)
    table["ci_low"] = table["mean"] - half
    table["ci_high"] = table["mean"] + half
    table["n"] = table["n"].astype("int64")
    return table.sort_values(["arm", "wave"])[TRAJECTORY_COLUMNS].reset_index(drop=True)
