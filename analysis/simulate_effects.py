"""The effects file of `flourish simulate`: the known truth a synthetic study is generated from.

    effects = load_effects("examples/effects/assistant-flourishing-rct.yaml", protocol)
    effects.outcomes["who5_percentage"].arms["reflective"].slope   # points per week vs control

It is YAML validated on load like every Flourish data file (`FILE:LINE: field: message`), and
checked against the protocol: arms, the control arm, outcome columns (`<instrument>_<score>` of
an instrument the schedule administers) and stratification levels must exist. docs/simulation.md
describes every key.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field

from instruments.datafile import DataFile, DataFileError, read_text, suggest
from instruments.schema import Instrument, Score, Section
from study.protocol import Protocol
from study.protocol.schema import EmaEntry

from .simulate_items import ItemBasis, item_basis

Probability = Annotated[float, Field(ge=0, lt=1)]
NonNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]


class ArmEffect(Section):
    """An arm's difference from the control arm: at baseline and in the slope per week."""

    intercept: float = 0.0
    slope: float = 0.0


class OutcomeSpec(Section):
    """y = intercept + slope * week (+ the arm's effects) + person's deviations + residual.

    `bounds` and `step` default to the score's range and resolution on the instrument's scale;
    give `bounds: null` (or `step: null`) to leave values unbounded (or unrounded).
    """

    intercept: float
    slope: float = 0.0
    arms: dict[str, ArmEffect] = Field(default_factory=dict)
    random_intercept_sd: NonNegative
    random_slope_sd: NonNegative = 0.0
    correlation: Annotated[float, Field(ge=-1, le=1)] = 0.0
    residual_sd: Positive
    bounds: tuple[float, float] | None = None
    step: Positive | None = None
    # Simulate the item responses and score them (analysis.simulate_items) instead of the score.
    items: bool = False


class Dropout(Section):
    """Monthly hazard of leaving the study per arm (constant in time), and of skipping one
    occasion. Of those who leave, `withdrawn_share` withdraw formally (their later occasions are
    cancelled); the rest are lost to follow-up (their later occasions are missed)."""

    monthly_hazard: dict[str, Probability] = Field(default_factory=dict)
    withdrawn_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    intermittent_missing: Probability = 0.0


class UsageSpec(Section):
    """Assistant use in the 7 days before each occasion, for an arm with an assistant."""

    sessions_per_week: NonNegative
    turns_per_session: Positive = 6.0
    minutes_per_session: Positive = 8.0
    night_share: Annotated[float, Field(ge=0, le=1)] = 0.1
    # Between-person coefficient of variation of the session rate (gamma-distributed).
    between_person_cv: NonNegative = 0.8


class EffectsModel(Section):
    control_arm: str
    primary: str | None = None
    outcomes: Annotated[dict[str, OutcomeSpec], Field(min_length=1)]
    dropout: Dropout = Field(default_factory=Dropout)
    strata: dict[str, dict[str, NonNegative]] = Field(default_factory=dict)
    usage: dict[str, UsageSpec] = Field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """An outcome column resolved against the protocol, with its bounds and rounding step."""

    column: str
    instrument: str
    score: str
    spec: OutcomeSpec
    bounds: tuple[float, float] | None
    step: float | None
    basis: ItemBasis | None = None  # how the score is made from items, with `items: true`


@dataclass(frozen=True)
class Effects:
    """A validated effects file: what `simulate_study` generates from, and `truth.json` records."""

    control_arm: str
    primary: str
    outcomes: dict[str, Outcome]
    dropout: Dropout
    strata: dict[str, dict[str, float]]
    usage: dict[str, UsageSpec]
    source: str
    text: str

    def arm_effect(self, outcome: str, arm: str) -> ArmEffect:
        """The effect of `arm` on `outcome` (zero for the control arm and arms not listed)."""
        return self.outcomes[outcome].spec.arms.get(arm, ArmEffect())

    def monthly_hazard(self, arm: str) -> float:
        return self.dropout.monthly_hazard.get(arm, 0.0)


def load_effects(path: str | Path, protocol: Protocol) -> Effects:
    """The effects file at `path`, validated and checked against `protocol`.

    Raises `DataFileError` listing every problem as `FILE:LINE: field: message`.
    """
    text, problems = read_text(path)
    if text is None:
        raise DataFileError(problems)
    return parse_effects(text, str(path), protocol)


def parse_effects(text: str, source_name: str, protocol: Protocol) -> Effects:
    """Like `load_effects`, from text (`source_name` is used in messages)."""
    document = DataFile(text, source_name)
    data = document.mapping("the effects file", "a mapping with 'control_arm' and 'outcomes'")
    valid = document.sections(data, EffectsModel, noun="key") if data is not None else {}
    if document.problems:
        raise DataFileError(document.problems)
    model = EffectsModel(**valid)
    outcomes = _check(document, model, protocol, data)
    if document.problems:
        raise DataFileError(document.problems)
    return Effects(
        control_arm=model.control_arm,
        primary=model.primary or next(iter(model.outcomes)),
        outcomes=outcomes,
        dropout=model.dropout,
        strata=model.strata,
        usage=model.usage,
        source=source_name,
        text=text,
    )


