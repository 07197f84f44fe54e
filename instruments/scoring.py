"""Scoring: answers in, subscale, total and derived scores out.

One engine serves both a single response (`score_response`, e.g. when a participant submits a
survey) and a table of respondents (`score_frame`, e.g. a CSV export): both validate every answer
against the item's response scale and then run the same array arithmetic, so a row of the table
gets exactly the score the single response would.

The rules, all taken from the instrument file (`instruments.schema.Score`):

* Reverse-keyed items are reversed on their own scale (`min + max - value`) before anything else.
* A score over `items` is their `mean` or `sum`. It is complete-case by default: one missing item
  makes the score missing. `min_answered` allows fewer answered items; a `mean` is then the mean
  of the answered items, and a `sum` is prorated (sum of answered x items / answered) only when
  the file says `prorate: true`. Every score computed from fewer than all its items is flagged.
* A score over other `scores` is their mean or sum by the same rules, counting scores instead
  of items: missing if any of them is missing unless `min_answered` allows fewer. A score built
  on a flagged score carries that flag on.
* A `transform` is `multiply` then `add`; missing in, missing out.

Answers that are not points of the item's scale are rejected with a message naming the item, the
answer and what is allowed; they are never rounded or clipped into range.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd

from .schema import Instrument, ResponseScale, Score

FLAG_SUFFIX = "_flag"


@dataclass(frozen=True)
class AnswerProblem:
    """One answer that cannot be scored; `row` is the frame's index label (None: one response)."""

    item: str
    message: str
    row: Hashable | None = None

    def __str__(self) -> str:
        where = f"row {self.row}: " if self.row is not None else ""
        return f"{where}{self.item}: {self.message}"


