"""The preregistration file's schema: strict, frozen pydantic models, one per section.

Each model checks the shape of its own values. Rules that relate sections (a hypothesis names a
contrast that exists, a contrast names a model that exists, ...) live in
`analysis.preregistration`, which reports every problem with the line it was written on.
See docs/preregistration.md for the language.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from study.protocol.types import Email, Identifier, Number, Slug, Text

Variable = Annotated[StrictStr, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Probability = Annotated[float, Field(strict=False, gt=0, lt=1)]


class Section(BaseModel):
    """Base of every preregistration model: unknown keys are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Author(Section):
    name: Text
    affiliation: Text | None = None
    email: Email | None = None
    orcid: Annotated[StrictStr, Field(pattern=r"^\d{4}-\d{4}-\d{4}-\d{3}[\dX]$")] | None = None


class DataStatus(Section):
    """AsPredicted question 1: have any data been collected for this study already?"""

    collected: Literal["no", "yes_not_looked", "yes"]
    note: Text | None = None


class Hypothesis(Section):
    """A directional (or two-sided) claim about one contrast of one outcome."""

    id: Identifier
    text: Text
    outcome: Variable
    contrast: Identifier
    direction: Literal["greater", "less", "two_sided"]


class Outcomes(Section):
    primary: Annotated[tuple[Variable, ...], Field(min_length=1)]
    secondary: tuple[Variable, ...] = ()


class Arms(Section):
    """The allocation variable and its reference level (the comparison every arm is coded
    against in treatment contrasts)."""

    variable: Variable = "arm"
    reference: Identifier
    levels: tuple[Identifier, ...] = ()


class ModelSpec(Section):
    """One linear mixed-effects model.

    `formula` is the fixed part in patsy syntax with the outcome on the left
    (`who5_percentage ~ arm * week`); `groups` names the clustering variable and
    `re_formula` the random part (`~ week`: a random intercept and slope per group; omitted: a
    random intercept only). `occasions` restricts the rows to those schedule keys, `max_week`
    to those at or before that week. `covariates` are added to the fixed part; when omitted the
    preregistration's top-level covariates are used.
    """

    id: Identifier
    formula: Text
    groups: Variable = "participant"
    re_formula: Text | None = None
    reml: bool = True
    occasions: tuple[Identifier, ...] | None = None
    max_week: Number | None = None
    covariates: tuple[Variable, ...] | None = None
    description: Text | None = None


class Contrast(Section):
    """A named linear combination of one model's fixed effects, e.g. the difference in slopes
    between an arm and the reference arm: `{arm[T.reflective]:week: 1}`."""

    id: Identifier
    model: Identifier
    weights: Annotated[dict[StrictStr, Number], Field(min_length=1)]
    description: Text | None = None


class Multiplicity(Section):
    """How p-values in the confirmatory family are corrected: Holm, Benjamini-Hochberg or not
    at all. `family` lists the contrast ids corrected together (default: every contrast a
    hypothesis tests)."""

    method: Literal["holm", "bh", "none"]
    family: tuple[Identifier, ...] = ()


class CompletedOccasion(Section):
    """Keep participants who completed the occasion (by default the baseline)."""

    rule: Literal["completed_baseline"]
    occasion: Identifier = "baseline"


class MinCompleted(Section):
    """Keep participants with at least `min` completed occasions (among `occasions`, if given)."""

    rule: Literal["min_completed"]
    min: Annotated[StrictInt, Field(ge=1)]
    occasions: tuple[Identifier, ...] | None = None


class MinObserved(Section):
    """Keep participants with at least `min` non-missing values of `variable`."""

    rule: Literal["min_observed"]
    variable: Variable
    min: Annotated[StrictInt, Field(ge=1)]


class MinUsage(Section):
    """Keep participants whose summed `variable` (a usage covariate) reaches `min`; applies to
    participants of `arms` only (default: every arm), so a no-assistant arm can be kept whole."""

    rule: Literal["min_usage"]
    variable: Variable = "usage_sessions"
    min: Annotated[Number, Field(ge=0)]
    arms: tuple[Identifier, ...] = ()


ExclusionRule = Annotated[
    CompletedOccasion | MinCompleted | MinObserved | MinUsage, Field(discriminator="rule")
]


class MissingData(Section):
    """The primary handling of missing outcomes. `all_available` fits every observed row by
    (RE)ML, which is unbiased when data are missing at random given the model's variables."""

    strategy: Literal["all_available"] = "all_available"
    assumption: Literal["MAR", "MCAR"] = "MAR"
    note: Text | None = None


class CompleteCases(Section):
    """Refit on participants who have the outcome at every occasion the model uses."""

    id: Identifier
    kind: Literal["complete_cases"]
    description: Text | None = None


class PerProtocol(Section):
    """Refit on participants who also meet `rules` (the same declarative rules as exclusions)."""

    id: Identifier
    kind: Literal["per_protocol"]
    rules: Annotated[tuple[ExclusionRule, ...], Field(min_length=1)]
    description: Text | None = None


Sensitivity = Annotated[CompleteCases | PerProtocol, Field(discriminator="kind")]


class SampleSize(Section):
    """AsPredicted question 7: how many observations, and how the number was decided."""

    target: Annotated[StrictInt, Field(gt=0)]
    rationale: Text


class PreregistrationModel(Section):
    title: Annotated[Text, Field(max_length=300)]
    study: Slug | None = None
    authors: Annotated[tuple[Author, ...], Field(min_length=1)]
    data_status: DataStatus
    hypotheses: Annotated[tuple[Hypothesis, ...], Field(min_length=1)]
    outcomes: Outcomes
    arms: Arms
    models: Annotated[tuple[ModelSpec, ...], Field(min_length=1)]
    covariates: tuple[Variable, ...] = ()
    contrasts: Annotated[tuple[Contrast, ...], Field(min_length=1)]
    alpha: Probability = 0.05
    multiplicity: Multiplicity
    exclusions: tuple[ExclusionRule, ...] = ()
    outliers: Text | None = None
    missing_data: MissingData = MissingData()
    sensitivity: tuple[Sensitivity, ...] = ()
    sample_size: SampleSize
    other: Text | None = None

    def model(self, model_id: str) -> ModelSpec:
        return next(m for m in self.models if m.id == model_id)

    def contrast(self, contrast_id: str) -> Contrast:
        return next(c for c in self.contrasts if c.id == contrast_id)

    @property
    def family(self) -> tuple[str, ...]:
        """The contrasts corrected together: as listed, or every one a hypothesis tests."""
        if self.multiplicity.family:
            return self.multiplicity.family
        return tuple(dict.fromkeys(h.contrast for h in self.hypotheses))
