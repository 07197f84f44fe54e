"""The instrument definition language: strict, frozen pydantic models.

One YAML file per instrument (see docs/instruments.md). A definition carries everything needed
to administer and score the instrument and to cite and licence it correctly; the item wording
may be left out where it cannot be shipped, and is then supplied by the study team in a local
file (`wording: {status: local}`).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, field_validator

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")
LANGUAGE = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

Number = Annotated[float, Field(strict=False)]
Identifier = Annotated[str, Field(pattern=IDENTIFIER.pattern, max_length=64)]
LanguageCode = Annotated[str, Field(pattern=LANGUAGE.pattern)]
# Text in several languages: {"en": "...", "de": "..."}.
LocalizedText = dict[LanguageCode, Annotated[str, Field(min_length=1)]]


class Section(BaseModel):
    """Base of every model here: unknown keys are errors and loaded values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Licence(Section):
    """The terms under which the instrument may be used, as far as they are known."""

    name: str
    commercial_use: Literal["allowed", "needs_permission", "not_allowed", "unknown"]
    attribution: str | None = None
    url: str | None = None
    notes: str | None = None


class Wording(Section):
    """Where the item wording comes from and whether this file ships it.

    `status: shipped` means every item has text in every listed language; `status: local`
    means the file carries structure and scoring only, and a study supplies the wording.
    """

    status: Literal["shipped", "local"]
    source: str
    verified_against_official_form: StrictBool = False
    notes: str | None = None


class Anchor(Section):
    """A labelled point of a response scale."""

    value: Number
    label: LocalizedText


class ResponseScale(Section):
    """Allowed answers: every value from `min` to `max` in steps of `step`.

    `anchors` label some or all of the points (all of them for a verbal scale, the ends for a
    0-10 rating).
    """

    min: Number
    max: Number
    step: Number = 1
    anchors: tuple[Anchor, ...] = ()

    def allows(self, value: float) -> bool:
        """True if `value` is one of the scale's points."""
        if value < self.min or value > self.max:
            return False
        steps = (value - self.min) / self.step
        return abs(steps - round(steps)) < 1e-9

    def reverse(self, value: float) -> float:
        """The reverse-keyed value: `min + max - value`."""
        return self.min + self.max - value


class Item(Section):
    id: Identifier
    text: LocalizedText = Field(default_factory=dict)
    scale: Identifier
    reverse: StrictBool = False
    # A shorter wording for SMS, where one message holds one item.
    sms_text: LocalizedText | None = None


class Transform(Section):
    """`multiply` then `add`, e.g. WHO-5's raw score x 4 gives the 0-100 percentage."""

    of: Identifier
    multiply: Number = 1
    add: Number = 0


class Score(Section):
    """A subscale, total or derived score.

    Exactly one of `items` (aggregated by `method`), `scores` (other scores aggregated by
    `method`) or `transform` is given. Missing items: by default every item must be answered
    (complete-case); `min_answered` lowers that, and then `method: sum` needs `prorate: true`
    (the sum of the answered items scaled to all items), which is flagged in the output.
    """

    id: Identifier
    label: LocalizedText
    kind: Literal["subscale", "total", "derived"] = "subscale"
    items: tuple[Identifier, ...] = ()
    scores: tuple[Identifier, ...] = ()
    transform: Transform | None = None
    method: Literal["mean", "sum"] | None = None
    min_answered: Annotated[StrictInt, Field(gt=0)] | None = None
    prorate: StrictBool = False
    # Published interpretation or range, shown in codebooks (e.g. "0-100; <=50 poor wellbeing").
    interpretation: str | None = None


class SmsUse(Section):
    suitable: StrictBool
    notes: str | None = None


class ReliabilityReport(Section):
    """A published reliability figure, for the catalogue and for checking our own estimates."""

    statistic: Literal["alpha", "omega", "test_retest"]
    value: Number
    score: Identifier | None = None
    sample: str
    source: str
    verified: StrictBool = False


class Instrument(Section):
    id: Identifier
    name: str
    short_name: str
    # Stored with every response (response.instrument_version, 200 characters).
    version: Annotated[str, Field(min_length=1, max_length=200)]
    citation: str
    doi: str | None = None
    licence: Licence
    wording: Wording
    reference_period: LocalizedText | None = None
    instructions: LocalizedText | None = None
    languages: Annotated[tuple[LanguageCode, ...], Field(min_length=1)]
    response_scales: Annotated[dict[Identifier, ResponseScale], Field(min_length=1)]
    items: Annotated[tuple[Item, ...], Field(min_length=1)]
    scores: Annotated[tuple[Score, ...], Field(min_length=1)]
    sms: SmsUse
    reliability: tuple[ReliabilityReport, ...] = ()

    @field_validator("languages")
    @classmethod
    def _no_duplicate_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a language is listed twice")
        return value

    def item(self, item_id: str) -> Item:
        """The item with `item_id` (KeyError if there is none)."""
        for item in self.items:
            if item.id == item_id:
                return item
        raise KeyError(item_id)

    def score(self, score_id: str) -> Score:
        """The score with `score_id` (KeyError if there is none)."""
        for score in self.scores:
            if score.id == score_id:
                return score
        raise KeyError(score_id)

    def scale_of(self, item: Item) -> ResponseScale:
        return self.response_scales[item.scale]

    @property
    def item_ids(self) -> tuple[str, ...]:
        return tuple(item.id for item in self.items)