class AnswerError(ValueError):
    """Answers that cannot be scored; `problems` lists every one of them, not just the first."""

    def __init__(self, problems: Iterable[AnswerProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class ScoringDefinitionError(ValueError):
    """The instrument's scores cannot be computed as defined (unknown reference, cycle, ...).

    The loader rejects such files; this guards instruments built in code.
    """


@dataclass
class ScoreResult:
    """The scores of one response.

    `scores` maps every score id to its value (None when missing); `flags` holds a note for each
    score not computed from all its items (e.g. "prorated: 7 of 8 items"); `answered` counts the
    answered items underlying each score, out of `item_counts`.
    """

    scores: dict[str, float | None]
    flags: dict[str, str] = field(default_factory=dict)
    answered: dict[str, int] = field(default_factory=dict)
    item_counts: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Validation


def allowed_answers(scale: ResponseScale) -> str:
    """What a respondent may answer on `scale`, phrased for an error message."""
    low, high = _number(scale.min), _number(scale.max)
    if scale.step == 1 and float(scale.min).is_integer():
        return f"choose a whole number from {low} to {high}"
    return f"choose a value from {low} to {high} in steps of {_number(scale.step)}"


def validate_answers(instrument: Instrument, answers: Mapping[str, object]) -> list[AnswerProblem]:
    """Every problem with one respondent's `answers` ({item id: value}); empty when all is well.

    None, NaN and blank text are missing answers, which are allowed (scoring decides what they
    mean). Numbers may come as text ("3"). Anything else that is not a point of the item's scale,
    and any key that is not an item of the instrument, is a problem.
    """
    items = {item.id: item for item in instrument.items}
    problems = []
    for item_id, raw in answers.items():
        item = items.get(item_id)
        if item is None:
            problems.append(AnswerProblem(str(item_id), _unknown_item(instrument)))
            continue
        value, problem = _parse_answer(raw)
        if problem is None and value is not None:
            problem = _check_on_scale(instrument.scale_of(item), value)
        if problem is not None:
            problems.append(AnswerProblem(item_id, problem))
    return problems


def _parse_answer(raw: object) -> tuple[float | None, str | None]:
    """(value, None), (None, None) for a missing answer, or (None, problem)."""
    if raw is None:
        return None, None
    if isinstance(raw, bool | np.bool_):
        return None, f"{raw!r} is not a number"
    if isinstance(raw, Real | np.number):
        value = float(raw)
        return (None, None) if math.isnan(value) else (value, None)
    if isinstance(raw, str):
        text = raw.strip()
        if not text:
            return None, None
        # pandas' parser, so that one answer and a column of a frame accept the same text.
        value = pd.to_numeric(pd.Series([text]), errors="coerce").iloc[0]
        if pd.isna(value):
            return None, f"{raw!r} is not a number"
        return float(value), None
    return None, f"{raw!r} is not a number"


def _check_on_scale(scale: ResponseScale, value: float) -> str | None:
    if scale.allows(value):
        return None
    return f"{_number(value)} is not an allowed answer; {allowed_answers(scale)}"


def _unknown_item(instrument: Instrument) -> str:
    items = ", ".join(instrument.item_ids)
    return f"not an item of {instrument.short_name} (its items are {items})"


def _number(value: float) -> str:
    """3.0 -> "3", 2.5 -> "2.5": answers are shown as a respondent would have typed them."""
    value = float(value)
    if value.is_integer():
        return str(int(value))
    return f"{value:g}"


# ---------------------------------------------------------------------------------------------
# Scoring one response


def score_response(instrument: Instrument, answers: Mapping[str, object]) -> ScoreResult:
    """Score one respondent's `answers` ({item id: value or None}); unlisted items are missing.

    Raises AnswerError listing every answer that is not allowed.
    """
    problems = validate_answers(instrument, answers)
    if problems:
        raise AnswerError(problems)
    row = np.full((1, len(instrument.items)), np.nan)
    for column, item_id in enumerate(instrument.item_ids):
        value, _ = _parse_answer(answers.get(item_id))
        if value is not None:
            row[0, column] = value
    computed = _Engine(instrument, row).run()
    result = ScoreResult(scores={})
    for score_id, outcome in computed.items():
        value = outcome.values[0]
        result.scores[score_id] = None if np.isnan(value) else float(value)
        result.answered[score_id] = int(outcome.answered[0])
        result.item_counts[score_id] = outcome.item_count
        if outcome.flags[0] is not None:
            result.flags[score_id] = outcome.flags[0]
    return result


# ---------------------------------------------------------------------------------------------
# Scoring a table


def score_frame(instrument: Instrument, frame: pd.DataFrame) -> pd.DataFrame:
    """Score a table with one row per respondent and one column per item, named by item id.

    Returns a copy of `frame` (every other column carried through unchanged) with one column per
    score, missing scores as NaN, and after it a `<score>_flag` column for each score that was
    flagged in any row. Raises AnswerError listing every offending row and column: answers not
    allowed, item columns absent, and existing columns a score column would overwrite.
    """
    problems = [
        AnswerProblem(item_id, "the column is missing")
        for item_id in instrument.item_ids
        if item_id not in frame.columns
    ]
    for score in instrument.scores:
        for name in (score.id, score.id + FLAG_SUFFIX):
            if name in frame.columns:
                problems.append(
                    AnswerProblem(name, "a column has the name of a score; rename or drop it")
                )
    if problems:
        raise AnswerError(problems)

    values = np.empty((len(frame), len(instrument.items)))
    by_position: list[tuple[int, int, AnswerProblem]] = []
    for column, item in enumerate(instrument.items):
        numbers, column_problems = _column_values(frame[item.id], instrument.scale_of(item))
        values[:, column] = numbers
        by_position.extend(
            (position, column, AnswerProblem(item.id, message, row=frame.index[position]))
            for position, message in column_problems
        )
    if by_position:
        by_position.sort(key=lambda entry: entry[:2])
        raise AnswerError(problem for _, _, problem in by_position)

    scored = frame.copy()
    for score_id, outcome in _Engine(instrument, values).run().items():
        scored[score_id] = outcome.values
        if any(flag is not None for flag in outcome.flags):
            scored[score_id + FLAG_SUFFIX] = pd.Series(
                outcome.flags, index=frame.index, dtype="object"
            )
    return scored


def _column_values(
    column: pd.Series, scale: ResponseScale
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """The column as floats (NaN = missing) and its problems as (row position, message)."""
    if pd.api.types.is_bool_dtype(column):
        text = column.astype("string")
        return np.full(len(column), np.nan), [
            (position, f"{value!r} is not a number") for position, value in enumerate(text)
        ]
    problems: list[tuple[int, str]] = []
    if pd.api.types.is_numeric_dtype(column):
        numbers = column.astype(float).to_numpy(copy=True)
    else:
        # Column of text or mixed objects: parse each distinct value once, as one answer would be.
        parsed = {value: _parse_answer(value) for value in pd.unique(column.to_numpy())}
        numbers = np.full(len(column), np.nan)
        for position, raw in enumerate(column.to_numpy()):
            value, problem = parsed[raw] if raw in parsed else _parse_answer(raw)
            if problem is not None:
                problems.append((position, problem))
            elif value is not None:
                numbers[position] = value
    present = ~np.isnan(numbers)
    not_allowed = {value for value in np.unique(numbers[present]) if not scale.allows(float(value))}
    if not_allowed:
        for position in np.flatnonzero(present & np.isin(numbers, list(not_allowed))):
            problems.append((int(position), _check_on_scale(scale, float(numbers[position]))))
            numbers[position] = np.nan
    problems.sort()
    return numbers, problems


# ---------------------------------------------------------------------------------------------
# The arithmetic, on a respondents x items array of validated values (NaN = missing)


@dataclass
class _Outcome:
    values: np.ndarray
    answered: np.ndarray
    item_count: int
    flags: list[str | None]
    items: frozenset[str]


class _Engine:
    def __init__(self, instrument: Instrument, values: np.ndarray):
        self.instrument = instrument
        self.columns = {item_id: index for index, item_id in enumerate(instrument.item_ids)}
        self.values = values.copy()
        for index, item in enumerate(instrument.items):
            if item.reverse:
                scale = instrument.scale_of(item)
                self.values[:, index] = scale.reverse(self.values[:, index])
        self.outcomes: dict[str, _Outcome] = {}
        self._in_progress: list[str] = []

    def run(self) -> dict[str, _Outcome]:
        for score in self.instrument.scores:
            self._outcome(score.id)
        return {score.id: self.outcomes[score.id] for score in self.instrument.scores}

    def _outcome(self, score_id: str) -> _Outcome:
        if score_id in self.outcomes:
            return self.outcomes[score_id]
        if score_id in self._in_progress:
            cycle = " -> ".join([*self._in_progress, score_id])
            raise ScoringDefinitionError(f"scores refer to each other in a cycle: {cycle}")
        try:
            score = self.instrument.score(score_id)
        except KeyError:
            raise ScoringDefinitionError(
                f"score {self._in_progress[-1]} refers to {score_id}, which is not a score"
            ) from None
        self._in_progress.append(score_id)
        if score.items:
            outcome = self._from_items(score)
        elif score.scores:
            outcome = self._from_scores(score)
        elif score.transform is not None:
            outcome = self._transformed(score)
        else:
            raise ScoringDefinitionError(f"score {score.id} has no items, scores or transform")
        self._in_progress.pop()
        self.outcomes[score_id] = outcome
        return outcome

    def _from_items(self, score: Score) -> _Outcome:
        unknown = [item_id for item_id in score.items if item_id not in self.columns]
        if unknown:
            raise ScoringDefinitionError(f"score {score.id} uses unknown items {unknown}")
        block = self.values[:, [self.columns[item_id] for item_id in score.items]]
        result, present, partial = _aggregate(score, block)
        flags = [
            _partial_note(score, int(n), "items") if is_partial else None
            for n, is_partial in zip(present, partial, strict=True)
        ]
        return _Outcome(result, present, len(score.items), flags, frozenset(score.items))

    def _from_scores(self, score: Score) -> _Outcome:
        parts = [self._outcome(part_id) for part_id in score.scores]
        block = np.column_stack([part.values for part in parts])
        result, present, partial = _aggregate(score, block)
        flags = []
        for row in range(len(result)):
            notes = [_partial_note(score, int(present[row]), "scores")] if partial[row] else []
            notes += [
                f"from {part_id} ({part.flags[row]})"
                for part_id, part in zip(score.scores, parts, strict=True)
                if part.flags[row] is not None and not np.isnan(part.values[row])
            ]
            flags.append("; ".join(notes) if notes and not np.isnan(result[row]) else None)
        items = frozenset().union(*(part.items for part in parts))
        return _Outcome(result, self._answered(items), len(items), flags, items)

    def _transformed(self, score: Score) -> _Outcome:
        transform = score.transform
        source = self._outcome(transform.of)
        result = source.values * transform.multiply + transform.add
        flags = list(source.flags)
        return _Outcome(result, source.answered, source.item_count, flags, source.items)

    def _answered(self, items: frozenset[str]) -> np.ndarray:
        block = self.values[:, [self.columns[item_id] for item_id in sorted(items)]]
        return (~np.isnan(block)).sum(axis=1)


def _aggregate(score: Score, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The score of each row of `block` (respondents x parts, NaN = missing) by the score's rule.

    Returns (values, parts present, whether the value was computed from fewer than all parts).
    """
    if score.method is None:
        raise ScoringDefinitionError(f"score {score.id} has no method (mean or sum)")
    count = block.shape[1]
    present = (~np.isnan(block)).sum(axis=1)
    total = np.nansum(block, axis=1)
    needed = count if score.min_answered is None else min(score.min_answered, count)
    complete = present == count
    partial = (present < count) & (present >= needed) & (present > 0)
    if score.method == "sum" and not score.prorate:
        partial = np.zeros_like(partial)
    with np.errstate(invalid="ignore", divide="ignore"):
        if score.method == "mean":
            result = total / np.where(complete, count, present)
        else:
            # Multiply before dividing: one rounding, so 7 answers of 8 give exact results.
            result = np.where(complete, total, total * count / present)
    return np.where(complete | partial, result, np.nan), present, partial


def _partial_note(score: Score, present: int, noun: str) -> str:
    count = len(score.items) if noun == "items" else len(score.scores)
    how = "prorated" if score.method == "sum" else f"mean of answered {noun}"
    return f"{how}: {present} of {count} {noun}"
