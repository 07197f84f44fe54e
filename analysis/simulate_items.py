"""Item responses for simulated outcomes with `items: true`, scored by the instrument's key.

With item responses in the dataset, reliability per wave (`instruments.psychometrics`) can be
computed on synthetic data as on real data. The outcome's model is the same; only where its
residual lives changes: each of the score's k items gets its share of the score's trajectory
(the systematic part, on the item's keyed scale) plus its own normal noise, with the noise's SD
chosen so that the noise of the items adds up to the outcome's `residual_sd` on the score's
scale. Each item is rounded to its response scale's step and clipped to its range, reverse-keyed
items are stored as answered (reversed back), and the score is computed from the items by
`instruments.scoring.score_frame`, exactly as for real answers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from instruments.schema import Instrument
from instruments.scoring import score_frame


@dataclass(frozen=True)
class ItemBasis:
    """The score built from items that an outcome is (or is a linear transform of)."""

    score: str
    items: tuple[str, ...]
    method: str  # "sum" or "mean"
    multiply: float = 1.0
    add: float = 0.0


def item_basis(instrument: Instrument, score_id: str) -> ItemBasis | None:
    """How `score_id` is made from items: directly, or by a transform of such a score; None
    when it is not (a score of scores, or a transform of one)."""
    score = next(s for s in instrument.scores if s.id == score_id)
    if score.transform is not None:
        base = item_basis(instrument, score.transform.of)
        if base is None or base.multiply != 1 or base.add != 0:
            return None
        multiply, add = score.transform.multiply, score.transform.add
        return ItemBasis(base.score, base.items, base.method, multiply, add)
    if score.items and score.method in ("sum", "mean"):
        return ItemBasis(score.id, tuple(score.items), score.method)
    return None


def item_noise(rng, basis: ItemBasis, residual_sd: float, shape: tuple[int, int]) -> np.ndarray:
    """Independent item noise, (participants, occasions, items), adding up to `residual_sd`."""
    k = len(basis.items)
    per_item = residual_sd / abs(basis.multiply)
    per_item = per_item / np.sqrt(k) if basis.method == "sum" else per_item * np.sqrt(k)
    return rng.normal(0.0, per_item, size=(*shape, k))


def responses(
    instrument: Instrument, basis: ItemBasis, systematic: np.ndarray, noise: np.ndarray
) -> dict[str, np.ndarray]:
    """Each item's answers, (participants, occasions), for the score trajectory `systematic`."""
    base = (systematic - basis.add) / basis.multiply
    share = base / len(basis.items) if basis.method == "sum" else base
    answers = {}
    for index, item_id in enumerate(basis.items):
        item = instrument.item(item_id)
        scale = instrument.response_scales[item.scale]
        keyed = share + noise[..., index]
        keyed = scale.min + np.round((keyed - scale.min) / scale.step) * scale.step
        keyed = np.clip(keyed, scale.min, scale.max)
        answers[item_id] = scale.min + scale.max - keyed if item.reverse else keyed
    return answers


def scored(instrument: Instrument, score_id: str, answers: dict[str, np.ndarray]) -> np.ndarray:
    """The score `score_id` of every participant x occasion, by the instrument's own key."""
    shape = next(iter(answers.values())).shape
    frame = pd.DataFrame(
        {item.id: np.nan for item in instrument.items}, index=range(shape[0] * shape[1])
    )
    for item_id, values in answers.items():
        frame[item_id] = values.ravel()
    return score_frame(instrument, frame)[score_id].to_numpy(dtype=float).reshape(shape)