def _check(document: DataFile, model: EffectsModel, protocol: Protocol, data: dict) -> dict:
    arms = [arm.key for arm in protocol.model.arms]

    def arm_known(path: tuple, key: str) -> None:
        if key not in arms:
            document.problem(path, f"no arm '{key}' in the protocol{_hint(key, arms)}")

    arm_known(("control_arm",), model.control_arm)
    for arm in model.dropout.monthly_hazard:
        arm_known(("dropout", "monthly_hazard", arm), arm)
    for arm in model.usage:
        arm_known(("usage", arm), arm)
        if arm in arms and protocol.model.arm(arm).assistant is None:
            document.problem(("usage", arm), f"arm '{arm}' has no assistant to use")
    if model.primary is not None and model.primary not in model.outcomes:
        document.problem(("primary",), f"'{model.primary}' is not one of the outcomes below")
    factors = {factor.name for factor in protocol.model.allocation.strata}
    for name in model.strata:
        if name not in factors:
            document.problem(("strata", name), f"no stratification factor '{name}'")
    administered = _administered(protocol)
    outcomes = {}
    for column, spec in model.outcomes.items():
        for arm in spec.arms:
            arm_known(("outcomes", column, "arms", arm), arm)
        found = _split_column(column, administered)
        if found is None:
            document.problem(
                ("outcomes", column),
                f"'{column}' is not <instrument>_<score> of an instrument the schedule "
                f"administers ({', '.join(sorted(administered))})",
            )
            continue
        instrument_id, score_id = found
        instrument = protocol.instrument(instrument_id)
        if score_id not in {score.id for score in instrument.scores}:
            scores = [score.id for score in instrument.scores]
            document.problem(
                ("outcomes", column),
                f"{instrument_id} has no score '{score_id}' (scores: {', '.join(scores)})",
            )
            continue
        given = data["outcomes"][column]
        lowest, highest, step = score_range(instrument, score_id)
        bounds = spec.bounds if "bounds" in given else (lowest, highest)
        if bounds is not None and bounds[0] >= bounds[1]:
            document.problem(("outcomes", column, "bounds"), "the lower bound must be below")
        step = spec.step if "step" in given else step
        basis = item_basis(instrument, score_id) if spec.items else None
        if spec.items and basis is None:
            document.problem(
                ("outcomes", column, "items"),
                f"{instrument_id}'s {score_id} is not a sum or mean of items (or a transform of "
                "one), so its items cannot be simulated",
            )
        with_items = [o for o in outcomes.values() if o.instrument == instrument_id and o.basis]
        if basis is not None and with_items:
            document.problem(
                ("outcomes", column, "items"),
                f"items of {instrument_id} are already simulated for {with_items[0].column}",
            )
        outcomes[column] = Outcome(column, instrument_id, score_id, spec, bounds, step, basis)
    return outcomes


def _hint(word: str, choices: list[str]) -> str:
    return suggest(word, choices) or f" (arms: {', '.join(choices)})"


def _administered(protocol: Protocol) -> set[str]:
    """Instruments given at a wave, baseline or follow-up (EMA prompts are not in the dataset)."""
    return {
        instrument
        for entry in protocol.model.schedule.values()
        if not isinstance(entry, EmaEntry)
        for instrument in entry.instruments
    }


def _split_column(column: str, instruments: set[str]) -> tuple[str, str] | None:
    # Instrument ids may contain underscores (flourishing_scale_total): try the longest first.
    for instrument in sorted(instruments, key=len, reverse=True):
        if column.startswith(instrument + "_") and len(column) > len(instrument) + 1:
            return instrument, column[len(instrument) + 1 :]
    return None


def score_range(instrument: Instrument, score_id: str) -> tuple[float, float, float | None]:
    """The lowest and highest possible value of a score, and the step between its values.

    Reverse keying maps an item's scale onto itself, so it changes neither. The step is None
    where it is not a single number (a mean of scores of different lengths, say).
    """
    score = _score(instrument, score_id)
    if score.transform is not None:
        low, high, step = score_range(instrument, score.transform.of)
        multiply, add = score.transform.multiply, score.transform.add
        ends = sorted((low * multiply + add, high * multiply + add))
        return ends[0], ends[1], None if step is None else abs(step * multiply)
    if score.items:
        scales = [instrument.response_scales[instrument.item(item).scale] for item in score.items]
        parts = [(scale.min, scale.max, scale.step) for scale in scales]
    else:
        parts = [score_range(instrument, part) for part in score.scores]
    low, high = sum(p[0] for p in parts), sum(p[1] for p in parts)
    steps = {p[2] for p in parts}
    step = steps.pop() if len(steps) == 1 else None
    if score.method == "mean":
        count = len(parts)
        return low / count, high / count, None if step is None else step / count
    return low, high, step


def _score(instrument: Instrument, score_id: str) -> Score:
    for score in instrument.scores:
        if score.id == score_id:
            return score
    raise KeyError(score_id)
