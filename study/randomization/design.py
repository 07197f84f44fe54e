"""The allocation design read from a protocol: arms and ratio, scheme, factors and their levels.

A participant's *levels* map each stratification factor to one of its levels, e.g.
`{"wellbeing": "low", "age_band": "under_35"}`; their *stratum key* is the canonical text form,
factors sorted by name: `age_band=under_35|wellbeing=low` (empty without factors). Levels come
from a screening answer (yes/no and choice answers are the levels; numbers are cut) or from a
baseline instrument score cut at the protocol's cut points.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from ..protocol import Protocol
from ..protocol.schema import PreferenceDesign, StratumFactor

STRATUM_KEY_LENGTH = 200  # Allocation.stratum's column width
DEFAULT_PROBABILITY = 0.8  # minimisation without `probability`: Taves' and Pocock's usual choice


class AllocationError(ValueError):
    """An allocation cannot be made as asked; the message says what is wrong and what to do."""


@dataclass(frozen=True)
class Factor:
    """A stratification factor and the levels it can take, in order."""

    name: str
    levels: tuple[str, ...]
    spec: StratumFactor


@dataclass(frozen=True)
class AllocationDesign:
    """Everything the schemes need, taken from `protocol.model.allocation` and the arms."""

    slug: str
    scheme: str
    ratio: Mapping[str, int]  # in the protocol's arm order
    block_sizes: tuple[int, ...]
    factors: tuple[Factor, ...]
    probability: float
    preference: PreferenceDesign | None
    preference_arms: tuple[str, ...]

    @classmethod
    def from_protocol(cls, protocol: Protocol) -> AllocationDesign:
        model = protocol.model
        spec = model.allocation
        order = [arm.key for arm in model.arms]
        ratio = {key: spec.ratio[key] for key in order if key in spec.ratio}
        return cls(
            slug=model.study.slug,
            scheme=spec.scheme,
            ratio=ratio,
            block_sizes=tuple(spec.block_sizes),
            factors=tuple(Factor(f.name, factor_levels(protocol, f), f) for f in spec.strata),
            probability=spec.probability if spec.probability is not None else DEFAULT_PROBABILITY,
            preference=spec.preference_arm,
            preference_arms=tuple(arm.key for arm in model.arms if arm.preference),
        )

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(self.ratio)

    @property
    def ratio_sum(self) -> int:
        return sum(self.ratio.values())

    def factor(self, name: str) -> Factor:
        for factor in self.factors:
            if factor.name == name:
                return factor
        raise KeyError(name)

    def checked_levels(self, strata: Mapping[str, str]) -> dict[str, str]:
        """`strata` checked against the factors, in protocol order; AllocationError if wrong."""
        names = [factor.name for factor in self.factors]
        unknown = sorted(set(strata) - set(names))
        if unknown:
            raise AllocationError(
                f"unknown stratification factor(s) {', '.join(unknown)} "
                f"(the protocol's factors: {', '.join(names) or 'none'})"
            )
        levels: dict[str, str] = {}
        for factor in self.factors:
            if factor.name not in strata:
                raise AllocationError(f"no level given for stratification factor '{factor.name}'")
            level = strata[factor.name]
            if level not in factor.levels:
                raise AllocationError(
                    f"'{level}' is not a level of stratification factor '{factor.name}' "
                    f"(levels: {', '.join(factor.levels)})"
                )
            levels[factor.name] = level
        return levels


# --- levels -------------------------------------------------------------------------------------


def factor_levels(protocol: Protocol, factor: StratumFactor) -> tuple[str, ...]:
    """The levels of `factor`: its labels, generated cut-point ranges, or the answer options."""
    if factor.cut_points:
        return tuple(factor.labels) or _range_names(factor.cut_points)
    question = _question(protocol, factor)
    if question.type == "yes_no":
        return ("yes", "no")
    return tuple(option.value for option in question.options)


def _range_names(cut_points) -> tuple[str, ...]:
    """`[13]` -> `<13`, `>=13`; `[10, 20]` -> `<10`, `10..<20`, `>=20`."""
    points = [_number_text(point) for point in cut_points]
    middle = [f"{low}..<{high}" for low, high in itertools.pairwise(points)]
    return (f"<{points[0]}", *middle, f">={points[-1]}")


def _number_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _question(protocol: Protocol, factor: StratumFactor):
    for question in protocol.model.eligibility.questions:
        if question.id == factor.question:
            return question
    raise AllocationError(f"factor '{factor.name}' refers to no eligibility question")


def _cut(factor: StratumFactor, levels: tuple[str, ...], value: float) -> str:
    return levels[bisect.bisect_right(list(factor.cut_points), value)]


def stratum_levels(
    protocol: Protocol,
    *,
    answers: Mapping[str, object],
    scores: Mapping[tuple[str, str], float],
) -> dict[str, str]:
    """Each stratification factor's level for one participant, in protocol order.

    `answers` are the screening answers by question id; `scores` the baseline instrument scores
    by `(instrument_id, score_id)`, e.g. `{("who5", "raw"): 11}`. A value at a cut point belongs
    to the upper level (`[13]`: 13 is `>=13`). A missing or unusable value raises
    `AllocationError` naming the factor.
    """
    levels: dict[str, str] = {}
    for spec in protocol.model.allocation.strata:
        names = factor_levels(protocol, spec)
        if spec.instrument is not None:
            value = scores.get((spec.instrument, spec.score or ""))
            source = f"the baseline score {spec.instrument}.{spec.score}"
            levels[spec.name] = _cut(spec, names, _as_number(spec, value, source))
            continue
        question = _question(protocol, spec)
        answer = answers.get(question.id)
        source = f"the answer to '{question.id}'"
        if question.type == "number":
            levels[spec.name] = _cut(spec, names, _as_number(spec, answer, source))
        elif question.type == "yes_no":
            levels[spec.name] = _as_yes_no(spec, answer, source)
        else:
            if answer is None or answer == "":
                raise AllocationError(_missing(spec, source))
            if str(answer) not in names:
                raise AllocationError(
                    f"stratification factor '{spec.name}': {answer!r} is not an option of "
                    f"'{question.id}' ({', '.join(names)})"
                )
            levels[spec.name] = str(answer)
    return levels


def _missing(spec: StratumFactor, source: str) -> str:
    return f"stratification factor '{spec.name}' needs {source}, which is missing"


def _as_number(spec: StratumFactor, value: object, source: str) -> float:
    if value is None or value == "":
        raise AllocationError(_missing(spec, source))
    if isinstance(value, bool):
        raise AllocationError(f"stratification factor '{spec.name}': {source} is not a number")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise AllocationError(
            f"stratification factor '{spec.name}': {source} ({value!r}) is not a number"
        ) from None
    if math.isnan(number):
        raise AllocationError(_missing(spec, source))
    return number


_YES = {"yes", "true", "y", "1"}
_NO = {"no", "false", "n", "0"}


def _as_yes_no(spec: StratumFactor, value: object, source: str) -> str:
    if value is None or value == "":
        raise AllocationError(_missing(spec, source))
    if isinstance(value, bool):
        return "yes" if value else "no"
    text = str(value).strip().lower()
    if text in _YES:
        return "yes"
    if text in _NO:
        return "no"
    raise AllocationError(
        f"stratification factor '{spec.name}': {source} ({value!r}) is not yes or no"
    )


# --- stratum keys -------------------------------------------------------------------------------

_ESCAPES = {"%": "%25", "|": "%7C", "=": "%3D"}


def _escape(text: str) -> str:
    return "".join(_ESCAPES.get(char, char) for char in text)


def _unescape(text: str) -> str:
    for char, code in reversed(_ESCAPES.items()):
        text = text.replace(code, char)
    return text


def stratum_key(levels: Mapping[str, str]) -> str:
    """`age_band=under_35|wellbeing=low`: factors sorted by name, `%|=` escaped in levels."""
    key = "|".join(f"{name}={_escape(levels[name])}" for name in sorted(levels))
    if len(key) > STRATUM_KEY_LENGTH:
        raise AllocationError(
            f"the stratum '{key[:60]}...' is longer than {STRATUM_KEY_LENGTH} characters; "
            "use shorter factor names or level labels"
        )
    return key


def parse_stratum_key(key: str) -> dict[str, str]:
    """The levels a stratum key was made from (inverse of `stratum_key`)."""
    if not key:
        return {}
    levels = {}
    for part in key.split("|"):
        name, _, level = part.partition("=")
        levels[name] = _unescape(level)
    return levels
